"""Our harness's throughput against timm's own benchmark, on the same models, batch and precision.

    python -m bench.timm_compare --precision bf16 --batch-size 256 --json runs/gpu-check/timm_compare.json
    python -m bench.timm_compare --models mixer-s16 vit-s --compile
    python -m bench.timm_compare --device cpu --precision fp32 --image-size 32 --batch-size 2 --models mixer-s16 \\
        --rounds 2 --warmup 0 --steps 1 --repeats 1 --latency-samples 1 --peak-gemm-size 64   # a smoke test

For each model, "ours" is bench.measure.timing.measure_model, as `bench/run.py --mode bench` calls it, on
our model (bench.models.create_model on an ImageNet-shaped task, synthetic inputs, the task's loss,
AdamW); "timm" is timm's registered model of the same shape (timm.create_model, pretrained=False),
timed as timm's benchmark.py times it (its InferenceBenchmarkRunner and TrainBenchmarkRunner):
warm-up steps, then the timed steps between two timestamps, each step ending with a CUDA
synchronize, under autocast (benchmark.py --precision amp / amp_bfloat16), torch.no_grad for
inference, and for training a cross-entropy loss on random targets drawn each step, backward and
the optimizer's step (benchmark.py --opt; adamw here, as ours, where benchmark.py defaults to sgd).
benchmark.py itself lives in timm's repository, not in its wheel, hence this copy of its timing.

Both sides time the same number of samples (--steps x --repeats after --warmup steps) and run in
interleaved A/B rounds (ours then timm's, then timm's then ours, ...), so drift of the machine
(clocks, temperature, other jobs) falls on both; each side's figure is the median of its rounds.
Printed per model: ours and timm's samples/s for inference and training, their ratio (ours / timm's:
1 means the harness reports what timm's benchmark does) and our MFU for the precision from
measure_model's result. --json writes every figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core.config import PRECISIONS, command_parser
from bench.core.errors import run_command
from bench.studies.timm_compare import PAIRS, compare_all


def create_task(name: str, **flags):
    """The task registry's create_task, which the comparison's library is given: imported when a task is first
    needed, as the task package imports torch."""
    from tasks import create_task as create

    return create(name, **flags)


def parse_args(argv=None) -> argparse.Namespace:
    head, _, rest = __doc__.strip().partition("\n\n")
    examples, _, prose = rest.partition("\n\n")
    parser = command_parser("python -m bench.timm_compare", f"{head}\n\n{prose}", examples)
    names = ", ".join(f"{p.name} ({p.timm_label})" for p in PAIRS)
    parser.add_argument("--models", nargs="+", default=[p.name for p in PAIRS], metavar="NAME",
                        help=f"ours or timm's names; default: all of {names}")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--precision", default="bf16", choices=PRECISIONS, help="autocast precision, both sides")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per step, both sides")
    parser.add_argument("--image-size", type=int, default=224, help="image side in pixels (3 channels)")
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved A/B rounds per model (median taken)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each timed phase, both sides")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of one repeat (ours: --bench-steps)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="ours: repeats of --steps (median); timm's: one run of steps x repeats, as benchmark.py")
    parser.add_argument("--latency-samples", type=int, default=20, help="ours only: batch-1 latency samples")
    parser.add_argument("--compile", action="store_true", help="torch.compile both (benchmark.py --torchcompile)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last model and inputs, both sides")
    parser.add_argument("--timm-opt", default="adamw", help="timm's optimizer (benchmark.py --opt; its default: sgd)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of both optimizers")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="weight decay of both optimizers")
    parser.add_argument("--peak-gemm-size", type=int, default=2048,
                        help="ours: matmul side timed as the peak FLOP/s where the GPU table has no entry (MFU)")
    parser.add_argument("--seed", type=int, default=0, help="weights and synthetic inputs")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every figure here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(lambda: compare_all(args, create_task))


if __name__ == "__main__":
    sys.exit(main())
