"""The autograd core: ``Tensor``, ``Function`` and the backward pass.

A call ``f(x)`` of a ``Function`` runs ``forward`` on raw arrays and, when some input requires grad, records
itself as the ``creator`` of its outputs: that record *is* the graph. ``backward`` walks the recorded
functions from the output to the leaves, newest first (a heap keyed by generation), and calls each one's
``backward`` with Tensors, so a backward written with differentiable ops can itself be differentiated.
"""
from heapq import heappop, heappush
import contextvars
import functools
import os
import traceback
from weakref import ref as _weakref

from minigrad import backend


# Grad mode and anomaly mode are per thread (PyTorch semantics): ``no_grad`` in one thread leaves the others
# recording, and a new thread starts with grad enabled and anomaly detection off (its context starts empty, so
# the defaults apply; each asyncio task gets its own copy too). Context variables rather than threading.local:
# reading one costs what reading a class attribute costs, and every op reads them.
_grad_var = contextvars.ContextVar("minigrad_grad_enabled", default=True)
_anomaly_var = contextvars.ContextVar("minigrad_anomaly", default=False)
_grad_enabled = _grad_var.get
_anomaly = _anomaly_var.get

# In-place changes: a process-wide counter of in-place changes ("epoch"). A Function remembers the epoch when
# it ran; a changed tensor remembers the epoch of its last change. Backward checks a Function's inputs only
# when the epoch has moved since it ran, so graphs without in-place changes pay one comparison per op.
_epoch = [0]


# Forward mode (minigrad/forward_ad.py): the active dual levels, outermost first, per thread like grad mode.
_forward_var = contextvars.ContextVar("minigrad_forward_levels", default=())
forward_levels = _forward_var.get  # the active dual levels, outermost first; () outside forward_ad.dual_level


class _Config:
    push_tangents = None  # set by minigrad/forward_ad.py: runs each call's jvp while a dual level is active
    callbacks = None  # during a backward with gradient hooks: what ``queue_callback`` asked to run at its end


def set_forward_levels(levels):
    """Make ``levels`` the active forward-mode levels (in this thread); returns the token that
    ``reset_forward_levels`` takes to put the previous ones back."""
    return _forward_var.set(tuple(levels))


def reset_forward_levels(token):
    _forward_var.reset(token)


def set_tangent_pusher(fn):
    """Forward mode's hook: ``fn(function, inputs, outputs)`` runs after every call while a level is active."""
    _Config.push_tangents = fn


