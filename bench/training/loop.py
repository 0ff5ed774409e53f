"""The Accelerate train / evaluate loop, shared by every task through the Task interface."""

from __future__ import annotations

import fnmatch
import glob
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Optional

import torch
from timm.data.distributed_sampler import RepeatAugSampler
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from bench.training.checkpoint import Checkpoints, Position
from bench.core.errors import CommandError, SignalCatcher, UserError
from bench.training.history import History
from bench.core.machine import wait_for_measurements
from bench.measure.timing import LoopTimer
from bench.training.progress import progress


class Stopped(CommandError):
    """Training ended early. `status` goes into the result; `exit_code` is the runner's."""

    status = "error"
    exit_code = 1


class Diverged(Stopped):
    status = "diverged"


class OutOfMemory(Stopped):
    status = "oom"


class Interrupted(Stopped):
    status = "interrupted"

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopSignals(SignalCatcher):
    """SIGINT and SIGTERM as Interrupted, raised at once, except inside `deferred()` (the training
    loop), where the first one is only noted so the loop can finish its step and save a checkpoint.
    A second signal there stops at once."""

    @contextmanager
    def deferred(self):
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.received is not None:  # arrived after the loop's last look at it
            raise Interrupted(self.received, f"Interrupted by {signal.Signals(self.received).name}.")

    def _handle(self, signum, frame):
        if self._deferring and self.received is None:
            self.received = signum
            return
        raise Interrupted(signum, f"Interrupted by {signal.Signals(signum).name}.")


signals = StopSignals()  # one per process, as signal handlers are


@dataclass
class TrainStats:
    steps: int
    epochs: float
    samples: int
    final_loss: Optional[float]
    seconds: float
    loop: dict  # LoopTimer.summary(): real throughput with data loading, share spent waiting for data
    resumed_from_step: Optional[int]
    checkpoint: Optional[str]  # the last checkpoint saved, if any


def _no_bar(accelerator):
    """Bars on the main process only; None lets tqdm drop them when output is not a terminal."""
    return None if accelerator.is_local_main_process else True


class SeededRepeatAugSampler(RepeatAugSampler):
    """timm's RepeatAugSampler (each sample `num_repeats` times per epoch, the repeats on different
    processes), its order a function of (seed, epoch): timm's seeds it with the epoch alone, so every
    seed of a run would see the same order. The seed is what this adds."""

    def __init__(self, dataset, num_replicas: int, rank: int, num_repeats: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, num_repeats=num_repeats)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(self.seed * 1_000_003 + epoch)  # distinct (seed, epoch) pairs give distinct orders


def make_loaders(data, optim_cfg, data_cfg, recipe=None, seed: int = 0, num_processes: int = 1, rank: int = 0):
    """Training and evaluation loaders. The training order comes from the Accelerator's seedable
    sampler once prepared: a function of (seed, epoch), the same on every process and after a resume.
    With the recipe's repeated augmentation, it comes from SeededRepeatAugSampler, which already
    gives each process its share: prepare that loader with `prepare_train_loader`."""
    common = dict(collate_fn=data.collate, num_workers=data_cfg.num_workers, pin_memory=torch.cuda.is_available())
    # A partial last batch is kept (small data stays whole: every epoch sees every sample), except
    # a batch of one sample, which batch norm cannot train on, and an odd one under Mixup / CutMix,
    # which mix the two halves of a batch; the recorded epochs then fall short.
    mixing = recipe is not None and (recipe.mixup > 0 or recipe.cutmix > 0)
    drop_last = len(data.train) % optim_cfg.batch_size == 1 or (mixing and len(data.train) % optim_cfg.batch_size % 2 == 1)
    if recipe is not None and recipe.repeated_aug > 1:
        sampler = SeededRepeatAugSampler(data.train, num_processes, rank, recipe.repeated_aug, seed)
        train = DataLoader(data.train, batch_size=optim_cfg.batch_size, sampler=sampler, drop_last=drop_last, **common)
    else:
        train = DataLoader(data.train, batch_size=optim_cfg.batch_size, shuffle=True, drop_last=drop_last, **common)
    if len(train) == 0:
        raise UserError(
            f"--batch-size {optim_cfg.batch_size} is larger than the {len(data.train)} training samples; "
            f"lower --batch-size."
        )
    return train, scoring_loader(data.eval, data, optim_cfg, data_cfg)


