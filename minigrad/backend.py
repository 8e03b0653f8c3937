"""The one module that imports NumPy and CuPy.

Everything device-dependent lives here: which array module (``xp``) an array belongs to, device names
(``"cpu"``, ``"cuda"``, ``"cuda:N"``), transfers, dtype names, scatter-add, ``erf`` and the random generators.
Op code never imports NumPy: it asks ``get_array_module(x)`` and writes ``xp.exp(x)``, so one line runs on both.
"""
import contextlib

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

# Device kinds besides "cpu": kind -> (array module, scatter_add, erf). The module has CuPy's layout
# (``ndarray`` with ``.device.id`` and ``.get()``, ``cuda.Device``, ``cuda.runtime.getDeviceCount``, ``random``).
_kinds = {} if cp is None else {"cuda": (cp, lambda t, i, v: cupyx.scatter_add(t, i, v), lambda x: _cp_special.erf(x))}
multi_device = cp is not None  # False: every array is a NumPy array, so there is no device to mix up


def register_device_kind(kind, module, scatter_add, erf):
    """Make ``"<kind>:N"`` a device whose arrays come from ``module`` (``minigrad.testing.simdevice`` uses it)."""
    global ndarray_types, multi_device
    _kinds[kind] = (module, scatter_add, erf)
    ndarray_types = (np.ndarray,) + tuple(m.ndarray for m, _, _ in _kinds.values())
    multi_device = True


def _kind_of(x):
    """The (kind, entry) of a device array, or (None, None) for anything else."""
    for kind, entry in _kinds.items():
        if isinstance(x, entry[0].ndarray):
            return kind, entry
    return None, None


def device_module(device):
    """The array module of a device name returned by ``parse_device``."""
    return np if device == "cpu" else _kinds[device.partition(":")[0]][0]


_NO_SCOPE = contextlib.nullcontext()


def device_scope(array):
    """``with device_scope(a):`` makes ``a``'s device current for the block, as CuPy puts new arrays and kernels
    on the current device, not the inputs' (a no-op for host arrays)."""
    if array.__class__ is np.ndarray or not _kinds:
        return _NO_SCOPE
    kind, entry = _kind_of(array)
    return _NO_SCOPE if kind is None else entry[0].cuda.Device(array.device.id)


def copy_array(array, dtype=None):
    """A copy of ``array`` (cast to ``dtype`` if given) made on the array's own device."""
    with device_scope(array):
        return array.astype(array.dtype if dtype is None else dtype, copy=True)


def device_context(device):
    """``with device_context("cuda:1"):`` makes that device current, so new arrays and kernels land there."""
    kind, _, index = device.partition(":")
    return _kinds[kind][0].cuda.Device(int(index))


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
    if x.__class__ is np.ndarray or not _kinds:
        return np
    _, entry = _kind_of(x)
    return np if entry is None else entry[0]


def is_array(x):
    return isinstance(x, ndarray_types)


def parse_device(device):
    """Normalise ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or None) to ``"cpu"`` or ``"cuda:N"``."""
    if device is None or device == "cpu":
        return "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string like 'cpu', 'cuda' or 'cuda:0', got {device!r}")
    kind, _, index = device.partition(":")
    if kind in _kinds and kind != "cuda" and (not index or index.isdigit()):
        n, idx = _kinds[kind][0].cuda.runtime.getDeviceCount(), int(index or 0)
        if idx >= n:
            raise RuntimeError(f"device {device!r} was asked for but only {n} {kind} device(s) exist")
        return f"{kind}:{idx}"
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
    if array.__class__ is np.ndarray or not _kinds:
        return "cpu"
    kind, _ = _kind_of(array)
    return "cpu" if kind is None else f"{kind}:{array.device.id}"


def to_device(array, device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    device = parse_device(device)
    if device == "cpu":
        return to_numpy(array)
    with device_context(device):  # from another GPU, CuPy copies onto the current one
        return device_module(device).asarray(array)


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
        return np.array(to_numpy(data), dtype=dtype, copy=True)
    with device_context(device):
        return device_module(device).array(data, dtype=dtype, copy=True)


def _describe(data):
    text = repr(data)
    return text if len(text) <= 60 else text[:57] + "..."


def to_numpy(array):
    if array.__class__ is np.ndarray or not _kinds:
        return np.asarray(array)
    return array.get() if _kind_of(array)[0] is not None else np.asarray(array)


def scatter_add(target, indices, values):
    """``target[indices] += values`` where repeated indices accumulate (in place)."""
    _, entry = _kind_of(target)
    if entry is not None:
        entry[1](target, indices, values)
    else:
        np.add.at(target, indices, values)
    return target


def ignore_float_errors():
    """Inside, NumPy stays silent about overflow, division by zero and invalid values (log(0) = −inf may be the
    intended answer); CuPy never warns."""
    return np.errstate(divide="ignore", over="ignore", invalid="ignore")


def erf(x):
    """Error function on either backend (SciPy on the host, CuPy's kernel on the device)."""
    _, entry = _kind_of(x)
    if entry is not None:
        return entry[2](x)
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
        seed = None if _seed is None else _seed + (0 if device == "cpu" else 1 + int(device.partition(":")[2]))
        if device == "cpu":
            gen = np.random.default_rng(seed)
        else:
            with device_context(device):
                gen = device_module(device).random.default_rng(seed)
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
