"""The one module that imports NumPy and CuPy.

Everything device-dependent lives here: which array module (``xp``) an array belongs to, device names
(``"cpu"``, ``"cuda"``, ``"cuda:N"``), transfers, dtype names, scatter-add, ``erf`` and the random generators.
Op code never imports NumPy: it asks ``get_array_module(x)`` and writes ``xp.exp(x)``, so one line runs on both.
"""
import numpy as np

try:  # CuPy is optional: the "gpu" extra installs it.
    import cupy as cp
    import cupyx
    import cupyx.scipy.special as _cp_special
    _CUPY_ERROR = None
except Exception as e:  # ImportError, or a CuPy that finds no CUDA runtime
    cp = None
    _CUPY_ERROR = e

DEFAULT_FLOAT = np.dtype(np.float32)
ndarray_types = (np.ndarray,) if cp is None else (np.ndarray, cp.ndarray)


def cuda_is_available():
    """True when CuPy imports and sees at least one GPU."""
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def cuda_device_count():
    return cp.cuda.runtime.getDeviceCount() if cuda_is_available() else 0


def get_array_module(x):
    """NumPy for host arrays, CuPy for device arrays (``xp`` in op code)."""
    if cp is not None and isinstance(x, cp.ndarray):
        return cp
    return np


def is_array(x):
    return isinstance(x, ndarray_types)


def parse_device(device):
    """Normalise ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or None) to ``"cpu"`` or ``"cuda:N"``."""
    if device is None or device == "cpu":
        return "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string like 'cpu', 'cuda' or 'cuda:0', got {device!r}")
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    if cp is None:
        raise RuntimeError(f"device {device!r} was asked for but CuPy is not importable ({_CUPY_ERROR}); "
                           "install the 'gpu' extra (pip install 'minigrad-autodiff[gpu]') on a CUDA machine")
    n = cuda_device_count()
    idx = int(index or 0)
    if idx >= n:
        raise RuntimeError(f"device {device!r} was asked for but only {n} CUDA device(s) are visible")
    return f"cuda:{idx}"


def device_of(array):
    """The device name of an array: ``"cpu"`` or ``"cuda:N"``."""
    if cp is not None and isinstance(array, cp.ndarray):
        return f"cuda:{array.device.id}"
    return "cpu"


def to_device(array, device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    device = parse_device(device)
    if device == "cpu":
        return array.get() if cp is not None and isinstance(array, cp.ndarray) else np.asarray(array)
    with cp.cuda.Device(int(device.split(":")[1])):
        return cp.asarray(array)


def as_dtype(dtype):
    """A NumPy dtype from a dtype, a type or a name (``"float32"``)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from None


class AxisError(IndexError, ValueError):
    """An axis out of range: an IndexError as in PyTorch, and a ValueError as NumPy's ``AxisError`` is."""


def normalize_axis(axis, ndim, fn, name="axis"):
    """``axis`` (negative counts from the end) as an index in ``range(ndim)``, or IndexError naming ``fn``, the
    argument, the axis and ``ndim``. The one check every op, loss, norm and layer that takes an axis goes
    through: NumPy would otherwise wrap some out-of-range axes silently. A 0-d tensor accepts 0 and -1 (PyTorch)."""
    if isinstance(axis, bool) or not hasattr(axis, "__index__"):
        raise TypeError(f"{fn}: {name} must be an int, got {axis!r} ({type(axis).__name__})")
    a = axis.__index__()
    n = ndim if ndim else 1
    if not -n <= a < n:
        raise AxisError(f"{fn}: {name}={a} is out of range for a tensor with {ndim} dimension(s) "
                         f"(expected {-n} to {n - 1})")
    return a % n


def normalize_axes(axis, ndim, fn, name="axis"):
    """``axis`` (None for all, an int or a sequence of ints) as a sorted tuple of distinct axes in ``range(ndim)``."""
    if axis is None:
        return tuple(range(ndim))
    axes = [normalize_axis(a, ndim, fn, name) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    if len(set(axes)) != len(axes):
        raise ValueError(f"{fn}: {name}={axis!r} names an axis twice (tensor with {ndim} dimension(s))")
    return tuple(sorted(axes)) if ndim else ()


def is_floating(dtype):
    return dtype.kind == "f"


def asarray(data, dtype=None, device="cpu"):
    """Array on ``device`` from nested lists, scalars or arrays; Python floats default to float32."""
    device = parse_device(device)
    if dtype is None and not is_array(data):
        probe = np.asarray(data)
        if probe.dtype.kind not in "biufc":  # strings, objects, dates: nothing an op can compute with
            raise TypeError(f"tensor: data must be numbers or booleans, got {probe.dtype} ({_describe(data)})")
        dtype = DEFAULT_FLOAT if probe.dtype.kind == "f" else probe.dtype
        data = probe
    elif np.dtype(dtype if dtype is not None else data.dtype).kind not in "biufc":
        raise TypeError(f"tensor: data must be numbers or booleans, got dtype "
                        f"{np.dtype(dtype if dtype is not None else data.dtype)}")
    if device == "cpu":
        if cp is not None and isinstance(data, cp.ndarray):
            data = data.get()
        return np.array(data, dtype=dtype, copy=True)
    with cp.cuda.Device(int(device.split(":")[1])):
        return cp.array(data, dtype=dtype, copy=True)


def _describe(data):
    text = repr(data)
    return text if len(text) <= 60 else text[:57] + "..."


def to_numpy(array):
    return array.get() if cp is not None and isinstance(array, cp.ndarray) else np.asarray(array)


def scatter_add(target, indices, values):
    """``target[indices] += values`` where repeated indices accumulate (in place)."""
    if cp is not None and isinstance(target, cp.ndarray):
        cupyx.scatter_add(target, indices, values)
    else:
        np.add.at(target, indices, values)
    return target


def ignore_float_errors():
    """Inside, NumPy stays silent about overflow, division by zero and invalid values (log(0) = −inf may be the
    intended answer); CuPy never warns."""
    return np.errstate(divide="ignore", over="ignore", invalid="ignore")


def erf(x):
    """Error function on either backend (SciPy on the host, CuPy's kernel on the device)."""
    if cp is not None and isinstance(x, cp.ndarray):
        return _cp_special.erf(x)
    import scipy.special
    return scipy.special.erf(x).astype(x.dtype, copy=False)


# ---- random numbers: one seeded generator per device -------------------------------------------------------
_generators = {}
_seed = None


def manual_seed(seed):
    """Seed every device's generator so that runs repeat bit for bit."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device="cpu"):
    """The generator of ``device``: ``numpy.random.Generator`` on the host, CuPy's on a GPU."""
    device = parse_device(device)
    gen = _generators.get(device)
    if gen is None:
        seed = None if _seed is None else _seed + (0 if device == "cpu" else 1 + int(device[5:]))
        if device == "cpu":
            gen = np.random.default_rng(seed)
        else:
            with cp.cuda.Device(int(device[5:])):
                gen = cp.random.default_rng(seed)
        _generators[device] = gen
    return gen


# ---- host memory: keep freed blocks for reuse --------------------------------------------------------------
def _keep_freed_memory():
    """glibc hands large freed blocks straight back to the OS, so every training step page-faults its
    temporaries (im2col columns, activations, gradients) in afresh, which costs more than the arithmetic of a
    small CNN. Keep blocks up to 32 MiB on the heap and trim it only past 512 MiB.
    ``MINIGRAD_MALLOC_TUNING=0`` keeps glibc's defaults."""
    import os
    import sys
    if os.environ.get("MINIGRAD_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 512 << 20)


_keep_freed_memory()
