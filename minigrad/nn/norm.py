"""LayerNorm, GroupNorm and BatchNorm1d/2d with PyTorch's parameters, buffers and running-statistics rules."""
from minigrad import backend
from minigrad import functional as F
from minigrad.core import Tensor, as_tensor
from minigrad.nn import init
from minigrad.nn.linear import empty_parameter, zeros_tensor
from minigrad.nn.module import Module


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes of each sample; weight starts at 1, bias at 0."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                                 else tuple(normalized_shape))
        self.eps, self.elementwise_affine = eps, elementwise_affine
        affine = empty_parameter(self.normalized_shape, device, dtype) if elementwise_affine else None
        self.register_parameter("weight", affine)
        self.register_parameter("bias", empty_parameter(self.normalized_shape, device, dtype)
                                if elementwise_affine and bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        x = as_tensor(input)
        ns = self.normalized_shape
        if x.shape[x.ndim - len(ns):] != ns:
            raise ValueError(f"LayerNorm(normalized_shape={ns}): input of shape {x.shape} must end with {ns}")
        return F.layer_norm(x, ns, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalise each sample over groups of ``num_channels // num_groups`` channels and all positions, then a
    per-channel affine map; no batch statistics, so training and eval agree and any batch size works."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.register_parameter("weight", empty_parameter((num_channels,), device, dtype) if affine else None)
        self.register_parameter("bias", empty_parameter((num_channels,), device, dtype) if affine else None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        x = as_tensor(input)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm(num_channels={self.num_channels}): input must be (N, C, ...) with "
                             f"C = {self.num_channels}, got shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _BatchNorm(Module):
    """Per-channel normalisation over the batch (and spatial) axes, with running statistics for eval."""

    ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", empty_parameter((num_features,), device, dtype) if affine else None)
        self.register_parameter("bias", empty_parameter((num_features,), device, dtype) if affine else None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros_tensor((num_features,), device, dtype))
            self.register_buffer("running_var", zeros_tensor((num_features,), device, dtype))
            nbt = backend.asarray(0, dtype="int64", device=device or "cpu")
            self.register_buffer("num_batches_tracked", Tensor(nbt))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            with backend.device_scope(self.running_mean.data):
                self.running_mean.data[...] = 0
                self.running_var.data[...] = 1
                self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        x = as_tensor(input)
        name = type(self).__name__
        if x.ndim not in self.ndims:
            raise ValueError(f"{name}: expected {' or '.join(f'{n}-D' for n in self.ndims)} input, got shape "
                             f"{x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}(num_features={self.num_features}): input has {x.shape[1]} channels on "
                             f"axis 1 (shape {x.shape})")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / int(self.num_batches_tracked.item())
        # without running statistics (buffers None) the batch's own normalise in eval mode too
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training or not self.track_running_stats, momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, L) inputs."""

    ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over (N, C, H, W) inputs."""

    ndims = (4,)
