"""A strict simulated GPU: devices ``"sim:0"`` and ``"sim:1"`` whose arrays behave like CuPy's where bugs hide.

CI has no GPU, so the CuPy code paths would otherwise never run. Arrays here hold NumPy data on the host but
refuse everything CuPy refuses, and more strictly:

- ``np.asarray(x)`` / ``__array__`` raise ``TypeError`` as CuPy does: only ``x.get()`` or ``mg.backend.to_numpy``
  bring data to the host;
- mixing with host arrays raises (``x + np_array``, ``np.add(np_array, x)``, host values assigned into a device
  array, ``out=``); Python and NumPy scalars are fine and NumPy index arrays are copied over, as in CuPy;
- like CuPy, new arrays land on the *current* device (``sim.cuda.Device(i)``, default 0), and an array used
  while another device is current raises (CuPy without peer access), so code that forgets the device context
  fails here instead of silently computing on GPU 0; views (reshape, transpose, basic slicing) launch no
  kernel and work from any device, as in CuPy.

``install()`` registers the ``"sim"`` device kind with ``minigrad.backend``; ``MINIGRAD_TEST_DEVICE=sim`` makes
the test suite's ``device`` fixture use it. Only NumPy functions are mirrored; whether CuPy has them is the
CuPy conformance test's job (``tests/test_cupy_conformance.py``).
"""
import operator
import threading
import types

import numpy as np
import scipy.special

from minigrad import backend

DEVICE_COUNT = 2
_state = threading.local()


def _current():
    return getattr(_state, "device", 0)


class Device:
    """``sim.cuda.Device(i)``: a context manager making device ``i`` current (per thread, as in CUDA)."""

    def __init__(self, device=None):
        self.id = _current() if device is None else int(device)
        if not 0 <= self.id < DEVICE_COUNT:
            raise ValueError(f"sim.cuda.Device: device {self.id} does not exist ({DEVICE_COUNT} simulated devices)")
        self._saved = []

    def __enter__(self):
        self._saved.append(_current())
        _state.device = self.id
        return self

    def __exit__(self, *exc):
        _state.device = self._saved.pop()

    def use(self):
        _state.device = self.id

    def synchronize(self):
        pass

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(("sim", self.id))

    def __repr__(self):
        return f"<sim Device {self.id}>"


_HOST_MESSAGE = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
                 "array explicitly. (minigrad simulated device)")


def _unwrap(obj, where):
    """The NumPy data inside ``obj`` (recursing into lists, tuples and dicts), refusing host arrays and arrays
    on a device other than the current one."""
    cls = obj.__class__
    if cls is ndarray:
        if obj._dev != _current():
            raise ValueError(f"{where}: the array is on sim:{obj._dev} but the current device is sim:{_current()} "
                             "(CuPy without peer access raises; with it, the result would land on the wrong GPU); "
                             "run under the array's device context")
        return obj._a
    if cls is np.ndarray:
        raise TypeError(f"{where}: Unsupported type <class 'numpy.ndarray'> (shape {obj.shape}, {obj.dtype}): a "
                        "host array mixed with a device array; move it with to_device/asarray first")
    if cls is list or cls is tuple:
        return cls(_unwrap(o, where) for o in obj)
    if cls is dict:
        return {k: _unwrap(v, where) for k, v in obj.items()}
    return obj


def _unwrap_key(key, where):
    """An index: as in CuPy, NumPy arrays and lists in it are copied to the device (a host-to-device transfer
    per call, which CuPy allows); device arrays must be on the current device."""
    parts = key if key.__class__ is tuple else (key,)
    parts = tuple(p if p.__class__ is np.ndarray else _unwrap(p, where) for p in parts)
    return parts if key.__class__ is tuple else parts[0]


def _has_arrays(key):
    parts = key if key.__class__ is tuple else (key,)
    return any(isinstance(p, (ndarray, np.ndarray, list)) for p in parts)


