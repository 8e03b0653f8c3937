"""Ops that move, copy or select elements: reshape, transpose, broadcast, indexing, concatenation, padding."""
from minigrad import backend
from minigrad.aliases import torch_names
from minigrad.backend import get_array_module
from minigrad.core import Function, Tensor, as_tensor
from minigrad.ops import array_math


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.in_shape)

    def jvp(self, tx):
        return Reshape(self.shape)(tx)


def reshape(x, *shape):
    """``x`` viewed with a new shape (one axis may be -1)."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    x = as_tensor(x)
    if x.shape == shape:
        return x
    return Reshape(shape)(x)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        inverse = tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))
        return Transpose(inverse)(gy)

    def jvp(self, tx):
        return Transpose(self.axes)(tx)


def transpose(x, axes=None, *dims):
    """Permute the axes (NumPy's ``transpose``: all reversed when ``axes`` is None); with two integers,
    PyTorch's ``transpose(input, dim0, dim1)`` swaps those axes (0-d tensors accept dims 0 and -1)."""
    x = as_tensor(x)
    if isinstance(axes, int) and len(dims) == 1 and x.ndim != 2:
        return swapaxes(x, axes, dims[0])
    if dims:
        axes = (axes,) + dims
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(
        backend.normalize_axis(a, x.ndim, "transpose", "axes") for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return Transpose(axes)(x)


def permute(x, *axes):
    return transpose(x, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)


def swapaxes(x, a, b):
    a, b = backend.normalize_axis(a, x.ndim, "swapaxes"), backend.normalize_axis(b, x.ndim, "swapaxes")
    if x.ndim == 0:  # a 0-d tensor has the one pseudo-axis 0 (or -1), as in PyTorch
        return Transpose(())(x)
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.in_shape)

    def jvp(self, tx):
        return BroadcastTo(self.shape)(tx)


def broadcast_to(x, shape):
    """Repeat size-1 (or missing leading) axes to ``shape`` without copying; backward sums them."""
    x, shape = as_tensor(x), tuple(shape)
    return x if x.shape == shape else BroadcastTo(shape)(x)


expand = broadcast_to


class SumTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return array_math.sum_to(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.in_shape)

    def jvp(self, tx):
        return SumTo(self.shape)(tx)


def sum_to(x, shape):
    """Undo broadcasting: sum ``x`` down to ``shape`` (the backward of every broadcasting op)."""
    shape = shape if shape.__class__ is tuple else tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


def add_tangents(*ts):
    """The sum of the tangents that are not None (None when all are): a jvp rule's terms, one per input."""
    total = None
    for t in ts:
        if t is not None:
            total = t if total is None else total + t
    return total


@torch_names
def squeeze(x, axis=None):
    """Drop size-1 axes (all of them, or ``axis``)."""
    x = as_tensor(x)
    if axis is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        axes = set(backend.normalize_axes(axis, x.ndim, "squeeze"))
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return reshape(x, shape)


@torch_names
def unsqueeze(x, axis):
    """Insert a size-1 axis at ``axis`` (NumPy's ``expand_dims``)."""
    x = as_tensor(x)
    axis = backend.normalize_axis(axis, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


expand_dims = unsqueeze


def flatten(x, start_dim=0, end_dim=-1):
    x = as_tensor(x)
    start = backend.normalize_axis(start_dim, x.ndim, "flatten", "start_dim")
    end = backend.normalize_axis(end_dim, x.ndim, "flatten", "end_dim")
    if start > end:
        raise ValueError(f"flatten: start_dim={start_dim} comes after end_dim={end_dim} for shape {x.shape}")
    n = 1
    for s in x.shape[start:end + 1]:
        n *= s
    return reshape(x, x.shape[:start] + (n,) + x.shape[end + 1:])


def _normalize_key(key):
    """Tensors inside an index become their arrays (integer or boolean index arrays)."""
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key.data if isinstance(key, Tensor) else key


def _is_advanced(key):
    keys = key if isinstance(key, tuple) else (key,)
    return any(backend.is_array(k) or isinstance(k, (list,)) for k in keys)


class GetItem(Function):
    def __init__(self, key):
        self.key = key

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.key]

    def backward(self, gy):
        return IndexAdd(self.key, self.in_shape)(gy)

    def jvp(self, tx):
        return GetItem(self.key)(tx)


class IndexAdd(Function):
    """Zeros of ``shape`` with ``g`` added at ``key`` (repeated indices accumulate): getitem's backward."""
    def __init__(self, key, shape):
        self.key, self.shape = key, shape

    def forward(self, g):
        out = get_array_module(g).zeros(self.shape, dtype=g.dtype)
        if _is_advanced(self.key):
            backend.scatter_add(out, self.key, g)
        else:
            out[self.key] = g
        return out

    def backward(self, gy):
        return GetItem(self.key)(gy)

    def jvp(self, tg):
        return IndexAdd(self.key, self.shape)(tg)


def getitem(x, key):
    """``x[key]`` with NumPy's basic and integer/boolean-array indexing."""
    return GetItem(_normalize_key(key))(x)


class Concatenate(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        bounds, total = [], 0
        for s in self.sizes[:-1]:
            total += s
            bounds.append(total)
        return split(gy, bounds, axis=self.axis)

    def jvp(self, *txs):
        return Concatenate(self.axis)(*[Tensor(get_array_module(x.data).zeros(x.shape, x.dtype)) if t is None else t
                                        for x, t in zip(self.inputs, txs)])


@torch_names
def concatenate(tensors, axis=0):
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    nd = tensors[0].ndim
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated; use stack")
    axis = backend.normalize_axis(axis, nd, "concatenate")
    for i, t in enumerate(tensors):
        if t.ndim != nd or t.shape[:axis] + t.shape[axis + 1:] != tensors[0].shape[:axis] + tensors[0].shape[axis + 1:]:
            raise ValueError(f"concatenate on axis {axis}: tensor {i} has shape {t.shape}, "
                             f"which does not match tensor 0's {tensors[0].shape} off that axis")
    return tensors[0] if len(tensors) == 1 else Concatenate(axis)(*tensors)


cat = concatenate


@torch_names
def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack needs tensors of one shape, got {sorted(shapes)}")
    axis = backend.normalize_axis(axis, tensors[0].ndim + 1, "stack")
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


class Split(Function):
    def __init__(self, bounds, axis):
        self.bounds, self.axis = bounds, axis

    def forward(self, x):
        return tuple(get_array_module(x).split(x, self.bounds, axis=self.axis))

    def backward(self, *gys):
        return Concatenate(self.axis)(*gys)

    def jvp(self, tx):
        return Split(self.bounds, self.axis)(tx)


@torch_names
def split(x, indices_or_sections, axis=0):
    """NumPy's ``split``: a number of equal sections, or the indices where the pieces start."""
    x = as_tensor(x)
    axis = backend.normalize_axis(axis, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ValueError(f"split: axis {axis} of shape {x.shape} does not divide into {indices_or_sections}")
        step = n // indices_or_sections
        bounds = [step * i for i in range(1, indices_or_sections)]
    else:
        bounds = list(indices_or_sections)
    return list(Split(bounds, axis)(x)) if bounds else [x]


class Pad(Function):
    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        if not self.pad_width:
            return x.copy()
        return get_array_module(x).pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, gy):
        key = tuple(slice(lo, gy.shape[i] - hi) for i, (lo, hi) in enumerate(self.pad_width))
        return gy[key]

    def jvp(self, tx):
        return Pad(self.pad_width, 0.0)(tx)


def pad(x, pad_width, value=0.0):
    """Constant padding with NumPy's ``pad_width``: an int, ``(lo, hi)``, or one pair per axis."""
    x = as_tensor(x)
    if isinstance(pad_width, int):
        pad_width = ((pad_width, pad_width),) * x.ndim
    elif len(pad_width) == 2 and all(isinstance(p, int) for p in pad_width):
        pad_width = (tuple(pad_width),) * x.ndim
    pad_width = tuple((int(lo), int(hi)) for lo, hi in pad_width)
    if len(pad_width) != x.ndim or any(lo < 0 or hi < 0 for lo, hi in pad_width):
        raise ValueError(f"pad: pad_width {pad_width} must hold one non-negative pair per axis of shape {x.shape}")
    return Pad(pad_width, value)(x)


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return Cast(self.in_dtype)(gy)

    def jvp(self, tx):
        return Cast(self.dtype)(tx)


def astype(x, dtype):
    dtype = backend.as_dtype(dtype)
    return x if x.dtype == dtype else Cast(dtype)(x)


class ToDevice(Function):
    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return ToDevice(self.in_device)(gy)

    def jvp(self, tx):
        return ToDevice(self.device)(tx)


def to_device(x, device):
    return ToDevice(backend.parse_device(device))(x)
