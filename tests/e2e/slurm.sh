#!/usr/bin/env bash
# slurm.sh — the Slurm scale-out on a real Slurm: a single-node cluster on localhost
# (Debian's slurm-wlm and munge, started here as root with their state in a scratch
# folder), scripts/slurm/submit.sh queues an array of 3 `dhf extract --shard K/3`
# tasks over the demo-style images and the dependent merge; the merged cache must
# equal an unsharded extraction's bit for bit (every image's maps exported and
# compared). Skipped with a message when Slurm or munge is not installed or not root;
# `make test-slurm` installs them and runs this.
# dhf-test: label=e2e
set -u -o pipefail
DHF=${DHF_BIN:-build/bin/dhf}
DHF=$(cd "$(dirname "$DHF")" && pwd)/$(basename "$DHF")
ROOT=$(pwd)
fail() { echo "FAIL: $*"; [ -n "${work:-}" ] && tail -5 "$work"/*.log 2>/dev/null; exit 1; }
export DHF_PROGRESS=0
for b in slurmctld slurmd munged sbatch squeue scontrol; do
    command -v $b >/dev/null || PATH=$PATH:/usr/sbin command -v $b >/dev/null ||
        { echo "$b not installed (make test-slurm installs slurm-wlm and munge): skipped"; exit 77; }
done
export PATH=$PATH:/usr/sbin
[ "$(id -u)" -eq 0 ] || { echo "not root: a test cluster cannot be started: skipped"; exit 77; }
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }

work=$(mktemp -d /tmp/dhf_e2e_slurm.XXXXXX) || fail "mktemp"
chmod 755 "$work"
pids=()
cleanup() {
    [ -n "${SLURM_CONF:-}" ] && scancel --quiet -u root 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || fail "cd"

# ---- a free pair of ports (a real cluster on this machine keeps 6817/6818) ------------
port=$(python3 -c "
import socket
for p in range(16817, 16917, 2):
    ok = True
    for q in (p, p + 1):
        s = socket.socket()
        try: s.bind(('127.0.0.1', q))
        except OSError: ok = False
        s.close()
    if ok: print(p); break")
[ -n "$port" ] || fail "no free port pair"

# ---- munge with its own key and socket -------------------------------------------------
mkdir -p munge && chmod 700 munge
dd if=/dev/urandom of=munge/munge.key bs=1024 count=1 status=none && chmod 600 munge/munge.key
munged --force --socket="$work/munge/sock" --key-file="$work/munge/munge.key" \
    --log-file="$work/munge.log" --pid-file="$work/munge/pid" --seed-file="$work/munge/seed" \
    >munged.out 2>&1 || fail "munged: $(cat munged.out)"
pids+=("$(cat munge/pid)")

# ---- slurm.conf: one node, localhost, 2 CPUs, no accounting, no cgroups ------------------
mkdir -p state spool
cpus=$(nproc)
cat >slurm.conf <<CONF
ClusterName=dhftest
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/sock
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld -D -f "$SLURM_CONF" >ctld.out 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N localhost >slurmd.out 2>&1 &
pids+=($!)
for i in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -Eq '^idle' && break
    sleep 0.5
done
sinfo -h -o %T 2>/dev/null | grep -Eq '^idle' || fail "the test cluster did not come up: $(sinfo 2>&1 | tail -2)"
echo "slurm: a one-node cluster on localhost:$port is up ($(sinfo -h -o '%c CPUs, %T'))"

# ---- data, model, and the unsharded reference ------------------------------------------------
"$DHF" synth -o data --categories dog,car --images-per-category 6 --pairs-per-category 4 \
    --spair-only >/dev/null 2>&1 || fail "synth"
"$DHF" init-model --preset tiny-sd15 -o tiny >/dev/null 2>&1 || fail "init-model"
cat >x.yaml <<YAML
model_id: $work/tiny
data_root: $work/data/SPair-71k
cache_path: $work/sharded.h5
diffusion_resolution: 64
num_timesteps: 4
save_timestep: [3, 1, 0]
split: test
device: cpu
YAML
"$DHF" extract x.yaml --set cache_path="$work/ref.h5" --threads 1 >ref.log 2>&1 || fail "reference extract"

# ---- the array of 3 shards and the dependent merge, through submit.sh ------------------------
DHF="$DHF" bash "$ROOT/scripts/slurm/submit.sh" -n 3 -g 0 -- --chdir="$work" -- x.yaml >submit.log 2>&1 ||
    fail "submit.sh: $(cat submit.log)"
read -r array merge < <(awk '$1 == "jobs:" {print $2, $3}' submit.log)
[ -n "$array" ] && [ -n "$merge" ] || fail "submit.sh printed no job ids: $(cat submit.log)"
for i in $(seq 600); do
    [ -z "$(squeue -h -j "$array,$merge" 2>/dev/null)" ] && break
    sleep 0.5
done
[ -z "$(squeue -h -j "$array,$merge" 2>/dev/null)" ] || fail "jobs still queued after 300 s: $(squeue)"
for j in "$array" "$merge"; do
    st=$(scontrol show job "$j" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort -u | tr '\n' ' ')
    echo "job $j: $st"
    [ "$st" = "JobState=COMPLETED " ] || fail "job $j ended $st: $(cat dhf-*.out 2>/dev/null | tail -5)"
done
ntasks=$(ls dhf-extract-"$array"_*.out 2>/dev/null | wc -l)
[ "$ntasks" -eq 3 ] || fail "expected 3 array task logs, found $ntasks"
for k in 0 1 2; do [ -s "sharded.shard${k}of3.h5" ] || fail "shard $k missing"; done
[ -s sharded.h5 ] || fail "the merge wrote no sharded.h5: $(cat dhf-merge-*.out)"

# ---- the merged cache equals the unsharded one, bit for bit -------------------------------
keys() { "$DHF" cache info "$1" --keys | awk '$2 == "done" {print $1}' | sort; }
[ "$(keys ref.h5)" = "$(keys sharded.h5)" ] || fail "merged keys differ: $(diff <(keys ref.h5) <(keys sharded.h5))"
n=0
for k in $(keys ref.h5); do
    "$DHF" cache export ref.h5 "$k" -o a.st >/dev/null 2>&1 || fail "export ref $k"
    "$DHF" cache export sharded.h5 "$k" -o b.st >/dev/null 2>&1 || fail "export merged $k"
    python3 - a.st b.st <<'PY' || fail "image $k differs between the merged and the unsharded cache"
import json, struct, sys
def tensors(p):
    d = open(p, "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n])
    h.pop("__metadata__", None)
    return {k: d[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
sys.exit(0 if a == b and len(a) > 0 else 1)
PY
    n=$((n + 1))
done
echo "slurm: array of 3 shards + merge: $n images, every map bit-identical to the unsharded run"
