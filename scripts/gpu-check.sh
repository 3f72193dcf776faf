#!/usr/bin/env bash
# gpu-check.sh — the prepared GPU check: everything one short call on a lent GPU machine
# (PyTorch with CUDA, no network, no Debian -dev packages) needs to build dhf against
# that PyTorch's libtorch, run the parity tests on CUDA (float32 and the reduced-precision
# path against the float32 references) and time the UNet call, a 50-step inversion and a
# training step there, writing a small report.
#
#   scripts/gpu-check.sh prepare   here (Debian 12, root, apt): fills .gpu/ (git-ignored)
#                                  with the .deb files of the -dev packages dhf builds
#                                  against and of the shared libraries they load, pkgconf,
#                                  and a copy of the SD parity fixtures
#   scripts/gpu-check.sh run       on the GPU machine, from the repository root, with
#                                  .gpu/debs and .gpu/fixtures carried: unpacks the .debs into .gpu/prefix, configures
#                                  against python3's torch, builds, checks, times; the
#                                  report goes to $OUT (the device tool's) or .gpu/report
#   scripts/gpu-check.sh dry-run   here: `run` with the CPU in place of CUDA, Debian's
#                                  libtorch in place of python3's, small shapes; and it
#                                  checks that every dhf dependency was found in .gpu/prefix
#                                  (none on this machine's /usr)
#
# The device call (15 minutes of device time per session; one call):
#   run(command="bash scripts/gpu-check.sh run", carry=[".gpu/debs", ".gpu/fixtures"],
#       timeout_s=540)
# Budget inside the call (GPU_CHECK_BUDGET_S, default 480 s): the build takes most of
# it; the timings are skipped with a note once less than 90 s is left.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
G=.gpu
P=$ROOT/$G/prefix
ARCH=x86_64-linux-gnu
mode=${1:-}
say() { printf '%s gpu-check: %s\n' "$(date +%T)" "$*"; }
die() { say "FAIL: $*"; exit 1; }

# dhf's direct build dependencies (headers, .pc, cmake files); hdf5-helpers is left out
# on purpose: its h5cc prints absolute /usr paths that would point CMake at nothing.
DEV_PACKAGES=(libhdf5-dev libcjson-dev libcjson1 libyaml-dev libcmocka-dev libjpeg62-turbo-dev
              libpng-dev zlib1g-dev libcairo2-dev pkgconf pkgconf-bin libpkgconf3)
# shared objects the GPU image has anyway (glibc, the C++ runtime)
BASE_LIBS='^(linux-vdso|libc|libm|libdl|librt|libpthread|libresolv|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so'

# the Debian package owning a file (dpkg knows merged-/usr files under either name)
owner() {
    local f
    f=$(readlink -f "$1")
    { dpkg -S "$f" 2>/dev/null || dpkg -S "${f#/usr}" 2>/dev/null || dpkg -S "/usr$f" 2>/dev/null ||
      true; } | head -1 | cut -d: -f1
}

