"""Batch norm synchronised across the processes of a distributed run: batch statistics of the whole batch
of every rank, so that N ranks of batch b train as one process of batch N*b would.

On GPUs this is :class:`torch.nn.SyncBatchNorm`. PyTorch's SyncBatchNorm refuses CPU tensors ("expected
input tensor to be on GPU"), so on the CPU (the gloo backend) :class:`AllReduceBatchNorm` does the same
with two differentiable all-reduces per layer (the sum, then the sum of squared deviations from the
global mean: a two-pass variance, as BatchNorm's). Both keep BatchNorm's parameter and buffer names, so
the weights save and load as a plain :class:`torch.nn.BatchNorm2d`'s.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with its gradient: the gradient of a sum over ranks is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102 - autograd protocol
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102 - autograd protocol
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all ranks of the default process group, differentiable."""
    return _SumOverRanks.apply(tensor)


class AllReduceBatchNorm(nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` whose training statistics are those of every rank's batch together.

    Outside training, or without an initialised process group, it is a plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - nn.Module protocol
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dtype, x = x.dtype, x.float()  # statistics in float32 whatever autocast chose
        dims = (0, 2, 3)
        local_count = x.new_tensor([x.numel() // x.shape[1]])
        summed = sum_over_ranks(torch.cat([x.sum(dims), local_count]))
        count = summed[-1].detach()
        mean = summed[:-1] / count
        centred = x - mean.view(1, -1, 1, 1)
        var = sum_over_ranks((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach() * count / (count - 1).clamp_min(1))
        return out.to(dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased_var, alpha=momentum)


def _to_all_reduce(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, AllReduceBatchNorm):
        out = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        # The same parameter and buffer objects: an optimizer made before still holds them.
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        module.add_module(name, _to_all_reduce(child))
    return module


def synchronise_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace the batch norm layers below ``model`` (in place) by synchronised ones; returns ``model``.

    :class:`torch.nn.SyncBatchNorm` on a GPU, :class:`AllReduceBatchNorm` elsewhere (with a logged note).
    """
    if not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) for m in model.modules()):
        return model
    if device.type == "cuda":
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        log.info("torch.nn.SyncBatchNorm works on GPUs only; on the %s, batch norm statistics are "
                 "synchronised by all-reduce (AllReduceBatchNorm)", device.type)
        converted = _to_all_reduce(model)
    if converted is not model:  # only a model that is itself one batch norm layer is replaced
        raise ValueError("synchronise_batch_norm needs a model that contains its batch norm layers")
    return model
