"""LayerNorm and convolutions whose gradients do not depend on the number of CPU threads.

Two CPU kernels the models use reduce a weight gradient in one partial sum per thread, so a run
with two threads and the same run with one differ in the last bits from the first step, and by
the end of training in the metric (ViT-mini on digits: top-1 0.9053 with two threads, 0.9304 with
one): PyTorch's LayerNorm backward (its weight and bias gradients, summed over the batch), and on
CPUs with AVX-512 oneDNN's convolution backward (its weight gradient: the patch embedding's).
Here those backwards run with one thread: their results are then those of a one-thread run, bit
for bit, whatever the process uses elsewhere. The forwards are the plain modules' kernels, so
outputs and weights are unchanged. The other kernels the models use compute each output in an
order that does not depend on the threads, MKL's matrix products in its strict reproducible mode
(bench/core/process.py).

Both are a small share of a step, so running their backwards serially costs a several-thread run
little (`python -m bench.defaults_check` measures it with the rest), and on one thread nothing
changes. Under torch.compile the plain kernels are used: a compiled graph chooses its own kernels.
"""

from __future__ import annotations

import torch
from timm.layers import LayerNorm as TimmLayerNorm
from torch import nn


def _on_one_thread(op, *args):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return op(*args)
    finally:
        torch.set_num_threads(threads)


def _plain_path(x: torch.Tensor) -> bool:
    """Where the modules keep their plain forward: off the CPU, without autograd, or compiled."""
    return x.device.type != "cpu" or not torch.is_grad_enabled() or torch.compiler.is_compiling()


class _LayerNormOneThreadBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape, eps):
        out, mean, rstd = torch.ops.aten.native_layer_norm(x, normalized_shape, weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.normalized_shape = normalized_shape
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        grads = _on_one_thread(torch.ops.aten.native_layer_norm_backward, grad, x, ctx.normalized_shape, mean,
                               rstd, weight, bias, list(ctx.needs_input_grad[:3]))
        return (*grads, None, None)


class ThreadInvariantLayerNorm(nn.LayerNorm):
    """nn.LayerNorm with the same parameters and outputs; its gradients are a one-thread run's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain_path(x) or self.weight is None or self.bias is None:
            return super().forward(x)
        return _LayerNormOneThreadBackward.apply(x, self.weight, self.bias, self.normalized_shape, self.eps)


class _ConvOneThreadBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation, groups, None if bias is None else list(bias.shape))
        return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False, [0] * len(stride), groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, bias_shape = ctx.conv
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias_shape is not None and ctx.needs_input_grad[2]]
        grads = _on_one_thread(torch.ops.aten.convolution_backward, grad, x, weight, bias_shape, stride, padding,
                               dilation, False, [0] * len(stride), groups, wanted)
        return (*grads, None, None, None, None)


class _ThreadInvariantConv:
    """A convolution with the same parameters and outputs; its gradients are a one-thread run's.
    Padding given as a word ("same") or by another mode than zeros keeps the plain path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (_plain_path(x) or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or x.dim() != len(self.stride) + 2):
            return super().forward(x)
        return _ConvOneThreadBackward.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                            self.groups)


class ThreadInvariantConv1d(_ThreadInvariantConv, nn.Conv1d):
    pass


class ThreadInvariantConv2d(_ThreadInvariantConv, nn.Conv2d):
    pass


# The plain classes (timm's LayerNorm's forward is F.layer_norm with its own parameters, unless
# fast norm is on) and what each becomes
THREAD_INVARIANT = {
    nn.LayerNorm: ThreadInvariantLayerNorm,
    TimmLayerNorm: ThreadInvariantLayerNorm,
    nn.Conv1d: ThreadInvariantConv1d,
    nn.Conv2d: ThreadInvariantConv2d,
}


def make_thread_invariant(model: nn.Module) -> nn.Module:
    """Turn every plain LayerNorm and convolution of `model` (THREAD_INVARIANT) into its
    thread-invariant class, in place (its class only: parameters, buffers and hooks stay as they
    are). Other modules are left alone."""
    for module in model.modules():
        if type(module) in THREAD_INVARIANT and not getattr(module, "_fast_norm", False):
            module.__class__ = THREAD_INVARIANT[type(module)]
    return model