class _GradMode:
    """Context manager and decorator that switches graph recording on or off."""

    pending = False  # set_grad_enabled switched at the call already; ``prev`` holds the mode before it

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        if self.pending:
            self.pending = False
        else:
            self.prev = _grad_enabled()
        _grad_var.set(self.enabled)

    def __exit__(self, *exc):
        _grad_var.set(self.prev)

    def __call__(self, func):
        if self.pending:  # used as a decorator: the switch belongs to the calls, not to the decoration
            self.pending = False
            _grad_var.set(self.prev)

        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return func(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
        return wrapper


def no_grad():
    """Ops inside record no graph (inference, optimizer steps); in this thread only."""
    return _GradMode(False)


def enable_grad():
    """Record the graph again inside a ``no_grad`` block (this thread only)."""
    return _GradMode(True)


def is_grad_enabled():
    return _grad_enabled()


def set_grad_enabled(mode):
    """Switch graph recording on or off for this thread: as a call it takes effect at once; used in a ``with``
    block or as a decorator it restores the previous mode on exit (``torch.set_grad_enabled``)."""
    ctx = _GradMode(bool(mode))
    ctx.prev, ctx.pending = _grad_enabled(), True
    _grad_var.set(ctx.enabled)
    return ctx


class detect_anomaly:
    """Inside, the first op whose forward or backward makes NaN/Inf raises, naming the op and the user line
    (in this thread only)."""

    def __enter__(self):
        self.prev = _anomaly()
        _anomaly_var.set(True)

    def __exit__(self, *exc):
        _anomaly_var.set(self.prev)


def on_inputs_device(fn):
    """Run ``fn`` with its first Tensor argument's device current. CuPy makes new arrays and launches kernels
    on the current device, so helpers that work on raw arrays outside a Function (class indices, masks,
    comparisons) need it for tensors on a GPU other than the current one."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        first = next((a for a in args if isinstance(a, Tensor)), None)
        if first is None or first.data.__class__ is _ndarray or not backend.multi_device:
            return fn(*args, **kwargs)
        with backend.device_scope(first.data):
            return fn(*args, **kwargs)
    return run


class Tensor:
    """An array (NumPy or CuPy) with an optional gradient and a link to the Function that created it."""

    __slots__ = ("data", "grad", "_requires_grad", "creator", "generation", "index", "name", "_retains_grad",
                 "_vcount", "_vstamp", "_fw", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, data, requires_grad=False, name=None):
        if data.__class__ is not _ndarray:
            data = _checked_array(data)
        self.data = data
        self.grad = self.creator = self.name = None
        self._fw = None  # forward mode: {level: tangent Tensor} while a dual level is active
        self.generation = self.index = 0
        self._retains_grad = self._requires_grad = False
        if requires_grad:
            self.requires_grad = True
        if name is not None:
            self.name = name

    # ---- attributes users know from PyTorch -----------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and not backend.is_floating(self.data.dtype):
            raise TypeError(f"only floating-point tensors can require grad, this one is {self.data.dtype}")
        if not flag and self.creator is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf tensor; use .detach()")
        self._requires_grad = bool(flag)

    def requires_grad_(self, flag=True):
        self.requires_grad = flag
        return self

    @property
    def is_leaf(self):
        return self.creator is None

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def xp(self):
        return backend.get_array_module(self.data)

    def __len__(self):
        return len(self.data)

    def numel(self):
        return self.data.size

    def dim(self):
        return self.data.ndim

    def numpy(self):
        """A host NumPy array (a copy for GPU tensors, the same memory for CPU ones)."""
        return backend.to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retains_grad = True
        return self

    def zero_grad_(self):
        self.grad = None

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` during backward as soon as this leaf's ``.grad`` holds its final gradient (all the
        ops that read it have run), not at the end of the sweep. Returns a handle whose ``remove()`` undoes it."""
        if self.creator is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate a .grad; this "
                               f"tensor (shape {self.shape}) was made by {type(self.creator).__name__}")
        key = id(self)
        if key not in _grad_hooks:  # keyed by id (Tensor's == is elementwise); the entry dies with the tensor
            _grad_hooks[key] = (_weakref(self, lambda _, key=key: _grad_hooks.pop(key, None)), [])
        _grad_hooks[key][1].append(hook)
        return _HookHandle(self, hook)

    def backward(self, grad=None, retain_graph=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (like ``torch.Tensor.backward``)."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the graph "
                               "had requires_grad=True, or it was built under no_grad()")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without grad= needs a scalar output, this one has shape {self.shape}; "
                                   "pass grad= of the same shape")
            with backend.device_scope(self.data):
                grad = Tensor(self.xp.ones_like(self.data))
        run_backward([self], [as_tensor(grad, self)], retain_graph or create_graph, create_graph, None)

    def __repr__(self):
        body = repr(backend.to_numpy(self.data)).replace("array(", "tensor(", 1)
        extra = ""
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.creator is not None:
            extra += f", grad_fn=<{type(self.creator).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return body[:-1] + extra + ")" if extra else body

    __hash__ = object.__hash__

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a Tensor is not converted to an array implicitly; call .numpy() (host) or use .data")

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    # ---- in-place ops --------------------------------------------------------------------------------------
    # They change ``data`` where it lies and add 1 to ``_version``, so backward can refuse values changed after
    # an op used them (as PyTorch does). They record no graph, so a tensor that requires grad can only be
    # changed under ``no_grad()``. Writing into ``.data`` directly bypasses the counter, as in PyTorch.
    @property
    def _version(self):
        """How many times this tensor was changed in place (0 for a new one; the slots are set on first change)."""
        return getattr(self, "_vcount", 0)

    @_version.setter
    def _version(self, value):
        _epoch[0] += 1
        self._vcount, self._vstamp = value, _epoch[0]

    def _inplace(self, op):
        """The array to write, after checking that ``op`` may change this tensor in place."""
        if self._requires_grad and _grad_enabled():
            what = "a leaf tensor that requires grad" if self.creator is None else "a tensor inside a graph"
            raise RuntimeError(f"{op}: {what} (shape {self.shape}) cannot be changed in place while grad mode is on "
                               "(the change would not be recorded); wrap it in mg.no_grad() or use the "
                               "out-of-place op")
        if not getattr(self.data.flags, "writeable", True):
            raise ValueError(f"{op}: this tensor's array (shape {self.shape}) is read-only; copy it first")
        self._version += 1
        return self.data

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def add_(self, other, alpha=1):
        """``self += alpha * other`` in place (broadcasting ``other``)."""
        a = self._inplace("add_")
        a += _raw_operand(other) * alpha if alpha != 1 else _raw_operand(other)
        return self

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def sub_(self, other, alpha=1):
        a = self._inplace("sub_")
        a -= _raw_operand(other) * alpha if alpha != 1 else _raw_operand(other)
        return self

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def mul_(self, other):
        a = self._inplace("mul_")
        a *= _raw_operand(other)
        return self

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def div_(self, other):
        a = self._inplace("div_")
        a /= _raw_operand(other)
        return self

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def zero_(self):
        self._inplace("zero_")[...] = 0
        return self

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def fill_(self, value):
        self._inplace("fill_")[...] = _raw_operand(value)
        return self

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def copy_(self, src):
        """Overwrite the values with ``src`` (broadcast and cast to this tensor's dtype)."""
        src = _raw_operand(src)
        if backend.is_array(src) and backend.device_of(src) != self.device:
            src = backend.to_device(src, self.device)
        self._inplace("copy_")[...] = src
        return self

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def clamp_(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp_: give min, max or both")
        a = self._inplace("clamp_")
        self.xp.clip(a, min, max, out=a)
        return self

    clip_ = clamp_

    @on_inputs_device  # the write is a kernel on the tensor's own device
    def __setitem__(self, key, value):
        """``x[key] = value`` in place (NumPy indexing; Tensors in ``key`` act as index arrays)."""
        if isinstance(key, tuple):
            key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
        elif isinstance(key, Tensor):
            key = key.data
        self._inplace("__setitem__")[key] = _raw_operand(value)


_ndarray, _np_scalar, _np_asarray = backend.np.ndarray, backend.np.generic, backend.np.asarray


def _raw_operand(value):
    """The array (or Python number) an in-place op combines with its tensor."""
    return value.data if isinstance(value, Tensor) else value


def _checked_array(data):
    if isinstance(data, _np_scalar):  # 0-d NumPy results arrive as scalars
        return _np_asarray(data)
    if not backend.is_array(data):
        raise TypeError(f"Tensor wraps a NumPy or CuPy array, got {type(data).__name__}; use mg.tensor(...)")
    return data


# (type, value, dtype, device) -> read-only Tensor: `x * 2.0` makes no new array each time. Fast path: without
# it a 50,000-op chain of `* 1.0001` and `+ 0.5` (forward and backward) takes 1.19x as long (benchmarks/fast_paths.py).
_constants = {}


def _scalar_tensor(value, like):
    """A Python scalar as a constant Tensor of ``like``'s dtype and device (no float32 -> float64)."""
    data = like.data
    dtype = data.dtype
    if value.__class__ is float and dtype.kind in "biu":
        dtype = backend.DEFAULT_FLOAT
    elif value.__class__ is int and dtype.kind == "b":
        dtype = backend.as_dtype("int64")
    device = None if data.__class__ is _ndarray else backend.device_of(data)
    key = (value.__class__, value, dtype, device)
    t = _constants.get(key) if value else None  # 0 is not cached: -0.0 == 0.0 would share a sign
    if t is None:
        if device is None:
            array = _np_asarray(value, dtype=dtype)
            array.flags.writeable = False
        else:
            array = backend.asarray(value, dtype=dtype, device=device)  # on that GPU, not the current one
        t = Tensor(array)
        if value:
            if len(_constants) >= 512:
                _constants.clear()
            _constants[key] = t
    return t


def as_tensor(value, like=None):
    """``value`` as a Tensor. Python scalars take the dtype and device of ``like`` (no float32 -> float64)."""
    if isinstance(value, Tensor):
        return value
    if backend.is_array(value):
        return Tensor(value)
    if like is None:
        return Tensor(backend.asarray(value))
    if value.__class__ in (float, int, bool):
        return _scalar_tensor(value, like)
    data = like.data
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # NumPy scalar
        return Tensor(backend.get_array_module(data).asarray(value))
    return Tensor(backend.asarray(value, device=backend.device_of(data)))


def as_tensors(*values):
    """``values`` as Tensors; Python scalars and arrays take the dtype and device of the first Tensor among them."""
    like = next((v for v in values if isinstance(v, Tensor)), None)
    return [v if isinstance(v, Tensor) else as_tensor(v, like) for v in values]


# ---- the graph: a call becomes a node --------------------------------------------------------------------
class Edge:
    """Where the gradient of an input goes: ``node`` is the Function that made the input (``index`` says which
    of its outputs) or, for a leaf, the leaf Tensor itself (``index`` 0); ``shape`` and ``dtype`` are what the
    gradient must have. An edge to an intermediate result holds no array: the result is freed once nothing else
    (the user, a ``save_for_backward``) holds it."""

    __slots__ = ("node", "index", "shape", "dtype")

    def __init__(self, t):
        self.node = t if t.creator is None else t.creator
        self.index, self.shape, self.dtype = t.index, t.data.shape, t.data.dtype


class SavedOutput:
    """An output that backward reads, kept as its array: holding the output Tensor itself would make a cycle
    (output -> creator -> output). ``Function.saved_tensors`` turns it back into the output's graph node."""

    __slots__ = ("index", "data")

    def __init__(self, index, data):
        self.index, self.data = index, data


def _forward_got_tensor(fn, error):
    """The message when a Tensor turns up inside ``forward`` (or is returned by it): the PyTorch habit of computing
    on Tensors there. Here forward receives raw arrays and returns arrays; Tensors are for backward."""
    return (f"{type(fn).__name__}.forward met a Tensor ({error}): forward receives NumPy/CuPy arrays and must return "
            f"arrays (compute with xp = minigrad.backend.get_array_module(x), not minigrad ops; keep Tensors "
            f"for backward). Unlike torch.autograd.Function there is no ctx and no .apply: call the op, "
            f"{type(fn).__name__}(...)(x); in forward name what backward reads with self.save_for_backward(...) "
            f"and read it in backward from self.saved_tensors")


class Function:
    """Base class of every op: ``forward`` on arrays, ``backward`` on Tensors.

    Subclass it for your own op. In ``forward``, hand ``self.save_for_backward(...)`` the arrays that backward
    reads: inputs as forward got them, outputs as it returns them, or any other array (kept as a constant).
    ``backward(self, *grad_outputs)`` gets them back from ``self.saved_tensors`` as Tensors (inputs and outputs
    as their graph nodes), reads ``self.needs_input_grad[i]`` and returns one gradient (or None) per input.
    Write backward with minigrad ops and higher derivatives come for free.
    """

    differentiable_backward = True  # fused ops whose backward works on raw arrays set False
    needs_input_grad = ()  # per input: does it want a gradient? Set before forward runs, so forward saves only
    #                        what the gradients that will be asked for need
    edges = None  # per input, its Edge or None when it wants no gradient; None before the call and once freed
    saved = ()  # what backward reads, as save_for_backward named it
    saves_outputs = False  # True when some saved entry is an output (then rebuilt on demand, see SavedOutput)
    generation = 0  # the largest generation among the inputs (its outputs get one more): backward runs newest first
    epoch = 0  # the in-place epoch when the op ran (set when it is recorded): see _check_versions

    def __call__(self, *inputs):
        for x in inputs:
            if not isinstance(x, Tensor):
                inputs = as_tensors(*inputs)
                break
        xs = [x.data for x in inputs]
        if len(xs) > 1 and backend.multi_device:
            _check_devices(self, xs)
        if _grad_enabled():
            needs = tuple([x._requires_grad for x in inputs])
            if len(needs) <= 4:
                # One shared tuple per pattern: without it a graph node takes 1.10x the memory (fast_paths.py).
                needs = _flags.setdefault(needs, needs)
            record = True in needs
        else:
            needs, record = (False,) * len(xs), False
        self.needs_input_grad = needs
        try:
            if xs and xs[0].__class__ is not _ndarray and backend.multi_device:
                with backend.device_scope(xs[0]):  # kernels and new arrays on the inputs' device, not the current one
                    ys = self.forward(*xs)
            else:
                ys = self.forward(*xs)
            single = ys.__class__ is not tuple
            outputs = [Tensor(ys)] if single else [Tensor(y) for y in ys]
        except TypeError as e:
            if "Tensor" not in str(e):
                raise
            raise TypeError(_forward_got_tensor(self, e)) from e
        if _anomaly():
            _check_finite(self, [o.data for o in outputs], "forward")
        if record:
            self._record(inputs, xs, (ys,) if single else ys, outputs)
        if forward_levels():  # forward mode: the outputs' tangents by self.jvp (in any grad mode), after
            _Config.push_tangents(self, inputs, outputs)  # the graph is recorded, so the tangents are in it too
        return outputs[0] if single else tuple(outputs)

    def _record(self, inputs, xs, ys, outputs):
        """Make this call a node of the graph: an Edge to each input that wants a gradient, this Function as the
        creator of every output, and what forward asked to save resolved against the inputs and outputs."""
        self.edges = [Edge(x) if need else None for x, need in zip(inputs, self.needs_input_grad)]
        self.generation = gen = max([x.generation for x in inputs])
        self.epoch = _epoch[0]
        for i, o in enumerate(outputs):
            o._requires_grad = o.data.dtype.kind == "f"
            o.creator, o.generation, o.index = self, gen + 1, i
        self.outputs = [_weakref(o) for o in outputs]
        if len(outputs) > 1:
            self.output_meta = [(o.shape, o.dtype) for o in outputs]
        if self.saved:
            self.saved = tuple([a if a is None else _pack(self, a, inputs, xs, ys, outputs) for a in self.saved])
        if _anomaly():
            self.trace = _user_frame()

    def save_for_backward(self, *arrays):
        """Name the arrays backward reads (None for a slot not needed this time); call it in ``forward``."""
        self.saved = arrays

    @property
    def saved_tensors(self):
        """What ``save_for_backward`` named, as Tensors: inputs and outputs as their graph nodes."""
        if self.edges is None:
            raise _freed(self)
        if not self.saves_outputs:
            return self.saved
        return tuple(self._output(s) if s.__class__ is SavedOutput else s for s in self.saved)

    def _output(self, saved):
        """The output as a graph node: the user's Tensor if it is still alive, else rebuilt from its array."""
        o = self.outputs[saved.index]()
        if o is None:
            o = Tensor(saved.data)
            o.creator, o.index, o.generation, o._requires_grad = self, saved.index, self.generation + 1, True
            o._fw = self.__dict__.get("saved_tangents", {}).get(saved.index)  # forward mode over this backward
        return o

    def input_shape(self, i):
        """The shape of input ``i``, which its gradient must have (known for every input that wants one)."""
        return self.edges[i].shape

    def release(self):
        """Drop what backward needed (saved arrays, edges, outputs): the graph behind this node can be freed."""
        self.saved, self.edges, self.outputs = (), None, ()

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, *gys):
        raise NotImplementedError(f"{type(self).__name__}.backward is not written")

    def jvp(self, *tangents):
        """Forward mode: the output tangent(s) for the input tangents (None: no tangent). It runs right after
        ``forward``, with the inputs at ``self.inputs`` and the outputs at ``self.output(i)``, as Tensors."""
        raise NotImplementedError(f"{type(self).__name__} has no forward-mode rule (jvp), so forward mode "
                                  "(minigrad.func.jvp, jacfwd, hessian, hvp) cannot pass through it")

    def output(self, i=0):
        """In ``jvp``: the i-th output of this call."""
        return self.jvp_outputs[i]

    def __repr__(self):
        return f"<{type(self).__name__}>"


