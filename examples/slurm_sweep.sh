#!/bin/bash
# A whole sweep on a Slurm cluster: run this on the login node (in tmux or screen: it waits for the
# jobs). Each planned run becomes a Slurm job through submitit; the sweep then does what it does on
# one machine: the tuning runs, the choice of each model's learning rate on validation, the test
# seeds at that rate, and the cost pass on a node of its own. A preempted or timed-out job is
# requeued and resumes from its checkpoint; run this again after a stop and finished runs are
# skipped. (examples/slurm.sh is the other case: one run across several nodes.)
#
#   examples/slurm_sweep.sh                          # sweeps/gpu.toml on the partition "gpu"
#   SWEEP=sweeps/leaderboard.toml PARTITION=a100 ACCOUNT=mylab examples/slurm_sweep.sh
#
# The output folder must be on a file system the nodes share (the jobs write their results,
# checkpoints and logs there). Job files and submitit's own logs: OUTPUT_DIR/submitit/.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SWEEP=${SWEEP:-sweeps/gpu.toml}
PARTITION=${PARTITION:-gpu}
TIME_MIN=${TIME_MIN:-120}      # per job; a run still going then is requeued and resumes
CPUS=${CPUS:-8}                # per job: OpenMP threads and data workers
MEM_GB=${MEM_GB:-32}
ACCOUNT=${ACCOUNT:-}           # empty: your default account

ARGS=(--executor slurm --partition "$PARTITION" --time-min "$TIME_MIN" --cpus-per-run "$CPUS" --mem-gb "$MEM_GB")
if [[ -n $ACCOUNT ]]; then ARGS+=(--account "$ACCOUNT"); fi

python -m bench.sweep "$SWEEP" --dry-run "${ARGS[@]}"   # what will run, and what is done already
python -m bench.sweep "$SWEEP" "${ARGS[@]}" --progress-every 120
# The results come back to the output folder as on one machine: build the pages from it.
python -m leaderboard "$(python -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["output_dir"])' "$SWEEP")"