def _wrap(obj):
    """NumPy results back on the current device (scalars become 0-d arrays, as CuPy's reductions return)."""
    cls = obj.__class__
    if cls is np.ndarray:
        return ndarray(obj, _current())
    if isinstance(obj, np.generic) and not isinstance(obj, (np.str_, np.bytes_, np.void)):
        return ndarray(np.asarray(obj), _current())
    if cls is tuple or cls is list:
        return cls(_wrap(o) for o in obj)
    return obj


def _wrapped(fn, where):
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args, where), **_unwrap(kwargs, where)))
    call.__name__ = getattr(fn, "__name__", where)
    call.__wrapped__ = fn
    return call


class ndarray:
    """A simulated device array: NumPy data plus the device it lives on."""

    __slots__ = ("_a", "_dev")
    __array_priority__ = 1000
    __hash__ = None

    def __init__(self, array, device):
        self._a = array
        self._dev = device

    # ---- what CuPy adds ----
    @property
    def device(self):
        return Device(self._dev)

    def get(self, stream=None, order="C", out=None):
        """The data as a NumPy array (the explicit device-to-host copy)."""
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr):
        """Copy a NumPy array in (the explicit host-to-device copy)."""
        self._a[...] = arr

    # ---- what CuPy refuses ----
    def __array__(self, *args, **kwargs):
        raise TypeError(_HOST_MESSAGE)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"numpy.{ufunc.__name__}"
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs, where), **_unwrap(kwargs, where)))

    def __array_function__(self, func, types, args, kwargs):
        where = f"numpy.{func.__name__}"
        return _wrap(func(*_unwrap(args, where), **_unwrap(kwargs, where)))

    # ---- plain attributes ----
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T, self._dev))
    mT = property(lambda self: ndarray(np.swapaxes(self._a, -1, -2), self._dev))
    real = property(lambda self: ndarray(self._a.real, self._dev))
    imag = property(lambda self: ndarray(self._a.imag, self._dev))
    base = property(lambda self: None if self._a.base is None else ndarray(self._a.base, self._dev))

    def __getattr__(self, name):  # methods: reshape, sum, astype, ...
        if name.startswith("__"):  # __array_interface__, __array_struct__, __dlpack__: no way to the host
            raise AttributeError(f"simulated device arrays have no {name}")
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)
        where = f"ndarray.{name}"

        def method(*args, **kwargs):
            if self._dev != _current():
                return self._view_or_raise(attr(*args, **kwargs), where)
            return _wrap(attr(*_unwrap(args, where), **_unwrap(kwargs, where)))
        return method

    def _view_or_raise(self, result, where):
        """An op run while another device is current: a view (reshape, transpose, basic slicing) launches no
        kernel in CuPy, so it works and stays on this device; anything that computes raises."""
        if result.__class__ is np.ndarray and np.may_share_memory(result, self._a):
            return ndarray(result, self._dev)
        _unwrap(self, where)  # raises: the array is not on the current device
        raise AssertionError("unreachable")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key):
        if self._dev != _current() and not _has_arrays(key):
            return self._view_or_raise(self._a[key], "ndarray.__getitem__")
        return _wrap(self._unwrapped()[_unwrap_key(key, "ndarray.__getitem__")])

    def __setitem__(self, key, value):
        self._unwrapped()[_unwrap_key(key, "ndarray.__setitem__")] = _unwrap(value, "ndarray.__setitem__")

    def _unwrapped(self):
        return _unwrap(self, "ndarray")

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __complex__(self):
        return complex(self._a)

    def __index__(self):
        raise TypeError("a simulated device array cannot be used as a Python index; use int(x) or x.item()")

    def __repr__(self):
        return f"array({np.array2string(self._a, separator=', ')}, device='sim:{self._dev}')"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("pickling a simulated device array would copy it to the host implicitly; use .get()")

    def __copy__(self):
        return ndarray(self._a.copy(), self._dev)

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy(), self._dev)


def _binary(op, name):
    def f(self, other):
        where = f"ndarray.{name}"
        return _wrap(op(_unwrap(self, where), _unwrap(other, where)))
    f.__name__ = name
    return f


def _reflected(op, name):
    def f(self, other):
        where = f"ndarray.{name}"
        return _wrap(op(_unwrap(other, where), _unwrap(self, where)))
    f.__name__ = name
    return f