_flags = {}  # needs_input_grad patterns of up to 4 inputs (at most 30 tuples)


def _pack(f, a, inputs, xs, ys, outputs):
    """One saved array as backward will see it: the input Tensor it is (``xs`` are the inputs' arrays), an output
    (``ys`` as forward returned them: a 0-d result may be a NumPy scalar that the output Tensor wraps anew), or a
    constant Tensor."""
    for x, t in zip(xs, inputs):
        if a is x:
            return t
    for i, y in enumerate(ys):
        if a is y:
            f.saves_outputs = True
            return SavedOutput(i, outputs[i].data)
    return Tensor(a)


def _check_devices(f, xs):
    """All inputs on one device (only called when a device besides the host exists)."""
    if len({backend.device_of(x) for x in xs}) == 1:
        return
    devices = ", ".join(f"input {i}: {backend.device_of(x)} {tuple(x.shape)}" for i, x in enumerate(xs))
    raise RuntimeError(f"{type(f).__name__} got inputs on different devices ({devices}); move them with .to(device)")


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_frame():
    """The innermost stack frame outside the minigrad package: the line of user code that made this op."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f'{frame.filename}:{frame.lineno}: {frame.line}'
    return "<unknown>"


def _check_finite(f, arrays, phase):
    for i, a in enumerate(arrays):
        if a is None or a.dtype.kind not in "fc":
            continue
        xp = backend.get_array_module(a)
        if not bool(xp.isfinite(a).all()):
            trace = getattr(f, "trace", None)
            where = (f"the op was created at {trace}" if trace else
                     f"the op was created at {_user_frame()}" if phase == "forward" else
                     f"its forward ran outside detect_anomaly; backward was called at {_user_frame()}")
            what = "output" if phase == "forward" else "gradient of input"
            raise FloatingPointError(f"detect_anomaly: {type(f).__name__}.{phase} produced NaN/Inf in {what} {i} "
                                     f"(shape {tuple(a.shape)}); {where}")


def _freed(f):
    return RuntimeError(f"trying to backward through {type(f).__name__} a second time: its graph was freed by an "
                        "earlier backward; pass retain_graph=True to the first backward if you need it twice")


def _check_versions(f):
    """Raise when a tensor that ``f.backward`` reads (what it saved) was changed in place after ``f`` ran
    (called only when some tensor was changed in place since then)."""
    stale = [(f"saved tensor {k}", s) for k, s in enumerate(f.saved)
             if isinstance(s, Tensor) and getattr(s, "_vstamp", 0) > f.epoch]
    for s in f.saved:
        o = f.outputs[s.index]() if s.__class__ is SavedOutput else None
        if o is not None and getattr(o, "_vstamp", 0) > f.epoch:
            stale.append((f"output {s.index}", o))
    if stale:
        where, t = stale[0]
        name = f" {t.name!r}" if isinstance(t.name, str) else ""
        raise RuntimeError(f"one of the variables needed for gradient computation has been modified by an inplace "
                           f"operation: {where}{name} of {type(f).__name__} (shape {tuple(t.shape)}, {t.dtype}) was "
                           f"changed after {type(f).__name__} used it and is now at version {t._version}. Compute "
                           "the loss after the change (e.g. call backward before optimizer.step()), or change a copy")


# ---- gradient hooks on leaves ----------------------------------------------------------------------------
_grad_hooks = {}  # id(leaf Tensor) -> (weak reference to it, its post-accumulate-grad hooks)


class _HookHandle:
    def __init__(self, tensor, hook):
        self.key, self.hook = id(tensor), hook

    def remove(self):
        hooks = _grad_hooks.get(self.key, (None, []))[1]
        if self.hook in hooks:
            hooks.remove(self.hook)
            if not hooks:
                del _grad_hooks[self.key]


def queue_callback(fn):
    """Run ``fn()`` once the backward that is running has finished (from a gradient hook: e.g. wait for the
    communication the hooks started)."""
    if _Config.callbacks is None:
        raise RuntimeError("queue_callback: no backward with gradient hooks is running")
    _Config.callbacks.append(fn)


def running_backward():
    """A token of the backward with gradient hooks that is running (the same object until it ends; None outside
    one): a hook compares it with the last one it saw to know its first call in a new backward."""
    return _Config.callbacks


def _hooked_leaves(roots):
    """The leaves with hooks that this backward reaches, each with the heap key of the last op to read it:
    once the sweep pops a later key, that leaf's gradient is complete. Sorted so the next ready one is last."""
    last, stack, seen = {}, [r.creator for r in roots if r.creator is not None], set()
    while stack:
        f = stack.pop()
        if id(f) in seen or f.edges is None:
            continue
        seen.add(id(f))
        key = (-f.generation, id(f))
        for edge in f.edges:
            if edge is None:
                continue
            node = edge.node
            if isinstance(node, Function):
                stack.append(node)
            elif id(node) in _grad_hooks and (id(node) not in last or last[id(node)][0] < key):
                last[id(node)] = (key, node)
    return sorted(last.values(), key=lambda kx: kx[0], reverse=True)


