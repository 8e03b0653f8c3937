"""Layer, group and batch normalisation, composed from primitives (mean, subtract, rsqrt, multiply).

Composition costs a few temporaries but every derivative order comes for free; the backward it produces is
derived by hand in docs/derivations/norm.md. Running statistics are updated on raw arrays, outside the graph.
"""
import math

from minigrad import backend
from minigrad.core import Tensor, as_tensor
from minigrad.ops.reduction import mean
from minigrad.ops.shape import reshape


def _normalize(x, axes, eps):
    """(x − μ) / √(σ² + ε) over ``axes``, with the biased variance; also returns μ and σ² (keepdims)."""
    mu = mean(x, axes, keepdims=True)
    d = x - mu
    var = mean(d * d, axes, keepdims=True)
    return d * (var + eps) ** -0.5, mu, var


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` axes, then scale by ``weight`` and shift by ``bias``."""
    x = as_tensor(input)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not ns or x.shape[x.ndim - len(ns):] != ns:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with normalized_shape {ns}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != ns:
            raise ValueError(f"layer_norm: {name} must have shape {ns}, got {tuple(p.shape)}")
    y = _normalize(x, tuple(range(x.ndim - len(ns), x.ndim)), eps)[0]
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Split the C channels of ``input`` (N, C, *) into ``num_groups`` groups and normalise each sample's
    group over its channels and positions; then scale by ``weight`` and shift by ``bias``, both (C,)."""
    x = as_tensor(input)
    if x.ndim < 2:
        raise ValueError(f"group_norm: input must have a channel axis (N, C, ...), got shape {x.shape}")
    n, c = x.shape[:2]
    if not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        raise ValueError(f"group_norm: num_groups must be a positive divisor of the {c} channels of input "
                         f"{x.shape}, got {num_groups!r}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise ValueError(f"group_norm: {name} must have shape ({c},) for input {x.shape}, got {tuple(p.shape)}")
    m = c // num_groups * math.prod(x.shape[2:])
    y = reshape(_normalize(reshape(x, (n, num_groups, m)), (2,), eps)[0], x.shape)
    stat_shape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * reshape(weight, stat_shape)
    return y if bias is None else y + reshape(bias, stat_shape)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise each channel (axis 1) over the batch and spatial axes.

    Training: batch statistics, and the running ones (if given) move by ``momentum`` towards the batch mean
    and the *unbiased* batch variance, as in PyTorch. Otherwise the running statistics normalise.
    """
    x = as_tensor(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must have a channel axis (N, C, ...), got shape {x.shape}")
    c = x.shape[1]
    for name, p in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},) for input {x.shape}, got {tuple(p.shape)}")
    stat_shape = (1, c) + (1,) * (x.ndim - 2)
    if training or running_mean is None or running_var is None:
        axes = (0,) + tuple(range(2, x.ndim))
        n = x.size // c if c else 0
        if training and n == 1:
            raise ValueError(f"batch_norm: training needs more than 1 value per channel, got input {x.shape}")
        if x.size == 0:  # an empty batch: an empty output, running statistics untouched (as PyTorch)
            y = x * 0.0
            if weight is not None:
                y = y * reshape(weight, stat_shape)
            return y if bias is None else y + reshape(bias, stat_shape)
        y, mu, var = _normalize(x, axes, eps)
        if training and running_mean is not None:
            m = float(momentum)
            rm, rv = running_mean.data, running_var.data
            rm *= 1.0 - m
            rm += m * mu.data.reshape(c).astype(rm.dtype, copy=False)
            rv *= 1.0 - m
            rv += (m * n / (n - 1)) * var.data.reshape(c).astype(rv.dtype, copy=False)
        if weight is not None:
            y = y * reshape(weight, stat_shape)
        return y if bias is None else y + reshape(bias, stat_shape)
    xp = backend.get_array_module(x.data)
    inv = Tensor(xp.reshape((running_var.data + eps) ** -0.5, stat_shape).astype(x.dtype, copy=False))
    rm = Tensor(xp.reshape(running_mean.data, stat_shape).astype(x.dtype, copy=False))
    scale = inv if weight is None else inv * reshape(weight, stat_shape)
    shift = -rm * scale if bias is None else reshape(bias, stat_shape) - rm * scale
    return x * scale + shift
