"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad``/``step`` and saving, as in PyTorch.

Updates work on the raw arrays (``p.data``, ``p.grad.data``) with in-place array ops and record no graph,
so a step costs what the arithmetic costs. Gradients are only read, never written: they may be shared
between parameters or be read-only broadcast views.
"""
from minigrad import backend
from minigrad.core import Tensor, enable_grad


class Optimizer:
    """Base class: subclasses set ``defaults`` and write ``_step_group(group)``."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}  # Parameter -> dict of arrays and numbers
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, got a "
                            "single Tensor; wrap it in a list")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for group in (params if isinstance(params[0], dict) else [{"params": params}]):
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict ``{"params": [...], <hyperparameter>: value}``; missing ones take the defaults."""
        if not isinstance(group, dict):
            raise TypeError(f"{type(self).__name__}: a param group must be a dict, got {type(group).__name__}")
        group = dict(group)
        params = group.get("params")
        params = [params] if isinstance(params, Tensor) else list(params or [])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: param {i} of a group is {type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: param {i} (shape {p.shape}) is not a leaf tensor")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: param {i} (shape {p.shape}) appears in more than one group")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown hyperparameter(s) {sorted(unknown)} in a param group; "
                             f"known: {sorted(self.defaults)}")
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: ``p.grad = None`` (the next backward allocates fresh ones), or zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    with backend.device_scope(p.data):
                        p.grad = Tensor(p.xp.zeros_like(p.grad.data))

    def step(self, closure=None):
        """One update of every parameter that has a gradient. ``closure`` re-evaluates and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group):
        raise NotImplementedError(f"{type(self).__name__}._step_group is not written")

    def _updates(self, group, new_state=None, l2=True):
        """``(xp, θ, g, state)`` for each parameter of ``group`` that has a gradient, ready for in-place
        updates: g is negated under ``maximize`` and, with ``l2``, has ``weight_decay``·θ added; ``state`` is
        made by ``new_state(θ)`` on first use (None when there is no ``new_state``)."""
        maximize, wd = group.get("maximize", False), float(group.get("weight_decay", 0.0)) if l2 else 0.0
        for p in group["params"]:
            if p.grad is None:
                continue
            with backend.device_scope(p.data):  # state and temporaries on the parameter's device
                x, g = _arrays(p)
                state = self.state.get(p)
                if state is None and new_state is not None:
                    state = self.state[p] = new_state(x)
                if maximize:
                    g = -g
                if wd:
                    g = g + wd * x
                p._version += 1  # the caller updates x in place: graphs that saved p must not backward through it
                yield p.xp, x, g, state

    # ---- saving -------------------------------------------------------------------------------------------
    def state_dict(self):
        """``{"state": {index: {name: array|number}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Parameters are numbered in group order, as in PyTorch; arrays are copies, so the result is a snapshot
        that ``mg.save`` can write.
        """
        index, groups = {}, []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index[id(p)] = len(index)
                ids.append(index[id(p)])
            groups.append({**{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"},
                           "params": ids})
        state = {index[id(p)]: {k: (backend.copy_array(v) if backend.is_array(v) else v) for k, v in s.items()}
                 for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by ``state_dict`` (keys may be ints or strings;
        arrays may be NumPy/CuPy arrays or Tensors, and are copied to each parameter's device and dtype)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has {len(groups)} param groups, "
                             f"the optimizer {len(self.param_groups)}")
        name = f"{type(self).__name__}.load_state_dict"
        params = {}
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"{name}: group {i} has {len(saved['params'])} "
                                 f"params in the state, {len(own['params'])} in the optimizer")
            for k, p in zip(saved["params"], own["params"]):
                params[int(k)] = p
        state = {}  # checked in full before anything changes: a bad entry leaves the optimizer as it was
        for k, s in state_dict["state"].items():
            p = params.get(int(k))
            if p is None:
                raise ValueError(f"{name}: the state has an entry for param {k!r}, which no param group holds")
            for key, v in s.items():
                shape = getattr(v, "shape", None)
                # per-parameter arrays have the param's shape (a 0-d param's are kept as 1-element arrays)
                expected = (1,) if p.ndim == 0 else tuple(p.shape)
                if shape is not None and tuple(shape) not in ((), expected):
                    raise ValueError(f"{name}: state {key!r} of param {k} has shape {tuple(shape)}, "
                                     f"the param has shape {tuple(p.shape)}")
            state[p] = {key: _restore(v, p) for key, v in s.items()}
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = tuple(v) if isinstance(v, list) else v
        self.state = state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _restore(value, p):
    """A saved state entry as a fresh array on ``p``'s device (floating ones in ``p``'s dtype), or a number."""
    if isinstance(value, Tensor):
        value = value.data
    elif hasattr(value, "item") and getattr(value, "ndim", None) == 0 and not backend.is_array(value):
        value = value.item()  # a NumPy scalar
    if not backend.is_array(value):
        return value
    arr = backend.to_device(value, p.device)
    return backend.copy_array(arr, p.dtype if arr.dtype.kind == "f" else arr.dtype)


def _arrays(p):
    """The parameter and gradient arrays to update in place. A gradient in another memory layout than its
    parameter (a transposed weight's is column-major) is copied once, so every later op streams through
    memory; a 0-d parameter becomes a 1-element view (NumPy turns 0-d results into immutable scalars)."""
    x, g = p.data, p.grad.data
    if x.ndim == 0:
        return x.reshape(1), g.reshape(1)
    if not g.flags.c_contiguous and x.flags.c_contiguous:
        g = p.xp.ascontiguousarray(g)
    return x, g


def zeros_like_array(x):
    return backend.get_array_module(x).zeros_like(x)


def check_range(name, value, low=0.0, high=None, cls="Optimizer"):
    """A clear ValueError for a hyperparameter outside its range."""
    if not (value >= low and (high is None or value < high)):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{cls}: invalid {name} {value!r}: must be {bound}")
