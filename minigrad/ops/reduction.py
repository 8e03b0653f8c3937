"""Reductions with NumPy's ``axis=``/``keepdims=``: sum, mean, max, min, var, std, norm, and the log-sum-exp
family (logsumexp, softmax, log_softmax), whose forwards share the overflow-safe shift of ``array_math``."""
from minigrad import backend
from minigrad.aliases import torch_names
from minigrad.backend import get_array_module
from minigrad.core import Function, Tensor, as_tensor, on_inputs_device
from minigrad.ops import array_math
from minigrad.ops.elementwise import abs, exp, sqrt, where
from minigrad.ops.shape import broadcast_to, reshape


def _axes(axis, ndim, fn="reduction"):
    """The reduced axes as a sorted tuple, validated (IndexError for an axis out of range)."""
    return backend.normalize_axes(axis, ndim, fn)


def _keep_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _expand(gy, in_shape, axes, keepdims):
    """Broadcast a reduced gradient back over the reduced axes."""
    if not keepdims:
        gy = reshape(gy, _keep_shape(in_shape, axes))
    return broadcast_to(gy, in_shape)


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _expand(gy, self.in_shape, self.axes, self.keepdims)

    def jvp(self, tx):
        return Sum(self.axes, self.keepdims)(tx)


@torch_names
def sum(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Sum(_axes(axis, x.ndim, "sum"), keepdims)(x)


@torch_names
def mean(x, axis=None, keepdims=False):
    x = as_tensor(x)
    axes = _axes(axis, x.ndim, "mean")
    n = 1
    for a in axes:
        n *= x.shape[a]
    return sum(x, axes, keepdims) * (1.0 / n if n else float("nan"))


class Max(Function):
    """Maximum (or minimum, ``mode="min"``) over axes; tied extremes share the gradient equally."""

    def __init__(self, axes, keepdims, mode="max"):
        self.axes, self.keepdims, self.mode = axes, keepdims, mode

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{self.mode} of an empty tensor of shape {x.shape} has no identity")
        self.in_shape = x.shape
        y = x.max(axis=self.axes, keepdims=True) if self.mode == "max" else x.min(axis=self.axes, keepdims=True)
        if self.needs_input_grad[0]:
            hit = x == y  # where the extremes sit: one byte per element
            if y.dtype.kind == "f":  # a NaN maximum routes the gradient to the NaN element(s), as in PyTorch
                xp = get_array_module(x)
                hit |= xp.isnan(x) & xp.isnan(y)
            self.save_for_backward(hit)
        return y if self.keepdims else y.reshape(tuple(s for i, s in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        hit = self.saved_tensors[0].data.astype(gy.dtype)
        weight = Tensor(hit / hit.sum(axis=self.axes, keepdims=True))
        return _expand(gy, self.in_shape, self.axes, self.keepdims) * weight

    def jvp(self, tx):
        x = self.inputs[0].data
        y = self.output().data
        if not self.keepdims:
            y = y.reshape(_keep_shape(self.in_shape, self.axes))
        hit = (x == y).astype(tx.dtype)
        return Sum(self.axes, self.keepdims)(tx * Tensor(hit / hit.sum(axis=self.axes, keepdims=True)))


@torch_names
def max(x, axis=None, keepdims=False):
    """Largest values (NumPy's ``max``: values only; use ``argmax`` for indices)."""
    x = as_tensor(x)
    return Max(_axes(axis, x.ndim, "max"), keepdims, "max")(x)


@torch_names
def min(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Max(_axes(axis, x.ndim, "min"), keepdims, "min")(x)


@torch_names
def var(x, axis=None, keepdims=False, ddof=0):
    """Variance with NumPy's ``ddof`` (0 = population variance)."""
    x = as_tensor(x)
    axes = _axes(axis, x.ndim, "var")
    n = 1
    for a in axes:
        n *= x.shape[a]
    d = x - mean(x, axes, keepdims=True)
    return sum(d * d, axes, keepdims) * (1.0 / (n - ddof) if n > ddof else float("nan"))


@torch_names
def std(x, axis=None, keepdims=False, ddof=0):
    return sqrt(var(x, axis, keepdims, ddof))


@torch_names
@on_inputs_device
def argmax(x, axis=None, keepdims=False):
    """Indices of the maxima (an integer tensor, no gradient)."""
    x = as_tensor(x)
    axis = None if axis is None else backend.normalize_axis(axis, x.ndim, "argmax")
    return Tensor(get_array_module(x.data).argmax(x.data, axis=axis, keepdims=keepdims))


@torch_names
@on_inputs_device
def argmin(x, axis=None, keepdims=False):
    x = as_tensor(x)
    axis = None if axis is None else backend.normalize_axis(axis, x.ndim, "argmin")
    return Tensor(get_array_module(x.data).argmin(x.data, axis=axis, keepdims=keepdims))


class Norm2(Function):
    """Euclidean norm over axes; its gradient x/‖x‖ is taken as 0 at x = 0 (a subgradient)."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        y = get_array_module(x).sqrt((x * x).sum(axis=self.axes, keepdims=self.keepdims))
        self.save_for_backward(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved_tensors
        if not self.keepdims:
            keep = _keep_shape(x.shape, self.axes)
            y, gy = reshape(y, keep), reshape(gy, keep)
        zero = y.data == 0
        safe = where(zero, 1.0, y)
        return where(zero, 0.0, x / safe) * gy

    def jvp(self, tx):
        y = self.output()
        zero = y.data == 0
        return where(zero, 0.0, Sum(self.axes, self.keepdims)(self.inputs[0] * tx) / where(zero, 1.0, y))


@torch_names
def norm(x, ord=2, axis=None, keepdims=False):
    """Vector p-norm over ``axis`` (all elements by default): ord 2, 1, inf, -inf or any p > 0."""
    x = as_tensor(x)
    axes = _axes(axis, x.ndim, "norm")
    if ord == 2:
        return Norm2(axes, keepdims)(x)
    if ord == 1:
        return sum(abs(x), axes, keepdims)
    if ord == float("inf"):
        return max(abs(x), axes, keepdims)
    if ord == -float("inf"):
        return min(abs(x), axes, keepdims)
    if ord > 0:
        return sum(abs(x) ** ord, axes, keepdims) ** (1.0 / ord)
    raise ValueError(f"norm: ord must be positive or ±inf, got {ord!r}")


# ---- the log-sum-exp family -------------------------------------------------------------------------------
class LogSumExp(Function):
    """log Σ exp(x) over axes; ∂x = gy · softmax(x), written as exp(x − y) so it can be differentiated again."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        y = array_math.logsumexp(x, self.axes, self.keepdims)
        self.save_for_backward(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved_tensors
        if not self.keepdims:
            keep = _keep_shape(x.shape, self.axes)
            y, gy = reshape(y, keep), reshape(gy, keep)
        return gy * exp(x - y)  # softmax over the axes, broadcasting gy

    def jvp(self, tx):
        x = self.inputs[0]
        y = self.output()
        if not self.keepdims:
            y = reshape(y, _keep_shape(x.shape, self.axes))
        return Sum(self.axes, self.keepdims)(tx * exp(x - y))  # the softmax-weighted mean of the tangent


@torch_names
def logsumexp(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return LogSumExp(_axes(axis, x.ndim, "logsumexp"), keepdims)(x)


class Softmax(Function):
    """y = exp(x − logsumexp x); ∂x = y ⊙ (gy − Σ gy ⊙ y)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        y = array_math.softmax(x, self.axis)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved_tensors
        return y * (gy - sum(gy * y, self.axis, keepdims=True))

    def jvp(self, tx):
        y = self.output()
        return y * (tx - sum(tx * y, self.axis, keepdims=True))


@torch_names
def softmax(x, axis=-1):
    x = as_tensor(x)
    return Softmax(_axes(axis, x.ndim, "softmax"))(x)


class LogSoftmax(Function):
    """y = x − logsumexp x; ∂x = gy − exp(y) Σ gy."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        y = array_math.log_softmax(x, self.axis)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved_tensors
        return gy - exp(y) * sum(gy, self.axis, keepdims=True)

    def jvp(self, tx):
        return tx - sum(exp(self.output()) * tx, self.axis, keepdims=True)


@torch_names
def log_softmax(x, axis=-1):
    x = as_tensor(x)
    return LogSoftmax(_axes(axis, x.ndim, "log_softmax"))(x)
