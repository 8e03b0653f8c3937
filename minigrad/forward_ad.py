"""Forward-mode autodiff: tangents pushed through the program alongside the values (dual numbers).

Inside ``dual_level()`` a Tensor may carry a tangent for that level (``make_dual``). Every ``Function`` call
then also runs the op's ``jvp`` on its input tangents and attaches the result to its outputs, whatever the
grad mode (forward mode ignores ``no_grad``, as in PyTorch). ``jvp`` rules are written with minigrad ops, so
the tangents are themselves differentiable: in reverse mode (reverse-over-forward) and by an outer level
(forward-over-forward, forward-over-reverse).

Levels nest: each has a number larger than those around it. A level-k tangent is computed with only the
outer levels (< k) active, so it carries their tangents (the mixed terms an outer level needs) and never its
own (no perturbation confusion).
"""
from minigrad import backend
from minigrad.core import (Function, Tensor, as_tensor, forward_levels, reset_forward_levels, set_forward_levels,
                           set_tangent_pusher)
from minigrad.ops.shape import broadcast_to

_counter = [0]


class dual_level:
    """A forward-mode level: ``with dual_level() as k:`` tangents made with ``make_dual(x, t, k)`` flow
    through every op called inside; read them with ``unpack_dual(y, k)``."""

    def __enter__(self):
        _counter[0] += 1
        self.level = _counter[0]
        self.token = set_forward_levels(forward_levels() + (self.level,))
        return self.level

    def __exit__(self, *exc):
        reset_forward_levels(self.token)


class Alias(Function):
    """The identity as a graph node: a new Tensor for the same value, linked to the old one in both modes."""

    def forward(self, x):
        return x

    def backward(self, gy):
        return gy

    def jvp(self, tx):
        return tx


class RawTangent(Function):
    """A tangent that a fused op's jvp computed on raw arrays, as a graph node over what it was computed from.
    Reverse mode or an outer forward level reaching it fails loudly instead of taking it for a constant."""

    def __init__(self, array, op):
        self.array, self.op = array, op

    def forward(self, *deps):
        return self.array

    def backward(self, gy):
        raise RuntimeError(f"{self.op}.jvp works on raw arrays: reverse mode cannot differentiate its tangent "
                           "(jacrev of jacfwd); use the op's composed version")

    def jvp(self, *tangents):
        raise RuntimeError(f"{self.op}.jvp works on raw arrays: an outer forward level cannot differentiate its "
                           "tangent (jacfwd of jacfwd, hessian); use the op's composed version")


def raw_tangent(f, array, *deps):
    """Wrap the array a fused ``f.jvp`` computed from the Tensors ``deps`` (its inputs and their tangents)."""
    return RawTangent(array, type(f).__name__)(*[d for d in deps if d is not None])


def make_dual(x, tangent, level):
    """A new Tensor with ``x``'s value (and graph) carrying ``tangent`` at ``level``."""
    if level not in forward_levels():
        raise RuntimeError(f"make_dual: level {level} is not active; call it inside `with dual_level() as level:`")
    dual = Alias()(x)
    dual._fw = dict(dual._fw or {})
    dual._fw[level] = tangent
    return dual


def unpack_dual(t, level):
    """The tangent of ``t`` at ``level``, or None when ``t`` has none (a zero tangent)."""
    return t._fw.get(level) if t._fw else None


def _push_tangents(f, inputs, outputs):
    """Run ``f.jvp`` for each active level at which some input has a tangent, outermost level first."""
    levels = forward_levels()
    fws = [x._fw for x in inputs]
    if not any(fws):
        return
    f.inputs, f.jvp_outputs = tuple(inputs), outputs
    try:
        for n, k in enumerate(levels):
            txs = [fw.get(k) if fw else None for fw in fws]
            if all(t is None for t in txs):
                continue
            token = set_forward_levels(levels[:n])  # the tangent carries only the outer levels' tangents
            try:
                with backend.device_scope(inputs[0].data):  # raw-array work on the inputs' device, as in forward
                    tys = f.jvp(*txs)
            finally:
                reset_forward_levels(token)
            if tys.__class__ is not tuple:
                tys = tuple(tys) if isinstance(tys, list) else (tys,)
            if len(tys) != len(outputs):
                raise RuntimeError(f"{type(f).__name__}.jvp returned {len(tys)} tangents for {len(outputs)} outputs")
            for i, (o, t) in enumerate(zip(outputs, tys)):
                if t is None or not backend.is_floating(o.dtype):
                    continue
                t = _fit(f, i, as_tensor(t, o), o)
                o._fw = {} if o._fw is None else o._fw
                o._fw[k] = t
    finally:
        del f.inputs, f.jvp_outputs
    if f.edges is not None:  # backward may rebuild an output from its array: it gets these tangents back
        f.saved_tangents = {i: o._fw for i, o in enumerate(outputs)}


def _fit(f, i, t, o):
    """A rule's tangent for output ``i`` in the output's shape (broadcast, as NumPy broadcast the inputs) and dtype."""
    if t.shape != o.shape:
        try:
            shape = backend.np.broadcast_shapes(t.shape, o.shape)
        except ValueError:
            shape = None
        if shape != o.shape:
            raise RuntimeError(f"{type(f).__name__}.jvp returned a tangent of shape {t.shape} for output {i} of "
                               f"shape {o.shape}")
        t = broadcast_to(t, o.shape)
    if t.dtype != o.dtype:
        t = t.astype(o.dtype)
    return t


def zeros_tangent(x):
    """A zero tangent for ``x`` (a Tensor of zeros of its shape, dtype and device)."""
    return Tensor(x.xp.zeros(x.shape, dtype=x.dtype))


set_tangent_pusher(_push_tangents)
