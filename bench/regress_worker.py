"""One side of a regression check: a long-lived process that times cases with one checkout's code.

`bench/regress.py` starts one per side as `python -m bench.regress_worker CHECKOUT THREADS` in the
checkout, which then comes first on sys.path: this module and everything it imports (models, tasks
and `bench.measure.timing` itself) is that checkout's code, the code whose speed is compared. So each side
builds its task and model as its own runner does, and a ref from before a change of the suite's
structure is timed with its own worker (every ref since the check exists has one, with this
protocol).

Protocol, one JSON object per line. The driver sends the cases first:
    {"cases": [{"model", "size", "task", "batch", "precision", "phase"}, ...],
     "warmup": int, "steps": int, "repeats": int}
and the worker builds them all, then answers {"ready": {fingerprint}} or {"error": sentence}.
Then each request {"case": index} is answered {"seconds_per_step": [one per repeat]} (or an
error). End of input ends the worker. Anything the suite prints goes to stderr, since stdout
carries the protocol.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path

# Test-only: make every timed step slower by this fraction of its own time (e.g. 0.15),
# to show that the check detects a slowdown. The driver passes it to the working tree's side only.
INJECT_SLOWDOWN_ENV = "MLPBENCH_INJECT_SLOWDOWN"
FINGERPRINT_KEYS = ("device_type", "device_name", "python", "torch", "timm", "transformers", "cpu_threads")
# Not bench.measure.timing.CLOCKS: the checkout a worker times may predate it.
CLOCKS = {"process": time.process_time, "wall": time.perf_counter}


def main() -> None:
    checkout, threads = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever else writes to stdout, Python or native code, goes to stderr
    request = json.loads(sys.stdin.readline())
    try:
        cases = [TimedCase(spec, request, checkout, threads) for spec in request["cases"]]
        fingerprint = environment_fingerprint(threads)
    except Exception as e:  # noqa: BLE001  (the driver turns any failure into one sentence)
        reply(protocol, {"error": sentence(e)})
        return
    reply(protocol, {"ready": fingerprint})
    for line in sys.stdin:
        try:
            reply(protocol, {"seconds_per_step": cases[json.loads(line)["case"]].time()})
        except Exception as e:  # noqa: BLE001
            reply(protocol, {"error": sentence(e)})


def reply(protocol, message: dict) -> None:
    protocol.write(json.dumps(message) + "\n")


def sentence(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class TimedCase:
    """One case of the check (bench.regression.cases.Case: model, size, task, batch, precision, phase), built once
    and timed on every request."""

    def __init__(self, spec: dict, request: dict, checkout: Path, threads: int):
        import torch

        torch.set_num_threads(threads)
        import bench

        if Path(bench.__file__).resolve().parent.parent != checkout:
            raise RuntimeError(f"bench was imported from {bench.__file__}, not from {checkout}")
        from accelerate.utils import send_to_device

        from bench.measure import timing as measure
        from bench.core.config import DataConfig, MeasureConfig, OptimConfig
        from bench.training.loop import make_loaders
        from bench.models import create_model, resolve
        from tasks import create_task

        if not hasattr(measure, "timed_rates"):
            raise RuntimeError(f"the checkout {checkout.name} predates bench.measure.timing.timed_rates, which the check needs")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.clock = CLOCKS[clock_name(self.device.type, threads)]
        self.cfg = MeasureConfig(
            bench_warmup_steps=request["warmup"], bench_steps=request["steps"], bench_repeats=request["repeats"]
        )
        self.batch_size, self.measure = spec["batch"], measure
        from bench.core.recipes import suite_optim

        data_cfg = DataConfig()
        optim_cfg = suite_optim(OptimConfig(batch_size=spec["batch"]), create_task(spec["task"]))
        task = create_task(spec["task"], label_smoothing=optim_cfg.label_smoothing)  # the loss a run with these flags trains
        _, size = resolve(spec["model"], spec["size"], task.spec(data_cfg))  # a bad pair fails before data loads
        torch.manual_seed(0)
        data = task.load(data_cfg, seed=0)
        model = create_model(spec["model"], size, data.spec).to(self.device)
        self.model, self.task, self.precision, self.phase = model, task, spec["precision"], spec["phase"]
        self.batch = send_to_device(next(iter(make_loaders(data, optim_cfg, data_cfg)[0])), self.device)
        self.make_optimizer = lambda params: torch.optim.AdamW(params, lr=optim_cfg.lr)  # noqa: E731
        self.slowdown = float(os.environ.get(INJECT_SLOWDOWN_ENV, 0))
        self.time()  # warm-up: the allocator, the kernels' first calls, the caches

    def time(self) -> list[float]:
        """Seconds per step of each repeat, after the warm-up steps, on a fresh copy of the model.

        A fresh copy (as measure_model takes) puts weights, gradients and optimizer state at new
        addresses every round: a layout that happens to be a few percent slow or fast then
        varies from round to round, where the medians absorb it, instead of biasing a whole side.
        """
        model = copy.deepcopy(self.model)
        model.train(self.phase == "train")
        steps = self.measure.phase_steps(
            model, self.batch, self.task.loss, self.task.loss, self.make_optimizer, self.cfg, self.precision, self.device
        )
        step = slowed_down(steps[self.phase], self.slowdown, self.clock) if self.slowdown else steps[self.phase]
        for _ in range(self.cfg.bench_warmup_steps):
            step()
        rates = self.measure.timed_rates(step, self.batch_size, self.cfg, self.device, clock=self.clock)
        return [self.batch_size / rate for rate in rates]


def slowed_down(step, fraction: float, clock):
    """Test-only (INJECT_SLOWDOWN_ENV): `step`, then real matmuls until `clock` has moved by `fraction` of its time.

    Measured anew on every call, the extra work tracks the step through any change in the
    machine's speed, so the step is that fraction slower, in inference and in training alike.
    CPU only: on a GPU a step's time is not known without synchronising.
    """
    import torch

    operand = torch.randn(64, 64)

    def slower_step():
        start = clock()
        step()
        until = clock() + fraction * (clock() - start)
        while clock() < until:
            torch.mm(operand, operand)

    return slower_step


def clock_name(device_type: str, threads: int) -> str:
    """CPU time for one CPU thread: on a shared machine, time slices that other jobs take from the
    worker advance the wall clock but not the worker's CPU time, so they add no noise. Wall time
    otherwise: GPU work and the parallelism of several threads only show in it."""
    return "process" if device_type == "cpu" and threads == 1 else "wall"


def environment_fingerprint(threads: int) -> dict:
    """What a stored baseline must share with a new measurement for the two to be comparable."""
    from bench.core.results import capture_environment

    environment = capture_environment()
    fingerprint = {key: environment.get(key) for key in FINGERPRINT_KEYS}
    fingerprint["clock"] = clock_name(environment["device_type"], threads)
    return fingerprint


if __name__ == "__main__":
    main()