prepare() {
    command -v apt-get >/dev/null || die "prepare needs apt-get (Debian 12)"
    mkdir -p "$G/debs" "$G/fixtures"
    # the runtime closure: every library that the libraries dhf links load, found by
    # ldd here, mapped to its Debian package
    local libs=(/usr/lib/$ARCH/hdf5/serial/libhdf5.so /usr/lib/$ARCH/libcjson.so.1
                /usr/lib/$ARCH/libyaml-0.so.2 /usr/lib/$ARCH/libcmocka.so.0
                /usr/lib/$ARCH/libjpeg.so.62 /usr/lib/$ARCH/libpng16.so.16
                /usr/lib/$ARCH/libcairo.so.2 /usr/lib/$ARCH/libpkgconf.so.3)
    local pkgs=("${DEV_PACKAGES[@]}") so path
    for so in "${libs[@]}"; do
        [ -e "$so" ] || die "$so missing here: run make deps first"
        pkgs+=("$(owner "$so")")
        while read -r name path; do
            [[ "$name" =~ $BASE_LIBS ]] && continue
            [ -n "$path" ] || continue
            pkgs+=("$(owner "$path")")
        done < <(ldd "$so" | awk '$2 == "=>" {print $1, $3}')
    done
    # glibc and the C++ runtime stay the GPU image's own: a Debian libc beside its
    # dynamic loader would not start
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | grep -v -E '^$|^(libc6|libgcc-s1|libstdc\+\+6)$' | sort -u)
    say "downloading ${#pkgs[@]} packages into $G/debs"
    rm -f "$G"/debs/*.deb
    (cd "$G/debs" && apt-get download "${pkgs[@]}" >/dev/null) || die "apt-get download"
    # the parity fixtures the run needs (the device tool carries nothing outside the repo)
    local fx=${DHF_FIXTURES:-$ROOT/../shared/fixtures}
    [ -d "$fx/sd" ] || die "$fx/sd: no SD fixtures"
    rm -rf "$G/fixtures/sd" && cp -r "$fx/sd" "$G/fixtures/sd"
    local total
    total=$(du -sm "$G/debs" "$G/fixtures" | awk '{s += $1} END {print s}')
    say "prepared: $(ls "$G/debs" | wc -l) .deb files ($(du -sh "$G/debs" | cut -f1)), fixtures" \
        "$(du -sh "$G/fixtures" | cut -f1); carried with the tree: ~${total} MiB of the 64 MiB"
}

# Unpacks the .debs into $P and points their .pc and CMake files at $P (they say /usr).
unpack() {
    [ -d "$G/debs" ] && ls "$G"/debs/*.deb >/dev/null 2>&1 || die "$G/debs is empty: run prepare here first"
    [ -f "$P/.relocated" ] && return 0
    rm -rf "$P" && mkdir -p "$P"
    local d
    for d in "$G"/debs/*.deb; do
        if command -v dpkg-deb >/dev/null; then
            dpkg-deb -x "$d" "$P"
        else   # a .deb is an ar archive holding data.tar.*
            python3 - "$d" "$P" <<'EOF' || die "unpack $d"
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n"
off = 8
while off < len(data):
    name = data[off:off + 16].decode().strip().rstrip("/")
    size = int(data[off + 48:off + 58].decode().strip())
    body = data[off + 60:off + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    off += 60 + size + (size & 1)
EOF
        fi
    done
    local f
    for f in $(grep -rlI '/usr' "$P/usr/lib/$ARCH/pkgconfig" "$P/usr/share/pkgconfig" \
                              "$P/usr/lib/$ARCH/cmake" 2>/dev/null); do
        sed -i "s#\([ =\"']\)/usr#\1$P/usr#g" "$f"
    done
    # cairo.pc requires the .pc files of cairo's own dependencies (X11, fontconfig, ...),
    # which dhf does not compile against: a cairo.pc without them
    cat >"$P/usr/lib/$ARCH/pkgconfig/cairo.pc" <<EOF
prefix=$P/usr
libdir=\${prefix}/lib/$ARCH
includedir=\${prefix}/include
Name: cairo
Description: cairo (dhf gpu-check: dependencies resolved by the carried shared objects)
Version: 1.16.0
Libs: -L\${libdir} -lcairo
Cflags: -I\${includedir}/cairo
EOF
    touch "$P/.relocated"
}

# run_checks BUILD_DIR DEVICE REPORT_DIR SMALL
run_checks() {
    local B=$1 dev=$2 R=$3 small=$4 t0=$SECONDS
    export DHF_FIXTURES=$ROOT/$G/fixtures DHF_PROGRESS=0
    {
        echo "# dhf GPU check"
        echo
        echo "- date: $(date -u +%FT%TZ), host $(hostname), device $dev"
        if command -v nvidia-smi >/dev/null; then
            echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
        fi
        echo "- torch: $("$B/bin/dhf" info 2>/dev/null | grep -i -m1 torch || true)"
        echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
        echo
        echo "## Parity (float32 and the reduced-precision path against the float32 references)"
        echo
    } >"$R/report.md"
    local rc=0 t
    for t in test_unet_parity test_vae_parity test_inversion_parity; do
        say "$t --device $dev"
        if "$B/$t" --device "$dev" >"$R/$t.log" 2>&1; then
            echo "- $t --device $dev: PASSED" >>"$R/report.md"
        else
            echo "- $t --device $dev: FAILED (exit $?)" >>"$R/report.md"
            rc=1
        fi
        grep -E "tolerances x|matrix products|worst err/tol" "$R/$t.log" | sed 's/^/    /' >>"$R/report.md" || true
    done
    echo >>"$R/report.md"
    echo "## Timings" >>"$R/report.md"
    echo >>"$R/report.md"
    local res=512 batch=1,4 reps=5 steps=50 inv=512 S=11 dt=float32,float16
    [ "$dev" = cpu ] && dt=float32
    if [ "$small" = 1 ]; then
        res=64 batch=1 reps=1 steps=4 inv=64 S=1
    fi
    local preset=sd15-shapes
    [ "$small" = 1 ] && preset=tiny-sd15
    if [ "$(left)" -gt 90 ]; then
        say "bench_extract ($preset, $res^2, $steps-step inversion at $inv^2)"
        "$B/bin/bench_extract" --device "$dev" --preset "$preset" --dtype "$dt" \
            --kernels libtorch --res "$res" --batch "$batch" --reps "$reps" \
            --inversion-res "$inv" --steps "$steps" --json "$R/bench_extract.json" \
            >"$R/bench_extract.txt" 2>&1 || rc=1
        sed 's/^/    /' "$R/bench_extract.txt" >>"$R/report.md"
    else
        echo "- bench_extract skipped: $(left) s of the budget left" >>"$R/report.md"
    fi
    if [ "$(left)" -gt 60 ]; then
        say "bench_train (S=$S)"
        "$B/bin/bench_train" --device "$dev" --kernels libtorch --order both --S "$S" \
            --steps 3 --warmup 1 >"$R/bench_train.txt" 2>"$R/bench_train.err" || rc=1
        sed 's/^/    /' "$R/bench_train.txt" >>"$R/report.md"
    else
        echo "- bench_train skipped: $(left) s of the budget left" >>"$R/report.md"
    fi
    say "report: $R/report.md ($((SECONDS - t0)) s of checks)"
    return $rc
}

build() {   # build BUILD_DIR TORCH_DIR EXTRA_CMAKE_ARGS...
    local B=$1 torch_dir=$2
    shift 2
    export PKG_CONFIG=$P/usr/bin/pkgconf
    export PKG_CONFIG_LIBDIR=$P/usr/lib/$ARCH/pkgconfig:$P/usr/share/pkgconfig
    export LD_LIBRARY_PATH=$P/usr/lib/$ARCH:$P/lib/$ARCH:$P/usr/lib/$ARCH/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    say "configure ($B, Torch_DIR=${torch_dir:-default})"
    cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$P/usr" \
        -DHDF5_ROOT="$P/usr/include;$P/usr/lib/$ARCH" -DDHF_WITH_DNNL=OFF ${torch_dir:+-DTorch_DIR="$torch_dir"} \
        -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG" "$@" >"$G/$B.configure.log" 2>&1 ||
        { tail -30 "$G/$B.configure.log"; die "configure (log: $G/$B.configure.log)"; }
    say "build"
    cmake --build "$B" -j"$(nproc)" --target dhf test_unet_parity test_vae_parity \
        test_inversion_parity bench_extract bench_train >"$G/$B.build.log" 2>&1 ||
        { grep -m20 -E "error|Error" "$G/$B.build.log"; die "build (log: $G/$B.build.log)"; }
}

# Every dependency dhf found must come from the prefix: the dry run's proof that the
# carried files suffice (on the GPU machine nothing else is there).
check_from_prefix() {
    local B=$1 bad=0 v
    for v in HDF5_C_INCLUDE_DIR HDF5_hdf5_LIBRARY_RELEASE cJSON_DIR YAML_INCLUDE_DIRS \
             CMOCKA_INCLUDE_DIRS JPEG_INCLUDE_DIR PNG_PNG_INCLUDE_DIR CAIRO_INCLUDE_DIRS; do
        local val
        val=$(grep -E "^$v(:[A-Z]+)?=" "$B/CMakeCache.txt" | head -1 | cut -d= -f2-)
        [ -z "$val" ] && continue
        case "$val" in
            "$P"/*) ;;
            *) say "  $v = $val (not in $P)"; bad=1 ;;
        esac
    done
    # dhf's own direct dependencies (libtorch's are the GPU image's business)
    local need so where
    need=$(readelf -d "$B/bin/dhf" | awk -F'[][]' '/NEEDED/ {print $2}' |
           grep -E "hdf5|cjson|yaml|jpeg|png16|cairo" || true)
    [ -n "$need" ] || { say "  no NEEDED entries read from $B/bin/dhf"; bad=1; }
    for so in $need; do
        where=$(ldd "$B/bin/dhf" | awk -v s="$so" '$1 == s {print $3}')
        case "$where" in
            "$P"/*) ;;
            *) say "  dhf loads $so from ${where:-nowhere} (not from $P)"; bad=1 ;;
        esac
    done
    return $bad
}

START=$SECONDS
BUDGET=${GPU_CHECK_BUDGET_S:-480}
left() { echo $((BUDGET - (SECONDS - START))); }
case "$mode" in
    prepare)
        prepare ;;
    run)
        command -v python3 >/dev/null || die "python3 (with torch) not found"
        torch_dir=$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))') ||
            die "python3 cannot import torch"
        python3 -c 'import torch; assert torch.cuda.is_available()' || die "torch sees no CUDA device"
        unpack
        build build-gpu "$torch_dir"
        R=${OUT:-$ROOT/$G/report}
        mkdir -p "$R"
        run_checks build-gpu cuda "$R" 0 ;;
    dry-run)
        [ -d "$G/debs" ] || prepare
        unpack
        build build-gpu-dry ""
        check_from_prefix build-gpu-dry || die "the dry run found dependencies outside $P"
        say "every dependency resolved from $P"
        R=$ROOT/$G/report-dry
        mkdir -p "$R"
        run_checks build-gpu-dry cpu "$R" 1 ;;
    *)
        sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
        exit 2 ;;
esac
