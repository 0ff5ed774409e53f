"""The Accelerate train / evaluate loop, shared by every task through the Task interface."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from bench.errors import UserError
from bench.measure import LoopTimer


class Diverged(Exception):
    """The loss became NaN or infinite."""


@dataclass
class TrainStats:
    steps: int
    epochs: float
    samples: int
    final_loss: float
    seconds: float
    loop: dict  # LoopTimer.summary(): real throughput with data loading, share spent waiting for data


def _no_bar(accelerator):
    """Bars on the main process only; None lets tqdm drop them when output is not a terminal."""
    return None if accelerator.is_local_main_process else True


def make_loaders(data, optim_cfg, data_cfg, seed: int):
    generator = torch.Generator().manual_seed(seed)
    common = dict(collate_fn=data.collate, num_workers=data_cfg.num_workers, pin_memory=torch.cuda.is_available())
    train = DataLoader(data.train, batch_size=optim_cfg.batch_size, shuffle=True, drop_last=True,
                       generator=generator, **common)
    if len(train) == 0:
        raise UserError(
            f"--batch-size {optim_cfg.batch_size} is larger than the {len(data.train)} training samples; "
            f"lower --batch-size."
        )
    eval_ = DataLoader(data.eval, batch_size=optim_cfg.eval_batch_size or optim_cfg.batch_size, shuffle=False, **common)
    return train, eval_


def param_groups(model: torch.nn.Module, weight_decay: float):
    """No weight decay on biases, norms, affine and layer-scale vectors (1-d parameters), as timm does."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def total_steps(optim_cfg, batches_per_epoch: int) -> int:
    """Optimizer steps of the run: --max-steps, or --epochs over this process's batches."""
    if optim_cfg.max_steps is not None:
        return optim_cfg.max_steps
    return max(1, math.ceil(optim_cfg.epochs * batches_per_epoch / optim_cfg.grad_accum))


def train(accelerator, task, model, optimizer, train_loader, optim_cfg) -> TrainStats:
    """Train for the configured steps; raise Diverged on a non-finite loss."""
    steps = total_steps(optim_cfg, len(train_loader))
    # The scheduler is stepped by hand once per optimizer step (not prepared), so its length is
    # the run's real number of optimizer steps whatever the number of processes.
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(optim_cfg.warmup_fraction * steps), steps)
    model.train()
    step, samples, loss_value = 0, 0, float("nan")
    bar = tqdm(total=steps, desc="train", unit="step", disable=_no_bar(accelerator), dynamic_ncols=True)
    start = time.perf_counter()
    epoch = 0
    timer = LoopTimer()
    while step < steps:
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        for batch in timer.batches(train_loader):
            with accelerator.accumulate(model):
                loss = task.loss(model, batch)
                if not torch.isfinite(loss.detach()):
                    raise Diverged(f"the loss became {loss.item()} at step {step}")
                accelerator.backward(loss)
                if accelerator.sync_gradients and optim_cfg.grad_clip is not None:
                    accelerator.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            samples += task.batch_size(batch) * accelerator.num_processes
            if accelerator.sync_gradients:
                scheduler.step()
                step += 1
                loss_value = loss.item()
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if step >= steps:
                    break
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - start
    epochs = samples / max(1, len(train_loader.dataset))
    return TrainStats(steps, epochs, samples, loss_value, seconds, timer.summary(accelerator))


@torch.inference_mode()
def evaluate(accelerator, task, model, eval_loader, data) -> dict[str, float]:
    """Metrics over the whole evaluation set, gathered across processes without duplicates."""
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {}
    for batch in tqdm(eval_loader, desc="eval", unit="batch", disable=_no_bar(accelerator),
                      dynamic_ncols=True, leave=False):
        outputs = accelerator.gather_for_metrics(task.eval_outputs(model, batch))
        for name, value in outputs.items():
            collected.setdefault(name, []).append(value.cpu())
    model.train()
    return task.compute_metrics({k: torch.cat(v) for k, v in collected.items()}, data)
