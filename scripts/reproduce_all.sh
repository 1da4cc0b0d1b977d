#!/usr/bin/env bash
# Every experiment of RESULTS.md, resumable: finished runs are skipped, interrupted ones resume.
# Two shards use both cores; rerun the script until it prints "all done", then `poldist report`.
#   nohup scripts/reproduce_all.sh > runs/reproduce_all.log 2>&1 &
# SEEDS (default 0,1,2) and EXPERIMENTS (default: all, in this order) can be set in the env.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SEEDS=${SEEDS:-0,1,2}
EXPERIMENTS=${EXPERIMENTS:-losses compression control kickstart}
mkdir -p runs
for exp in $EXPERIMENTS; do
  $BIN/poldist reproduce "$exp" --seeds "$SEEDS" --shard 0/2 > "runs/reproduce-$exp-0.log" 2>&1 &
  $BIN/poldist reproduce "$exp" --seeds "$SEEDS" --shard 1/2 > "runs/reproduce-$exp-1.log" 2>&1 &
  wait
  echo "$exp done"
done
$BIN/poldist reproduce online --seeds "$SEEDS" > runs/reproduce-online.log 2>&1
for seed in ${SEEDS//,/ }; do  # two seeds at a time, one per core (each: students, then the DQN)
  # runs in runs/multitask (seed 0) or runs/multitask-seed<S>, the script's defaults
  $BIN/python scripts/multitask_minatar.py --seed "$seed" --out "results/multitask/seed$seed" \
    > "runs/multitask-seed$seed.log" 2>&1 &
  if [ "$(jobs -rp | wc -l)" -ge 2 ]; then wait -n; fi
done
wait
echo "all done"
