"""Array-level numerics shared by the primitive ops and every fused op: the max-shifted logsumexp, softmax and
log-softmax, and ``sum_to`` (undo broadcasting). They take and return raw arrays (NumPy or CuPy), never Tensors.

The shift: log Σ exp(x) = m + log Σ exp(x − m) with m the maximum, so no exp overflows. ``logsumexp`` shifts a
slice whose maximum is ±inf by 0 instead (``max_shift``), so that a slice of all −inf gives −inf and one with +inf
gives +inf, as PyTorch's ``logsumexp``; ``softmax`` and ``log_softmax`` shift by the maximum as it is, so that a
slice holding +inf or NaN, or all −inf, is NaN, as PyTorch's.
"""
from minigrad import backend
from minigrad.backend import get_array_module, ignore_float_errors


def max_shift(x, axis):
    """The maximum over ``axis`` (kept as a size-1 axis), 0 where that maximum is ±inf. On the host
    ``fmax.reduce`` (no NaN bookkeeping) is several times faster than ``max``."""
    xp = get_array_module(x)
    m = xp.fmax.reduce(x, axis=axis, keepdims=True) if xp is backend.np else x.max(axis=axis, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


def logsumexp(x, axis, keepdims=False):
    """log Σ exp(x) over ``axis`` (an int or a tuple), overflow-safe."""
    xp = get_array_module(x)
    m = max_shift(x, axis)
    with ignore_float_errors():  # log(0) = −inf is the intended value for an all −inf slice
        y = xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return y if keepdims else y.squeeze(axis)


def softmax(x, axis):
    """exp(x) / Σ exp(x) over ``axis``, overflow-safe."""
    xp = get_array_module(x)
    if x.size == 0:  # nothing to normalise (and the maximum of an empty axis has no identity)
        return xp.empty_like(x)
    with ignore_float_errors():
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
    """x − logsumexp(x) over ``axis``, overflow-safe."""
    xp = get_array_module(x)
    if x.size == 0:
        return xp.empty_like(x)
    m = x.max(axis=axis, keepdims=True)
    with ignore_float_errors():
        return x - (xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m)


def sum_to(g, shape):
    """Sum the axes of ``g`` that broadcasting added or stretched, giving ``shape``."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    y = g.sum(axis=axes, keepdims=True) if axes else g
    return y.reshape(shape) if lead else y
