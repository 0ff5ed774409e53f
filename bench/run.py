"""Train and evaluate one (task, model) pair, or list what can run.

    accelerate launch bench/run.py --task digits --model gmlp
    python -m bench.run --task fashion-mnist --model resmlp --epochs 3
    python -m bench.run --list
"""

from __future__ import annotations

import sys

from bench.core.config import build_parser, configs_from_args
from bench.core.errors import DEBUG_HINT, report, run_command
from bench.runs.listing import listing
from bench.runs.output import release_locks, remove_made_folders
from bench.runs.phases import run


def create_task(name: str, **flags):
    """The task registry's create_task, which the run's library is given: imported when a task is first needed,
    as the task package imports torch."""
    from tasks import create_task as create

    return create(name, **flags)


def task_names() -> list[str]:
    """The task registry's names, which --list is given."""
    from tasks import list_tasks

    return list_tasks()


def parse_args(argv=None):
    description, _, examples = __doc__.strip().partition("\n\n")
    parser = build_parser(description, examples)
    parser.add_argument("--list", action="store_true", help="print every task, model and size, and which pairs run")
    return parser, parser.parse_args(argv)


def summary_line(result: dict) -> str:
    metric = result["primary_metric"]
    value = "n/a" if metric["value"] is None else f"{metric['value']:.4f}"
    variant = f" [{result['variant']}]" if result["variant"] else ""
    return (
        f"{result['task']} {result['model']}-{result['size']}{variant} seed {result['seed']}: "
        f"{metric['name']} {value}, {result['params'] / 1e6:.2f}M params, {result['wall_time_s']:.1f}s, "
        f"status {result['status']}"
    )


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        return run_command(lambda: _main(args), debug=args.debug)
    finally:
        release_locks()  # the result is written (or the run refused): another run of it may start
        remove_made_folders()


def _main(args) -> int:
    from bench.training.loop import signals

    with signals.installed():
        if args.list:
            print(listing(create_task, task_names))
            return 0
        result, path, exit_code = run(configs_from_args(args), create_task)
    if path is not None:
        print(summary_line(result))
        print(f"result: {path}")
        if result["error"]:
            hint = f" {DEBUG_HINT}" if result["status"] == "error" and not args.debug else ""
            report(f"error: {result['error']}{hint}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