def _flush_ready(hooked, grads, before, taken):
    """Move complete leaf gradients into ``.grad`` and call their hooks (all remaining when ``before`` is None)."""
    while hooked and (before is None or hooked[-1][0] < before):
        t = hooked.pop()[1]
        entry = grads.pop(graph_key(t), None)
        if entry is None:
            continue
        if t.grad is None:
            t.grad = _own_grad(entry[1], taken)
            taken.add(id(t.grad.data))
        else:
            t.grad = t.grad + entry[1]
        for hook in list(_grad_hooks.get(id(t), (None, ()))[1]):
            hook(t)


def _own_grad(g, taken):
    """``g`` as a tensor's first ``.grad``: its own writable array (users clip gradients in place), copied only
    when it is a seed, another tensor's gradient, a read-only broadcast or a view of another array."""
    a = g.data
    if id(a) in taken or a.base is not None or not getattr(a.flags, "writeable", True):
        if g.creator is not None:  # create_graph: a differentiable copy keeps the graph
            return g * 1
        return Tensor(backend.copy_array(a))
    return g


# ---- the backward walk -----------------------------------------------------------------------------------
def graph_key(t):
    """A tensor's place in the graph, which keys its gradient: (its creator, which output) or (itself, 0) for a
    leaf. Two Tensor objects for one output (a user's, a rebuilt one) share it."""
    return (id(t), 0) if t.creator is None else (id(t.creator), t.index)


