"""Exponential moving average of a model's weights, a cheap ensemble that often evaluates better."""
from contextlib import contextmanager

from minigrad import backend
from minigrad.core import Tensor


class EMA:
    """Shadow copies ``s ← d·s + (1 − d)·θ`` of every parameter and floating buffer (other buffers are copied).

    Call ``update()`` after each ``optimizer.step()``; evaluate with ``copy_to(model)``, or keep training
    weights aside with ``store()`` / ``copy_to()`` / ``restore()`` (``with ema.average_parameters(): ...``).
    ``warmup=True`` uses d_n = min(decay, (1 + n)/(10 + n)) at the n-th update, so early averages are not
    dominated by the random initialisation. Shadows follow the model: after ``model.to(device)`` each one
    moves to its tensor's device on first use (``ema.to(device)`` moves them all at once).
    """

    def __init__(self, model, decay=0.999, warmup=False):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1], got {decay}")
        self.model, self.decay, self.warmup = model, float(decay), bool(warmup)
        self.num_updates = 0
        self.shadow = {name: backend.copy_array(t.data) for name, t in self._named(model)}
        self.backup = None

    def _named(self, model=None):
        """(name, tensor) of every parameter and buffer of ``model`` (default: the EMA's own model)."""
        model = self.model if model is None else model  # not ``or``: an empty Sequential is falsy
        return list(model.named_parameters()) + list(model.named_buffers())

    def _follow(self, saved, name, t):
        """``saved[name]``, moved first to the device of ``t`` if the model has moved since it was made."""
        a = saved[name]
        device = backend.device_of(t.data)
        if backend.device_of(a) != device:
            a = saved[name] = backend.to_device(a, device)
        return a

    def to(self, device):
        """Move every shadow (and stored backup) to ``device``; returns self."""
        for saved in (self.shadow, self.backup or {}):
            for name, a in saved.items():
                saved[name] = backend.to_device(a, device)
        return self

    def current_decay(self):
        """The decay the next ``update`` uses."""
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay

    def update(self, model=None):
        """Move every shadow toward the model's current value (in place, no graph)."""
        d = self.current_decay()
        self.num_updates += 1
        for name, t in self._named(model):
            s = self._follow(self.shadow, name, t)
            with backend.device_scope(s):
                if s.dtype.kind == "f":
                    s *= d
                    s += (1.0 - d) * t.data
                else:
                    s[...] = t.data

    def copy_to(self, model=None):
        """Overwrite the model's parameters and buffers with the averages."""
        for name, t in self._named(model):
            t.data = backend.copy_array(self._follow(self.shadow, name, t), t.dtype)
            t._version += 1

    apply_to = copy_to

    def store(self, model=None):
        """Keep the model's current values aside (for ``restore``)."""
        self.backup = {name: backend.copy_array(t.data) for name, t in self._named(model)}

    def restore(self, model=None):
        """Put back the values saved by ``store``."""
        if self.backup is None:
            raise RuntimeError("EMA.restore: nothing stored; call store() first")
        for name, t in self._named(model):
            t.data = self._follow(self.backup, name, t)
            t._version += 1
        self.backup = None

    @contextmanager
    def average_parameters(self, model=None):
        """``with ema.average_parameters(): evaluate()`` runs with the averages and restores afterwards."""
        self.store(model)
        self.copy_to(model)
        try:
            yield
        finally:
            self.restore(model)

    def state_dict(self):
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: backend.copy_array(v) for k, v in self.shadow.items()}}

    def load_state_dict(self, state):
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA.load_state_dict: the state lacks {sorted(missing)}")
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            v = v.data if isinstance(v, Tensor) else v
            own = self.shadow[k]
            self.shadow[k] = backend.copy_array(backend.to_device(v, backend.device_of(own)), own.dtype)