def scoring_loader(dataset, data, optim_cfg, data_cfg) -> DataLoader:
    """A loader of a split to score: in order, whole, at the evaluation batch size."""
    return DataLoader(dataset, batch_size=optim_cfg.eval_batch_size or optim_cfg.batch_size, shuffle=False,
                      collate_fn=data.collate, num_workers=data_cfg.num_workers, pin_memory=torch.cuda.is_available())


# Parameters that hold positions or stand for a token: never decayed, whatever their shape. timm's
# models name theirs in no_weight_decay(); the text models (TokenStack.pos) and Hugging Face's
# (position_embeddings, embed_positions) do not, so a dotted part of a parameter's name matches.
POSITION_AND_TOKEN_NAMES = frozenset({
    "pos", "pos_embed", "pos_embedding", "position_embedding", "position_embeddings", "embed_positions",
    "cls_token", "dist_token", "reg_token",
})
# The modules whose `weight` is a matrix (or kernel) that weight decay is meant for.
_MATRIX_MODULES = (torch.nn.Linear, torch.nn.modules.conv._ConvNd, torch.nn.Embedding)
_NORM_MODULES = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm,
                 torch.nn.LocalResponseNorm)


def no_weight_decay_names(model: torch.nn.Module) -> set[str]:
    """Names of the parameters that take no weight decay, the same rule for every family:

    - biases and every parameter of at most one dimension (timm's rule: norms, layer scales);
    - the names `no_weight_decay()` returns, on the model or any submodule (timm's ViT: pos_embed,
      cls_token), relative to that module; fnmatch patterns and module names match too;
    - position embeddings and class tokens by name (POSITION_AND_TOKEN_NAMES);
    - the parameters of normalization and affine modules (ResMLP's Affine alpha / beta are (1, 1, C));
    - any other vector-shaped parameter (one dimension above 1, e.g. a (1, 1, C) layer scale or
      class token) that is not the weight of a Linear, convolution or embedding.

    The weights of Linear, convolution and embedding modules are decayed, except position embeddings.
    """
    excluded: set[str] = set()
    modules = dict(model.named_modules())
    for prefix, module in modules.items():
        listed = getattr(module, "no_weight_decay", None)
        if not callable(listed):
            continue
        patterns = set(listed())
        for name, _ in module.named_parameters():
            if any(fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern + ".") for pattern in patterns):
                excluded.add(f"{prefix}.{name}" if prefix else name)
    for name, p in model.named_parameters():
        owner = modules[name.rpartition(".")[0]]
        vector = sum(d > 1 for d in p.shape) <= 1
        if (
            p.ndim <= 1
            or name.endswith(".bias")
            or not POSITION_AND_TOKEN_NAMES.isdisjoint(name.split("."))
            or isinstance(owner, _NORM_MODULES)
            or type(owner).__name__ == "Affine"
            or (vector and not isinstance(owner, _MATRIX_MODULES))
        ):
            excluded.add(name)
    return excluded


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The optimizer's parameter groups: `weight_decay` on weight matrices, none on the parameters
    `no_weight_decay_names` lists. timm's param_groups_weight_decay builds them (frozen parameters
    left out, empty groups dropped), with those names as its no-weight-decay list."""
    return param_groups_weight_decay(
        model, weight_decay, no_weight_decay_list=sorted(glob.escape(name) for name in no_weight_decay_names(model))
    )


def prepare_train_loader(accelerator, train_loader):
    """The training loader prepared: through the Accelerator, which shards it over the processes, or,
    when its sampler already gives each process its share (repeated augmentation), wrapped for this
    process alone (batches moved to the device, epochs and the end of the data tracked, as prepare does)."""
    if not isinstance(train_loader.sampler, RepeatAugSampler):
        return accelerator.prepare(train_loader)
    from accelerate.data_loader import prepare_data_loader

    loader = prepare_data_loader(train_loader, accelerator.device, num_processes=1, process_index=0,
                                 put_on_device=True, non_blocking=torch.cuda.is_available())
    accelerator._dataloaders.append(loader)  # as prepare() registers it (skip_first_batches, free_memory)
    return loader


# The recipe's optimizer names -> timm's (create_optimizer_v2): "sgd" is SGD with momentum, not
# timm's "sgd", which is Nesterov's.
TIMM_OPTIMIZERS = {"adamw": "adamw", "lamb": "lamb", "sgd": "momentum"}


def make_optimizer(model: torch.nn.Module, recipe, optim_cfg) -> torch.optim.Optimizer:
    """The recipe's optimizer over param_groups (weight decay on weight matrices only), at the run's
    learning rate, through timm's create_optimizer_v2."""
    kwargs = {"betas": tuple(recipe.betas)} if recipe.optimizer != "sgd" else {"momentum": recipe.momentum}
    return create_optimizer_v2(param_groups(model, optim_cfg.weight_decay), TIMM_OPTIMIZERS[recipe.optimizer],
                               lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay, **kwargs)


