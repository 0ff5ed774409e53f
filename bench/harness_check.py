"""Check the measurement harness against a bare timing loop, and report MFU on this device.

For each image family the registry compares (every one that is no relative of another: gMLP,
ResMLP, Mixer and the ViT baseline), built at its mini size with the width and depth given, on
CIFAR-sized synthetic images (the cifar10 task's shape, batch and loss, as a run in bench mode
measures them), it times inference and training throughput as `measure_model`
does (the steps of `bench.measure.timing.phase_steps` in the loop of `bench.measure.timing.timed_rates`) and with
a bare `torch.utils.benchmark.Timer` loop on the same model and batch, in many short pairs, back to
back, in random order; the median of the ratios harness / bare, with a bootstrap interval, should
be within a few percent of 1. By default both sides run one thread and time this process's CPU
time (`--bench-clock process`), which other jobs on the machine do not advance; `--clock wall`
times wall clock instead.

Then, on the embedded image default (digits), it compares the real training loop (`bench.training.loop.train`:
data loading, gradient clipping, scheduler and progress bar included) with a bare training step on
a batch from the same loader, interleaved the same way, in wall time (loader workers are other
processes, whose time the process clock would miss); the ratio shows whether data is a bottleneck.

Last, it measures the MFU of the same families at a large batch against the device's peak (on CPU a
GEMM timed in the same run), with the share of step time spent in matmuls, which bounds the MFU.

Every task is made as a run makes it (tasks.create_task with the run's default flags), so its loss,
label smoothing included, is the one runs train and measure.

    python -m bench.harness_check
"""

from __future__ import annotations

import sys

from bench.core.config import command_parser
from bench.core.errors import run_command
from bench.measure.timing import CLOCKS
from bench.studies.harness import check


def create_task(name: str, **flags):
    """The task registry's create_task, which the checks' library is given: imported when a task is first needed."""
    from tasks import create_task as create

    return create(name, **flags)


def main(argv=None) -> int:
    parser = command_parser("python -m bench.harness_check", __doc__.splitlines()[0],
                            "  python -m bench.harness_check --pairs 50 --loop-rounds 0")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the harness / bare and loop / bare comparisons")
    parser.add_argument("--width", type=int, default=128, help="embedding width of every model")
    parser.add_argument("--depth", type=int, default=4, help="blocks in every model")
    parser.add_argument("--pairs", type=int, default=150, help="harness / bare pairs per model and phase (0 skips)")
    parser.add_argument("--steps", type=int, default=1, help="steps timed by each side of a pair")
    parser.add_argument("--loop-rounds", type=int, default=5, help="interleaved loop / bare rounds on digits per model (0 skips)")
    parser.add_argument("--loop-steps", type=int, default=20, help="training steps per loop round")
    parser.add_argument("--mfu-batch-size", type=int, default=512, help="batch size for the MFU measurement (0 skips it)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="process",
                        help="clock of the harness / bare comparison (process: CPU time, one thread only)")
    args = parser.parse_args(argv)
    if args.clock == "process" and args.threads != 1:
        parser.error("--clock process needs --threads 1: CPU time sums over threads")
    return run_command(lambda: check(args, create_task))


if __name__ == "__main__":
    sys.exit(main())
