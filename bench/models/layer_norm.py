"""LayerNorm whose gradients do not depend on the number of CPU threads.

PyTorch's CPU LayerNorm backward sums the weight and bias gradients over the batch in one partial
sum per thread, so a run with two threads and the same run with one differ in the last bits from
the first step, and by the end of training in the metric (ViT-mini on digits: top-1 0.9053 with
two threads, 0.9304 with one). Here the backward runs with one thread: its results are then those
of a one-thread run, bit for bit, whatever the process uses elsewhere. The forward is the same
kernel as nn.LayerNorm's, so outputs and weights are unchanged. The other kernels the models use
compute each output in an order that does not depend on the threads, MKL's matrix products in its
strict reproducible mode (bench/process.py).

The norm is a small share of a step, so running its backward serially costs a several-thread run
little (`python -m bench.defaults_check` measures it with the rest), and on one thread nothing
changes. Under torch.compile the plain kernel is used: a compiled graph chooses its own kernels.
"""

from __future__ import annotations

import torch
from timm.layers import LayerNorm as TimmLayerNorm
from torch import nn

# Classes whose forward is F.layer_norm with the module's own parameters (timm's unless fast norm is on)
PLAIN = (nn.LayerNorm, TimmLayerNorm)


class _OneThreadBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape, eps):
        out, mean, rstd = torch.ops.aten.native_layer_norm(x, normalized_shape, weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.normalized_shape = normalized_shape
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            grads = torch.ops.aten.native_layer_norm_backward(
                grad, x, ctx.normalized_shape, mean, rstd, weight, bias, list(ctx.needs_input_grad[:3]))
        finally:
            torch.set_num_threads(threads)
        return (*grads, None, None)


class ThreadInvariantLayerNorm(nn.LayerNorm):
    """nn.LayerNorm with the same parameters and outputs; its gradients are a one-thread run's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or self.weight is None or self.bias is None or not torch.is_grad_enabled()
                or torch.compiler.is_compiling()):
            return super().forward(x)
        return _OneThreadBackward.apply(x, self.weight, self.bias, self.normalized_shape, self.eps)


def make_thread_invariant(model: nn.Module) -> nn.Module:
    """Turn every plain LayerNorm of `model` (PLAIN) into a ThreadInvariantLayerNorm, in place (its
    class only: parameters, buffers and hooks stay as they are). Other norms are left alone."""
    for module in model.modules():
        if type(module) in PLAIN and not getattr(module, "_fast_norm", False):
            module.__class__ = ThreadInvariantLayerNorm
    return model