def run_backward(roots, root_grads, retain_graph, create_graph, wanted):
    """Reverse-mode sweep from ``roots``: pop the newest Function, hand its backward the gradients of its
    outputs, send each gradient it returns along that input's Edge. With ``wanted`` (a list of Tensors) return
    their gradients instead of accumulating into the leaves' ``.grad``."""
    grads = {}  # graph key -> [node, gradient]; holding the node keeps its id, hence the key, unique
    wanted_keys = None if wanted is None else {graph_key(t) for t in wanted}
    found = {}
    heap, queued = [], set()  # heap of (-generation, id, function): newest first, ids break ties
    hooked = _hooked_leaves(roots) if _grad_hooks and wanted is None else None
    if hooked is not None:
        _Config.callbacks = []

    def schedule(f):
        if f not in queued:
            queued.add(f)
            heappush(heap, (-f.generation, id(f), f))

    taken = {id(g.data) for g in root_grads}  # arrays handed out as .grad, and the seeds: never give one twice
    for r, g in zip(roots, root_grads):
        if g.shape != r.shape:
            raise RuntimeError(f"grad of shape {g.shape} given for an output of shape {r.shape}")
        node = r if r.creator is None else r.creator
        entry = grads.setdefault(graph_key(r), [node, None])
        entry[1] = g if entry[1] is None else entry[1] + g
        if r.creator is not None:
            schedule(r.creator)

    anomaly = _anomaly()  # read once: only _backward_unchecked switches it, and back, during the sweep
    with _GradMode(create_graph):
        while heap:
            f = heappop(heap)[2]
            queued.discard(f)  # every consumer of its outputs ran before it (higher generation): it is done
            if hooked and hooked[-1][0] < (-f.generation, id(f)):
                _flush_ready(hooked, grads, (-f.generation, id(f)), taken)
            if f.edges is None:
                raise _freed(f)
            if not f.differentiable_backward and forward_levels() and _carries_tangent(f, grads):
                raise RuntimeError(f"{type(f).__name__} is a fused op whose backward works on raw arrays: forward "
                                   "mode cannot pass through its backward (hessian, hvp, jacfwd of a gradient). "
                                   "Use its composed version")
            if create_graph and not f.differentiable_backward:
                raise RuntimeError(f"{type(f).__name__} is a fused op whose backward works on raw arrays: it "
                                   "has no second derivative. Use its composed version for higher-order gradients "
                                   "(modules with a fused path, such as nn.GRU and nn.LSTM, take fused=False)")
            # Fast path, one output: without it a 50,000-node backward takes 1.10x as long (benchmarks/fast_paths.py).
            if len(f.outputs) == 1 and wanted_keys is None:
                entry = grads.pop((id(f), 0), None)
                if entry is None:
                    continue
                gys = (entry[1],)
                o = f.outputs[0]()
                if o is not None and o._retains_grad:
                    o.grad = _own_grad(gys[0], taken) if o.grad is None else o.grad + gys[0]
                    taken.add(id(o.grad.data))
            else:
                gys = _output_grads(f, grads, wanted_keys, found, wanted is None, taken)
                if gys is None:
                    continue
            if f.epoch != _epoch[0]:  # something was changed in place since f ran: did f's backward need it?
                _check_versions(f)
            if backend.multi_device:
                with backend.device_scope(next(g for g in gys if g is not None).data):
                    gxs = _backward_unchecked(f, gys) if anomaly else f.backward(*gys)
            else:
                gxs = _backward_unchecked(f, gys) if anomaly else f.backward(*gys)
            if gxs.__class__ is not tuple:
                gxs = tuple(gxs) if isinstance(gxs, list) else (gxs,)
            if len(gxs) != len(f.edges):
                raise RuntimeError(f"{type(f).__name__}.backward returned {len(gxs)} gradients for "
                                   f"{len(f.edges)} inputs")
            if anomaly:
                _check_finite(f, [None if g is None else as_tensor(g).data for g in gxs], "backward")
            for i, (edge, gx) in enumerate(zip(f.edges, gxs)):  # send each gradient along its edge
                if gx is None or edge is None:
                    continue
                if not isinstance(gx, Tensor):
                    gx = as_tensor(gx, gys[0])
                if gx.data.shape != edge.shape:
                    raise RuntimeError(f"{type(f).__name__}.backward returned a gradient of shape {gx.shape} "
                                       f"for input {i} of shape {edge.shape}")
                if gx.data.dtype != edge.dtype:
                    gx = gx.astype(edge.dtype)
                key = (id(edge.node), edge.index)
                entry = grads.get(key)
                if entry is not None:  # another use of the same input: gradients add up
                    entry[1] = entry[1] + gx
                    continue
                grads[key] = [edge.node, gx]
                if isinstance(edge.node, Function):  # its first gradient: the node that made it will run
                    schedule(edge.node)
            if not retain_graph:
                f.release()

    if wanted is not None:
        return [found[k] if k in found else (grads[k][1] if k in grads else None)
                for k in (graph_key(t) for t in wanted)]
    if hooked is not None:
        _flush_ready(hooked, grads, None, taken)
    for node, g in grads.values():
        if isinstance(node, Tensor) and node._requires_grad:
            if node.grad is not None:
                node.grad = node.grad + g
                continue
            node.grad = g = _own_grad(g, taken)
            taken.add(id(g.data))
    if hooked is not None:
        callbacks, _Config.callbacks = _Config.callbacks, None
        for fn in callbacks:
            fn()
    return None