def total_steps(optim_cfg, batches_per_epoch: int) -> int:
    """Optimizer steps of the run: --max-steps, or --epochs over this process's batches."""
    if optim_cfg.max_steps is not None:
        return optim_cfg.max_steps
    return max(1, math.ceil(optim_cfg.epochs * batches_per_epoch / optim_cfg.grad_accum))


def make_scheduler(optimizer, optim_cfg, batches_per_epoch: int):
    """Linear warm-up then cosine decay over the run's optimizer steps.

    Prepare it with an Accelerator made with step_scheduler_with_optimizer=False: it is stepped
    once per optimizer step whatever the number of processes, and saved with the checkpoints.
    """
    steps = total_steps(optim_cfg, batches_per_epoch)
    return get_cosine_schedule_with_warmup(optimizer, round(optim_cfg.warmup_fraction * steps), steps)


def train(accelerator, task, model, optimizer, scheduler, train_loader, optim_cfg,
          checkpoints: Optional[Checkpoints] = None, start: Optional[Position] = None,
          history: Optional[History] = None, ema=None) -> TrainStats:
    """Train from `start` (a checkpoint's position) for the configured steps, adding to `history`
    the mean training loss of every step and, when due, a mid-training evaluation. `ema`: timm's
    ModelEmaV3 of the model, updated after every optimizer step.

    Raises Diverged on a non-finite loss, OutOfMemory, and Interrupted after saving a checkpoint
    when SIGINT / SIGTERM arrives. Every process takes these decisions together, at the same step.
    """
    steps = total_steps(optim_cfg, len(train_loader))
    position = replace(start) if start else Position()
    resumed_from = start.step if start else None
    saved, last_loss = None, None
    model.train()
    nonfinite = torch.zeros((), dtype=torch.bool, device=accelerator.device)
    bar = tqdm(total=steps, initial=position.step, desc="train", unit="step", disable=_no_bar(accelerator),
               dynamic_ncols=True)
    started = time.perf_counter()
    timer = LoopTimer()
    progress.phase("training", position.step, steps)  # for the sweep that started the run, if one did
    with signals.deferred():
        while position.step < steps:
            train_loader.set_epoch(position.epoch)  # the data order is a function of (seed, epoch)
            batches = accelerator.skip_first_batches(train_loader, position.batch) if position.batch else train_loader
            for batch in timer.batches(batches):
                wait_for_measurements()  # another run of the sweep is measuring: pause meanwhile
                try:
                    with accelerator.accumulate(model):
                        loss = task.loss(model, batch)
                        nonfinite |= ~torch.isfinite(loss.detach())
                        accelerator.backward(loss)
                        if accelerator.sync_gradients and optim_cfg.grad_clip is not None:
                            accelerator.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                except torch.OutOfMemoryError:
                    raise OutOfMemory(
                        f"Out of memory at training step {position.step + 1} with --batch-size {optim_cfg.batch_size} "
                        f"per process; lower --batch-size (raise --grad-accum to keep the global batch)."
                    ) from None
                position.batch += 1
                position.samples += task.batch_size(batch) * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                scheduler.step()
                position.step += 1
                if ema is not None:
                    ema.update(accelerator.unwrap_model(model), step=position.step)
                end_of_epoch = accelerator.gradient_state.end_of_dataloader
                if end_of_epoch:
                    position.epoch, position.batch = position.epoch + 1, 0
                diverged, stop = _on_any_process(accelerator, nonfinite, signals.received is not None)
                if diverged:
                    raise Diverged(f"Training diverged: the loss became NaN or infinite by step {position.step}.")
                last_loss = loss.detach()
                loss_value, lr = last_loss.item(), scheduler.get_last_lr()[0]
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
                accelerator.log({"train/loss": loss_value, "train/lr": lr}, step=position.step)  # trackers, if any
                if history is not None:
                    history.add_loss(loss_value)
                    if history.due(position.step, last=position.step >= steps):
                        progress.phase("evaluation", position.step, steps)
                        history.evaluate_now(accelerator, position)
                        progress.phase("training", position.step, steps)
                progress.step(position.step, steps)
                if checkpoints and checkpoints.due(position.step, end_of_epoch or stop or position.step >= steps):
                    saved = checkpoints.save(accelerator, position)
                if stop:
                    kept = f" and saved a checkpoint in {saved}; continue with --resume" if saved else ""
                    raise Interrupted(signals.received or signal.SIGTERM,
                                      f"Interrupted at step {position.step} of {steps}{kept}.")
                if position.step >= steps:
                    break
    bar.close()
    seconds = time.perf_counter() - started
    # The last batch's loss over every process's share of it; none when a resumed run had no step left.
    final_loss = None if last_loss is None else accelerator.reduce(last_loss, "mean").item()
    epochs = position.samples / max(1, len(train_loader.dataset))
    return TrainStats(position.step, epochs, position.samples, final_loss, seconds, timer.summary(accelerator),
                      resumed_from, None if saved is None else str(saved))


def _on_any_process(accelerator, *flags) -> list[bool]:
    """Each flag OR-ed over the processes: one process stopping alone would leave the others waiting."""
    local = torch.stack([torch.as_tensor(f, dtype=torch.float32, device=accelerator.device) for f in flags])
    if accelerator.num_processes > 1:
        local = accelerator.reduce(local, "sum")
    return (local > 0).tolist()


@torch.inference_mode()
def evaluate(accelerator, task, model, eval_loader, data) -> dict[str, float]:
    """Metrics over the whole evaluation set, gathered across processes without duplicates."""
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {}
    for batch in tqdm(eval_loader, desc="eval", unit="batch", disable=_no_bar(accelerator),
                      dynamic_ncols=True, leave=False):
        wait_for_measurements()
        try:
            outputs = accelerator.gather_for_metrics(task.eval_outputs(model, batch, data.spec))
        except torch.OutOfMemoryError:
            raise OutOfMemory(
                f"Out of memory in evaluation with batch size {task.batch_size(batch)} per process; "
                f"lower --eval-batch-size."
            ) from None
        for name, value in outputs.items():
            collected.setdefault(name, []).append(value.cpu())
    model.train()
    return task.compute_metrics({k: torch.cat(v) for k, v in collected.items()}, data)
