"""``Module`` and ``Parameter``: parameters registered by attribute, as in PyTorch."""
from collections import OrderedDict

from minigrad import backend
from minigrad.core import Tensor


class Parameter(Tensor):
    """A leaf tensor that a Module registers as trainable (``requires_grad=True``)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)


class Module:
    """Base class of layers and models: assign Parameters, Modules and buffers as attributes."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before "
                                 f"assigning {name!r}")
        if isinstance(value, Parameter):
            store = self._parameters
        elif isinstance(value, Module):
            store = self._modules
        elif value is None and name in self._parameters:  # e.g. ``self.bias = None``: still a (None) parameter
            store = self._parameters
        elif name in self._buffers:  # a buffer stays a buffer
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}.{name} is a buffer: assign a Tensor or None, got "
                                f"{type(value).__name__}")
            store = self._buffers
        else:
            store = None
        for other in (self._parameters, self._modules, self._buffers):
            if other is not store:
                other.pop(name, None)
        if store is not None:
            store[name] = True if store is self._buffers else value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for store in (self._parameters, self._modules, self._buffers):
            store.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor):
        """State that is saved and moved with the module but not trained (e.g. BatchNorm's running mean)."""
        object.__setattr__(self, name, tensor)
        self._buffers[name] = True

    def register_parameter(self, name, param):
        if param is None:
            object.__setattr__(self, name, None)
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def __call__(self, *args, **kwargs):
        first = next((a for a in args if isinstance(a, Tensor)), None)
        if first is None or first.data.__class__ is backend.np.ndarray or not backend.multi_device:
            return self.forward(*args, **kwargs)
        with backend.device_scope(first.data):  # helper arrays (zero states, masks) on the input's device
            return self.forward(*args, **kwargs)

    # ---- traversal ------------------------------------------------------------------------------------------
    def children(self):
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in modules:
            for name, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self):
        for mprefix, m in self.named_modules():
            for name in m._buffers:
                b = getattr(m, name)
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    # ---- modes and grads ------------------------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag=True):
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def apply(self, fn):
        for m in self.modules():
            fn(m)
        return self

    def to(self, device=None, dtype=None):
        """Move (and/or cast floating) parameters and buffers in place; returns self."""
        dtype = None if dtype is None else backend.as_dtype(dtype)
        for m in self.modules():
            for name, p in list(m._parameters.items()):
                if p is not None:
                    p.data = _convert(p.data, device, dtype)
                    if p.grad is not None:
                        p.grad = Tensor(_convert(p.grad.data, device, dtype))
            for name in m._buffers:
                b = getattr(m, name)
                if b is not None:
                    b.data = _convert(b.data, device, dtype)
        return self

    # ---- state ----------------------------------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by dotted name (the Tensors themselves, like PyTorch)."""
        out = OrderedDict(self.named_parameters())
        out.update(self.named_buffers())
        return out

    def load_state_dict(self, state, strict=True):
        """Copy values (Tensors or NumPy arrays) into parameters and buffers, checking names and shapes."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        updates = []
        for k, target in own.items():  # check everything first: a bad entry leaves the module untouched
            if k not in state:
                continue
            value = state[k].data if isinstance(state[k], Tensor) else state[k]
            value = value if backend.is_array(value) else backend.np.asarray(value)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"load_state_dict for {type(self).__name__}: {k!r} has shape {tuple(value.shape)} "
                                 f"in the state but {tuple(target.shape)} in the module")
            updates.append((target, value))
        for target, value in updates:
            target.data = backend.copy_array(backend.to_device(value, target.device), target.dtype)
            target._version += 1
        return missing, unexpected

    # ---- printing -------------------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"


def _convert(array, device, dtype):
    if device is not None:
        array = backend.to_device(array, device)
    if dtype is not None and backend.is_floating(array.dtype):
        array = array.astype(dtype)
    return array


class Sequential(Module):
    """Modules applied in order."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                setattr(self, name, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        if isinstance(i, slice):  # a Sequential of the slice, names kept (as in PyTorch)
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, m):
        setattr(self, str(len(self._modules)), m)
        return self

    def extend(self, ms):
        for m in ms:
            self.append(m)
        return self

    def __getitem__(self, i):
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