def _carries_tangent(f, grads):
    """Whether a saved input or an output gradient of ``f`` holds a tangent of an active forward-mode level."""
    ts = [s for s in f.saved if isinstance(s, Tensor)]
    ts += [e[1] for e in (grads.get((id(f), i)) for i in range(len(f.outputs))) if e is not None]
    return any(k in t._fw for t in ts if t._fw for k in forward_levels())


def _output_grads(f, grads, wanted_keys, found, to_leaves, taken):
    """The gradients of ``f``'s outputs, taken out of ``grads`` (zeros for an output that got none;
    None when none did). A wanted output's gradient is noted in ``found``; a retained one goes to its ``.grad``."""
    fid, gys = id(f), []
    for i in range(len(f.outputs)):
        entry = grads.pop((fid, i), None)
        if entry is None:
            gys.append(None)
            continue
        g = entry[1]
        if wanted_keys is not None and (fid, i) in wanted_keys:
            found[(fid, i)] = g
        o = f.outputs[i]()
        if o is not None and o._retains_grad and to_leaves:
            o.grad = _own_grad(g, taken) if o.grad is None else o.grad + g
            taken.add(id(o.grad.data))
        gys.append(g)
    if len(gys) == 1:
        return None if gys[0] is None else gys
    if all(g is None for g in gys):
        return None
    if any(g is None for g in gys):
        ref = next(g for g in gys if g is not None).data
        xp = backend.get_array_module(ref)
        with backend.device_scope(ref):
            gys = [g if g is not None else Tensor(xp.zeros(s, d)) for g, (s, d) in zip(gys, f.output_meta)]
    return gys


