#!/bin/bash
# One (task, model) pair on several GPU nodes: one `accelerate launch` per node, one process per GPU.
#
#   sbatch examples/slurm.sh            # submit again after a time-out or preemption: it resumes
#
#SBATCH --job-name=mlpbench
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@300
# SIGTERM five minutes before the time limit: the run finishes its step, saves a checkpoint,
# writes its result with status "interrupted" and exits 143.

set -euo pipefail

TASK=imagenet MODEL=gmlp SIZE=s SEED=0 PRECISION=bf16
OUTPUT_DIR=runs/imagenet
GPUS_PER_NODE=8
BATCH_SIZE=64  # per process: the global batch is 64 x 16 processes = 1024; set --lr for it (see docs/scale-out.md)

export MAIN_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MAIN_PORT=29500
export NUM_PROCESSES=$((SLURM_NNODES * GPUS_PER_NODE))

ARGS=(--task "$TASK" --model "$MODEL" --size "$SIZE" --seed "$SEED" --precision "$PRECISION"
      --batch-size "$BATCH_SIZE" --lr 1e-3 --epochs 300 --checkpoint-every 1000
      --data-dir /data/imagenet --output-dir "$OUTPUT_DIR" --num-workers 8)
# A checkpoint of this run exists: continue it.
if compgen -G "$OUTPUT_DIR/checkpoints/${TASK}__${MODEL}-${SIZE}__${PRECISION}__seed${SEED}/step-*" > /dev/null; then
    ARGS+=(--resume)
fi

# SLURM_NODEID differs on every node, so it is read inside the step, not here.
srun --kill-on-bad-exit=1 bash -c 'accelerate launch \
    --multi_gpu --num_machines "$SLURM_NNODES" --machine_rank "$SLURM_NODEID" \
    --num_processes "$NUM_PROCESSES" --main_process_ip "$MAIN_ADDR" --main_process_port "$MAIN_PORT" \
    --mixed_precision no --dynamo_backend no `# the precision comes from --precision` \
    bench/run.py "$@"' bash "${ARGS[@]}"
