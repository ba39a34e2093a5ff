#!/usr/bin/env bash
# Seconds per epoch of train --distributed (docs/distributed.md): 1 process alone against
# mpirun -np 2, 1 thread per process, at global batch 256 and 1024, on Fashion-MNIST; and what
# the fixed micro-shards cost one process (--micro-shards K). The runs alternate, so a change
# in the machine's load hits both sides; each line gives the medians of REPEATS runs (2 epochs
# each, every epoch's seconds) and the load average before and after.
#
#   bench/distributed_epochs.sh [BUILD_DIR] [REPEATS]
#
# SIMDNN_BENCH_SETSID=1 starts every MPI process in a session of its own. On a Linux with
# autogroup scheduling (sched_autogroup_enabled) CPU time is shared fairly between sessions,
# not processes, so on a busy machine two processes of one mpirun get one session's share
# between them while the single process gets a share of its own; with setsid each gets its
# own, as on separate machines.
#
# SIMDNN_BENCH_MPIRUN_FLAGS: extra mpirun flags, word-split (default: none, Open MPI's own
# choices: on one host with 2 processes it binds each to a core and uses shared memory, vader,
# with CMA single copy). docs/distributed.md lists the ones tried and what they did, e.g.
#   SIMDNN_BENCH_MPIRUN_FLAGS="--bind-to none"            let the kernel move a rank off a busy core
#   SIMDNN_BENCH_MPIRUN_FLAGS="--mca btl self,vader"       shared memory only (the default here anyway)
# OMPI_MCA_mpi_yield_when_idle (set to 1 below) can be overridden from the environment:
# 0 spins while waiting for the peer (lower latency on an idle machine; burns the core).
set -euo pipefail
build=${1:-build}
repeats=${2:-3}
train=$build/tools/train
[[ -x $train ]] || { echo "no $train: build the train target" >&2; exit 1; }
# Open MPI refuses root without these; yield when idle: a waiting process gives its core away
# (this machine is shared).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
read -r -a mpirun_flags <<< "${SIMDNN_BENCH_MPIRUN_FLAGS:-}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

epoch_seconds() {  # JSON lines on stdin -> one epoch time per line
  python3 -c 'import json,sys
for l in sys.stdin:
    j=json.loads(l)
    if j.get("event")=="epoch": print(j["seconds"])'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

launch=()
[[ ${SIMDNN_BENCH_SETSID:-0} == 1 ]] && launch=(setsid)
common=(--epochs 2 --threads 1 --json --no-progress --seed 1)
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus;" \
     "mpirun flags: ${mpirun_flags[*]:-(none)}, yield_when_idle=$OMPI_MCA_mpi_yield_when_idle"
for batch in ${SIMDNN_BENCH_BATCHES:-256 1024}; do
  : > "$scratch/one" ; : > "$scratch/two"
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  for ((r = 0; r < repeats; r++)); do
    "$train" "${common[@]}" --batch "$batch" --out "$scratch/m1.safetensors" |
      epoch_seconds >> "$scratch/one"
    mpirun "${mpirun_flags[@]}" -np 2 "${launch[@]}" "$train" --distributed "${common[@]}" --batch "$batch" \
      --out "$scratch/m2.safetensors" | epoch_seconds >> "$scratch/two"
  done
  one=$(median < "$scratch/one"); two=$(median < "$scratch/two")
  echo "batch $batch: 1 process $one s/epoch, 2 processes $two s/epoch, speed-up" \
       "$(python3 -c "print(f'{$one/$two:.2f}')")x (load $before -> $(cut -d' ' -f1-3 /proc/loadavg))"
done
# SIMDNN_BENCH_PIECES="1 2 4 8" (default): the --micro-shards runs; empty skips them.
for pieces in ${SIMDNN_BENCH_PIECES-1 2 4 8}; do
  : > "$scratch/k"
  for ((r = 0; r < repeats; r++)); do
    "$train" "${common[@]}" --batch 256 --micro-shards "$pieces" --out "$scratch/k.safetensors" |
      epoch_seconds >> "$scratch/k"
  done
  echo "batch 256, 1 process, --micro-shards $pieces: $(median < "$scratch/k") s/epoch" \
       "(load $(cut -d' ' -f1-3 /proc/loadavg))"
done