def _backward_unchecked(f, gys):
    """Anomaly mode judges what ``f.backward`` returns (checked above), not the ops it runs inside."""
    _anomaly_var.set(False)
    try:
        return f.backward(*gys)
    finally:
        _anomaly_var.set(True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` w.r.t. ``inputs`` returned as a tuple, leaving every ``.grad`` untouched."""
    single_out = isinstance(outputs, Tensor)
    outputs = [outputs] if single_out else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor) or backend.is_array(grad_outputs):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad_outputs has {len(grad_outputs)} entries for {len(outputs)} outputs")
    seeds = []
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        if not o.requires_grad:
            raise RuntimeError(f"output {i} does not require grad: nothing in its graph requires grad")
        if g is None:
            if o.data.size != 1:
                raise RuntimeError(f"grad_outputs must be given for output {i} of shape {o.shape} (not a scalar)")
            with backend.device_scope(o.data):
                g = Tensor(o.xp.ones_like(o.data))
        seeds.append(as_tensor(g, o))
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"input {i} (shape {t.shape}) does not require grad")
    retain = create_graph if retain_graph is None else retain_graph
    result = run_backward(outputs, seeds, retain, create_graph, inputs)
    for i, (t, g) in enumerate(zip(inputs, result)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"input {i} (shape {t.shape}) is not used in the graph of the outputs; "
                                   "pass allow_unused=True to get None for it")
    return tuple(result)
