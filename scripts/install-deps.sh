#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages dhf needs, and only those that are
# missing; says what it does. Idempotent: a second run installs nothing.
# libopenblas0-pthread is required, not optional: with Debian's reference BLAS
# libtorch's 1024^2 matmul runs at ~5.6 GFLOP/s here, with OpenBLAS at ~165+.
# libdnnl-dev is the headers of oneDNN (libdnnl2, which Debian's libtorch already
# depends on) for the training step over oneDNN (src/engine/fastnet.c, dnnl_conv.c):
# wanted, not required — if it cannot be installed the build falls back to libtorch
# autograd for that step (about 2.7x slower per step), and this script says so.
set -euo pipefail

PACKAGES=(libtorch-dev libopenblas0-pthread libdnnl-dev libhdf5-dev libcjson-dev
          libyaml-dev libcmocka-dev libjpeg-dev libpng-dev libcairo2-dev cmake
          pkg-config build-essential)
OPTIONAL=(libdnnl-dev)
# --slurm: also the single-node Slurm cluster of make test-slurm (tests/e2e/slurm.sh)
if [ "${1:-}" = "--slurm" ]; then
    PACKAGES+=(slurm-wlm munge python3)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: apt-get not found; dhf expects Debian 12 (bookworm) packages." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: missing packages: ${missing[*]}" >&2
        echo "install-deps: not root and no sudo; install them as root." >&2
        exit 1
    fi
fi

required=()
optional=()
for p in "${missing[@]}"; do
    if [[ " ${OPTIONAL[*]} " == *" $p "* ]]; then optional+=("$p"); else required+=("$p"); fi
done
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ ${#required[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${required[@]}"
fi
if [ ${#optional[@]} -gt 0 ] &&
   ! $SUDO apt-get install -y -qq --no-install-recommends "${optional[@]}"; then
    echo "install-deps: WARNING: could not install ${optional[*]}; dhf builds without" \
         "oneDNN and trains on libtorch autograd (slower, same results)" >&2
fi
echo "install-deps: done"
