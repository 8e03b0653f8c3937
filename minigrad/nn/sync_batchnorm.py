"""``SyncBatchNorm``: BatchNorm whose batch statistics are those of the whole batch across the ranks."""
from minigrad import distributed
from minigrad.core import as_tensor, no_grad
from minigrad.nn.norm import _BatchNorm


class SyncBatchNorm(_BatchNorm):
    """PyTorch's ``nn.SyncBatchNorm``: in training, each channel's mean and variance are taken over the samples
    of every rank (two differentiable all-reduces: Σx, then Σ(x − μ)²), so N ranks with B samples each
    normalise exactly as one process with BatchNorm on all N·B samples, forward and backward; the running
    statistics follow the global batch too. Eval mode, or no process group of more than one rank, is BatchNorm.
    Inputs (N, C, ...) of any rank ≥ 2; ``convert_sync_batchnorm`` swaps it in for BatchNorm1d/2d layers."""

    ndims = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        if process_group is not None and process_group is not distributed.group():
            raise ValueError("SyncBatchNorm: only the default process group (process_group=None) exists")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input):
        x = as_tensor(input)
        if x.ndim not in self.ndims or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm(num_features={self.num_features}): expected (N, {self.num_features}, "
                             f"...) input, got shape {x.shape}")
        group = distributed.group() if distributed.is_initialized() else None
        if not self.training or group is None or group.size == 1:
            return super().forward(x)
        c = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        stat_shape = (1, c) + (1,) * (x.ndim - 2)
        count = x.xp.asarray([x.size // c], dtype="float64")
        group.allreduce_aux(count)
        n = float(count[0])
        if n <= 1:
            raise ValueError(f"SyncBatchNorm: training needs more than 1 value per channel over all ranks, got {n:g}")
        mu = distributed.all_reduce_sum(x.sum(axis=axes, keepdims=True)) * (1.0 / n)
        d = x - mu
        var = distributed.all_reduce_sum((d * d).sum(axis=axes, keepdims=True)) * (1.0 / n)
        y = d * (var + self.eps) ** -0.5
        if self.track_running_stats:
            self._update_running(mu, var, n)
        if self.weight is not None:
            y = y * self.weight.reshape(stat_shape)
        return y if self.bias is None else y + self.bias.reshape(stat_shape)

    def _update_running(self, mu, var, n):
        with no_grad():
            self.num_batches_tracked.data += 1
            m = 1.0 / int(self.num_batches_tracked.item()) if self.momentum is None else float(self.momentum)
            rm, rv, c = self.running_mean.data, self.running_var.data, self.num_features
            rm *= 1.0 - m
            rm += m * mu.data.reshape(c).astype(rm.dtype, copy=False)
            rv *= 1.0 - m
            rv += (m * n / (n - 1)) * var.data.reshape(c).astype(rv.dtype, copy=False)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm1d/2d replaced by a SyncBatchNorm holding the same parameters and
        running statistics (returns the new module when ``module`` itself is one)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                      process_group)
            for name in ("weight", "bias"):
                if getattr(module, name) is not None:
                    setattr(new, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(new, name, getattr(module, name))
            new.train(module.training)
            return new
        for name, child in list(module.named_children()):
            if child is not None:
                setattr(module, name, cls.convert_sync_batchnorm(child, process_group))
        return module

