"""Cost scaling: how throughput, latency and memory grow with the number of tokens, per architecture.

    python -m bench.scaling                                     # every series, every family
    python -m bench.scaling --series mlm --models gmlp,transformer --time-cap 30
    python -m leaderboard results/scaling --out leaderboard/pages   # the page: plots, exponents, ratios

Every family the model registry lists for a series' modality runs at one width and depth (--size,
default mini) while the input grows; only what sets the number of tokens changes (an image size's
patch, a text size's longest input):

    image-p16   square images of 32 to 512 pixels at 16x16 patches: 4 to 1,024 tokens
    image-p4    images of 8 to 128 pixels at 4x4 patches: the same token counts from smaller images
    mlm         masked-LM blocks of 128 to 4,096 tokens (an encoder)
    seq2seq     sources and targets of 128 to 4,096 tokens each (an encoder and a causal decoder)

Inputs are random, of the registered task's shape (classes, vocabulary): imagenet, wordnet and
wmt14-de-en; nothing is downloaded. Each point is measured by bench.measure.timing on one batch of
--batch-size samples, the same at every point: FLOPs per sample (counted, and the family's
registered formula beside them), inference and training samples/s and tokens/s, batch-1 latency,
peak training and inference memory (on a CPU the model's own tensors, not the process), each
measurement self-checked and taken again when unstable. On a CPU with one thread times are
process CPU time (--bench-clock process), which other jobs on the machine do not advance.

Each point runs in a child process of its own (--no-isolate: in this one) and ends in a status:
ok; oom, when it needs more than --memory-cap MB (on a CPU; a GPU's own memory on a GPU); timeout,
when it takes more than --time-cap seconds on the measurement clock; error, with its sentence.
Once a family is over a cap, its longer inputs of the series are recorded as skipped, not run.
Every point is one JSON file in --output-dir (bench.core.results: the point schema), written
atomically, so a stopped study continues where it stopped when rerun: points already there are
kept, except failures, which run again when the cap they hit was raised. Points made with other
measurement settings are refused unless --overwrite. With MLPBENCH_MEASURE_LOCK set (a sweep's
lock file) each point measures holding it, so it never times beside a run of that sweep.
"""

from __future__ import annotations

import sys
from dataclasses import fields

from bench.core.config import add_flags, command_parser
from bench.core.errors import run_command
from bench.studies.scaling import ScalingConfig, study


def create_task(name: str, **flags):
    """The task registry's create_task, which the study's library is given: imported when a point first needs
    its task (in the point's own process), as the task package imports torch."""
    from tasks import create_task as create

    return create(name, **flags)


def build_parser():
    title, examples, rest = __doc__.strip().split("\n\n", 2)
    parser = command_parser("python -m bench.scaling", f"{title}\n\n{rest}", examples)
    add_flags(parser, ScalingConfig)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        cfg = ScalingConfig(**{f.name: getattr(args, f.name) for f in fields(ScalingConfig)})
        return study(cfg, create_task)

    return run_command(body, "Interrupted; rerun the same command to continue: measured points are kept.")


if __name__ == "__main__":
    sys.exit(main())
