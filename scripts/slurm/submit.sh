#!/usr/bin/env bash
# submit.sh — queues a sharded extraction on Slurm: an array of N `dhf extract
# --shard K/N` tasks (extract.sbatch) and a merge job that runs when all of them
# succeeded (merge.sbatch). Prints the two job ids, last as "jobs: ARRAY MERGE".
#   scripts/slurm/submit.sh -n N [-g GPUS_PER_TASK] [-- SBATCH_OPTIONS...] CONFIG.yaml [--set k=v ...]
# -g 0 asks for no GPU (CPU extraction; add --set device=cpu). Other sbatch options
# (partition, account, time, cpus) go after -- and before the config, e.g.
#   submit.sh -n 8 -- --partition=gpu --time=12:00:00 --cpus-per-task=8 -- sd15.yaml
# DHF names the dhf binary given to the jobs (default: the dhf found on PATH now).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n="" gpus=1 sbopts=()
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) n=$2; shift 2 ;;
        -g) gpus=$2; shift 2 ;;
        --) shift; while [ $# -gt 0 ] && [ "$1" != -- ]; do sbopts+=("$1"); shift; done
            [ $# -gt 0 ] && shift ;;
        -h|--help) usage ;;
        *) break ;;
    esac
done
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: -n N (shards, >= 1) is required" >&2; usage; }
[[ "$gpus" =~ ^[0-9]+$ ]] || { echo "submit.sh: -g expects a number of GPUs, got '$gpus'" >&2; exit 2; }
[ $# -ge 1 ] || { echo "submit.sh: a CONFIG.yaml is required" >&2; usage; }
DHF=${DHF:-$(command -v dhf || true)}
[ -n "$DHF" ] && [ -x "$DHF" ] || { echo "submit.sh: dhf not found (set DHF=/path/to/dhf)" >&2; exit 1; }
export DHF
# the cache the shards are named after, as the run resolves it (configs and --set)
cache=$("$DHF" config show "$@" | awk '$1 == "cache_path:" {print $2}' | tr -d '"')
[ -n "$cache" ] || { echo "submit.sh: cannot resolve cache_path from $*" >&2; exit 1; }
gres=()
[ "$gpus" -gt 0 ] && gres=(--gpus-per-task="$gpus")
array=$(sbatch --parsable --export=ALL --array=0-$((n - 1)) "${gres[@]}" "${sbopts[@]}" \
        "$here/extract.sbatch" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --export=ALL --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
        "${sbopts[@]}" "$here/merge.sbatch" "$cache" "$n")
merge=${merge%%;*}
echo "extract array: job $array ($n shards of $cache)"
echo "merge:         job $merge (after the array succeeds)"
echo "jobs: $array $merge"