def _inplace(op, name):
    def f(self, other):
        where = f"ndarray.{name}"
        op(_unwrap(self, where), _unwrap(other, where))
        return self
    f.__name__ = name
    return f


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(ndarray, f"__{_name}__", _binary(_op, f"__{_name}__"))
    setattr(ndarray, f"__r{_name}__", _reflected(_op, f"__r{_name}__"))
    setattr(ndarray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}"), f"__i{_name}__"))
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(ndarray, f"__{_name}__", _binary(getattr(operator, _name), f"__{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", (lambda op, n: lambda self: _wrap(op(_unwrap(self, n))))(
        getattr(operator, _name), f"ndarray.__{_name}__"))


class _Ufunc:
    """A NumPy ufunc on simulated arrays, with its methods (``reduce``, ``at``, ...) mirrored too."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        where = self.__name__
        return _wrap(self._ufunc(*_unwrap(args, where), **_unwrap(kwargs, where)))

    def __getattr__(self, name):
        attr = getattr(self._ufunc, name)
        return _wrapped(attr, f"{self.__name__}.{name}") if callable(attr) else attr


class _Generator:
    """``sim.random.default_rng(seed)``: NumPy's generator whose samples land on the current device."""

    def __init__(self, seed):
        self._gen = np.random.default_rng(seed)

    def __getattr__(self, name):
        attr = getattr(self._gen, name)
        return _wrapped(attr, f"Generator.{name}") if callable(attr) else attr


def _to_device(data, dtype=None, copy=True, order="K", **kwargs):
    """``sim.asarray`` / ``sim.array``: the explicit host-to-device copy (device arrays pass through)."""
    if data.__class__ is ndarray:
        if data._dev != _current():  # CuPy copies an array from another GPU onto the current one
            return ndarray(data._a.astype(dtype or data.dtype, copy=True), _current())
        out = data._a.astype(dtype, copy=copy) if dtype is not None else (data._a.copy() if copy else data._a)
        return ndarray(out, _current())
    if isinstance(data, (list, tuple)) and any(d.__class__ is ndarray for d in data):
        data = _unwrap(data, "sim.asarray")
    return ndarray(np.array(data, dtype=dtype, copy=True, order=order), _current())


def _module(numpy_module, name):
    """A module mirroring ``numpy_module``: functions unwrap and re-wrap, types and constants pass through."""
    mod = types.ModuleType(name)

    def __getattr__(attr):
        value = getattr(numpy_module, attr)
        if isinstance(value, np.ufunc):
            value = _Ufunc(value)
        elif isinstance(value, types.ModuleType):
            value = _module(value, f"{name}.{attr}")
        elif callable(value) and not isinstance(value, type):
            value = _wrapped(value, f"{name}.{attr}")
        setattr(mod, attr, value)
        return value
    mod.__getattr__ = __getattr__
    return mod


sim = _module(np, "sim")
sim.ndarray = ndarray
sim.asarray = lambda a, dtype=None, order=None, **kw: _to_device(a, dtype, copy=False, order=order or "K")
sim.array = lambda a, dtype=None, copy=True, order="K", **kw: _to_device(a, dtype, copy=copy, order=order)
sim.random = types.ModuleType("sim.random")
sim.random.default_rng = _Generator
sim.random.Generator = _Generator
sim.cuda = types.SimpleNamespace(
    Device=Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: DEVICE_COUNT),
    Stream=types.SimpleNamespace(null=types.SimpleNamespace(synchronize=lambda: None)),
)


def _scatter_add(target, indices, values):
    np.add.at(_unwrap(target, "scatter_add"), _unwrap_key(indices, "scatter_add"), _unwrap(values, "scatter_add"))


def _erf(x):
    return _wrap(scipy.special.erf(_unwrap(x, "erf")).astype(x.dtype, copy=False))


def install():
    """Register the ``"sim"`` device kind with ``minigrad.backend`` (idempotent)."""
    backend.register_device_kind("sim", sim, _scatter_add, _erf)
