"""Tensor factories with PyTorch's names; Python floats become float32 unless ``dtype`` says otherwise."""
from minigrad import backend
from minigrad.core import Tensor


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _dtype(dtype):
    return backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)


def tensor(data, dtype=None, device="cpu", requires_grad=False):
    """A new leaf tensor holding a copy of ``data`` (lists, scalars, NumPy/CuPy arrays or a Tensor)."""
    if isinstance(data, Tensor):
        data = data.data
    dtype = None if dtype is None else backend.as_dtype(dtype)
    return Tensor(backend.asarray(data, dtype=dtype, device=device), requires_grad=requires_grad)


def _make(fill, shape, dtype, device, requires_grad):
    device = backend.parse_device(device)
    xp = backend.device_module(device)
    if device == "cpu":
        return Tensor(fill(xp, _shape(shape), _dtype(dtype)), requires_grad=requires_grad)
    with backend.device_context(device):
        return Tensor(fill(xp, _shape(shape), _dtype(dtype)), requires_grad=requires_grad)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, d: xp.zeros(s, d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, d: xp.ones(s, d), shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, d: xp.full(s, fill_value, d), (shape,), dtype, device, requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def randn(*shape, dtype=None, device="cpu", requires_grad=False):
    """Standard normal samples from the seeded generator of ``device``."""
    gen = backend.generator(device)
    return _make(lambda xp, s, d: gen.standard_normal(s, dtype=d) if d.kind == "f" and d.itemsize >= 4
                 else gen.standard_normal(s).astype(d), shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device="cpu", requires_grad=False):
    """Uniform samples in [0, 1) from the seeded generator of ``device``."""
    gen = backend.generator(device)
    return _make(lambda xp, s, d: gen.random(s, dtype=d) if d.kind == "f" and d.itemsize >= 4
                 else gen.random(s).astype(d), shape, dtype, device, requires_grad)


def randint(low, high, shape, dtype="int64", device="cpu"):
    gen = backend.generator(device)
    return _make(lambda xp, s, d: gen.integers(low, high, s).astype(d), (shape,), dtype, device, False)


def arange(start, stop=None, step=1, dtype=None, device="cpu"):
    """NumPy's ``arange``; integers give int64, floats give float32 unless ``dtype`` is set."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, stop, step))
        dtype = "int64" if is_int else backend.DEFAULT_FLOAT
    return Tensor(backend.asarray(backend.np.arange(start, stop, step), dtype=backend.as_dtype(dtype), device=device))


def manual_seed(seed):
    """Seed minigrad's generators (every device) so a CPU run repeats bit for bit."""
    backend.manual_seed(seed)
