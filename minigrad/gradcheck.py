"""Gradient checking as a library feature: analytic gradients against float64 central differences.

``gradcheck`` compares first derivatives, ``gradgradcheck`` second ones (by gradchecking the backward pass).
Two modes: ``"full"`` builds the whole Jacobian both ways (numeric columns, analytic rows) and also checks a
random upstream gradient; ``"fast"`` compares one random projection vᵀJu per input, for large inputs.
On failure the error names the function, the input, the shapes, the worst element and both values.
"""
import functools

import numpy as np

from minigrad import backend
from minigrad.core import Tensor, enable_grad, grad, no_grad


class GradcheckError(AssertionError):
    """Raised when analytic and numeric gradients disagree; the message says where and by how much."""


def _prepare(inputs):
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    marked = any(isinstance(x, Tensor) and x.requires_grad for x in inputs)
    prepared, diff = [], []
    for x in inputs:
        if isinstance(x, Tensor) and backend.is_floating(x.dtype) and (x.requires_grad or not marked):
            t = Tensor(x.data.astype("float64", order="C", copy=True), requires_grad=True)
            prepared.append(t)
            diff.append(len(prepared) - 1)
        else:
            prepared.append(x)
    if not diff:
        raise ValueError("gradcheck: no floating-point input to differentiate")
    return prepared, diff


def _outputs(fn, xs):
    out = fn(*xs)
    out = [out] if isinstance(out, Tensor) else [o for o in out if o is not None]
    for k, o in enumerate(out):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: output {k} of {_name(fn)} is {type(o).__name__}, not a Tensor")
    return [o for o in out if backend.is_floating(o.dtype)]


def _name(fn):
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _vjp(fn, xs, diff, vs):
    """Analytic Σ_k v_kᵀ J_k for every differentiable input (zeros where the graph does not reach)."""
    outs = _outputs(fn, xs)
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    targets = [xs[i] for i in diff]
    if not live:
        return [np.zeros(t.shape) for t in targets]
    gs = grad([o for o, _ in live], targets, grad_outputs=[Tensor(v) for _, v in live], allow_unused=True)
    return [np.zeros(t.shape) if g is None else backend.to_numpy(g.data).astype(np.float64)
            for g, t in zip(gs, targets)]


def _flat_outputs(fn, xs):
    with no_grad():
        return np.concatenate([backend.to_numpy(o.data).astype(np.float64).ravel() for o in _outputs(fn, xs)]
                              or [np.zeros(0)])


def _steps(x, eps):
    """Per-element finite-difference step: ``eps`` relative to the element's magnitude (absolute below 1)."""
    return eps * np.maximum(1.0, np.abs(backend.to_numpy(x)))


def _richardson(d_h, d_half):
    """Central differences have error c₂h² + c₄h⁴ + …; combining steps h and h/2 cancels the h² term."""
    return (4.0 * d_half - d_h) / 3.0


def _numeric_jacobian(fn, xs, i, eps):
    """Central differences refined by Richardson extrapolation, one column per element of input i:
    D(h)[:, j] = (f(x+he_j) − f(x−he_j)) / 2h with h scaled to |x_j|; J = (4·D(h/2) − D(h)) / 3."""
    x = xs[i].data
    flat = x.reshape(-1)
    hs = _steps(flat, eps)
    cols = []
    for j in range(flat.size):
        old = flat[j].item()
        d = []
        for h in (float(hs[j]), float(hs[j]) / 2):
            flat[j] = old + h
            plus = _flat_outputs(fn, xs)
            flat[j] = old - h
            minus = _flat_outputs(fn, xs)
            flat[j] = old
            d.append((plus - minus) / (2 * h))
        cols.append(_richardson(*d))
    n_out = _flat_outputs(fn, xs).size
    return np.stack(cols, axis=1) if cols else np.zeros((n_out, 0))


def _check_finite(fn, what, i, xs, numeric, analytic, extra=""):
    """NaN or Inf on either side is a failure (a comparison that ignores them proves nothing)."""
    for side, J in (("numeric", numeric), ("analytic", analytic)):
        bad = ~np.isfinite(J)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            pos = tuple(int(p) for p in np.unravel_index(index, J.shape)) if J.ndim else ()
            shapes = ", ".join(f"input {k}: {tuple(x.shape)} {x.dtype}" for k, x in enumerate(xs)
                               if isinstance(x, Tensor))
            raise GradcheckError(
                f"{what} failed for {_name(fn)}: the {side} gradient w.r.t. input {i} ({shapes}) has "
                f"{int(bad.sum())} non-finite element(s); first at {pos}{extra}: {float(J.flat[index])} "
                f"(numeric {float(numeric.flat[index]):.8g}, analytic {float(analytic.flat[index]):.8g})")


def _fail(fn, what, i, xs, numeric, analytic, index, atol, rtol, extra=""):
    shapes = ", ".join(f"input {k}: {tuple(x.shape)} {x.dtype}" for k, x in enumerate(xs) if isinstance(x, Tensor))
    n, a = float(numeric.flat[index]), float(analytic.flat[index])
    pos = np.unravel_index(index, numeric.shape) if numeric.ndim else ()
    raise GradcheckError(
        f"{what} failed for {_name(fn)}: gradient w.r.t. input {i} ({shapes}).\n"
        f"  worst element {tuple(int(p) for p in pos)}{extra}: numeric {n:.8g} vs analytic {a:.8g} "
        f"(|diff| {abs(n - a):.3g} > atol {atol:g} + rtol {rtol:g}·|numeric|)\n"
        f"  max |diff| over the input: {float(np.max(np.abs(numeric - analytic))):.3g}")


def _compare(fn, what, i, xs, numeric, analytic, atol, rtol, extra=""):
    _check_finite(fn, what, i, xs, numeric, analytic, extra)
    bad = np.abs(numeric - analytic) - (atol + rtol * np.abs(numeric))
    if bad.size and bad.max() > 0:
        _fail(fn, what, i, xs, numeric, analytic, int(np.argmax(bad)), atol, rtol, extra)


def _jacobians(fn, xs, diff, shapes, eps):
    n_out = int(sum(np.prod(s) for s in shapes))
    rows = []  # analytic Jacobian, one backward per output element, all inputs at once
    for k in range(n_out):
        e = np.zeros(n_out)
        e[k] = 1.0
        parts, start = [], 0
        for s in shapes:
            n = int(np.prod(s))
            parts.append(backend.to_device(e[start:start + n].reshape(s), xs[diff[0]].device))
            start += n
        rows.append([g.ravel() for g in _vjp(fn, xs, diff, parts)])
    for slot, i in enumerate(diff):
        J = _numeric_jacobian(fn, xs, i, eps)
        yield i, J, (np.stack([r[slot] for r in rows]) if rows else np.zeros_like(J))


def jacobians(fn, inputs, eps=1e-6):
    """``[(input index, numeric J, analytic J), ...]`` as ``gradcheck`` builds them (rows: output elements,
    columns: input elements), for measuring how closely an op's backward matches its finite differences."""
    xs, diff = _prepare(inputs)
    with no_grad():
        shapes = [o.shape for o in _outputs(fn, xs)]
    return list(_jacobians(fn, xs, diff, shapes, eps))


def _on_inputs_device(check):
    """Run ``check`` with its inputs' device current: its perturbed copies and probes are made there."""
    @functools.wraps(check)
    def run(fn, inputs, *args, **kwargs):
        first = inputs if isinstance(inputs, Tensor) else next((x for x in inputs if isinstance(x, Tensor)), None)
        if first is None:
            return check(fn, inputs, *args, **kwargs)
        with backend.device_scope(first.data):
            return check(fn, inputs, *args, **kwargs)
    return run


@_on_inputs_device
def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="full", seed=0, raise_exception=True):
    """Check ``fn``'s analytic gradients against central differences in float64.

    ``inputs``: Tensors (and any other arguments). Floating inputs with ``requires_grad=True`` are checked
    (all floating ones when none is marked); they are copied to float64 first. The step for element x is
    ``eps·max(1, |x|)`` and the difference quotient is Richardson-extrapolated from steps h and h/2, so
    the numeric side is accurate to ~1e-10 for smooth ops and ``rtol=1e-6`` is meaningful. An element
    fails when ``|numeric − analytic| > atol + rtol·|numeric|``, or when either side is NaN/Inf. Returns
    True, or raises ``GradcheckError`` (returns False when ``raise_exception=False``). The keywords and
    defaults are PyTorch's; minigrad's own op specs run at ``rtol=1e-6``.
    """
    try:
        xs, diff = _prepare(inputs)
        rng = np.random.default_rng(seed)
        with no_grad():
            shapes = [o.shape for o in _outputs(fn, xs)]
        vs = [rng.standard_normal(s) for s in shapes]
        if backend.get_array_module(xs[diff[0]].data) is not np:
            vs = [backend.to_device(v, xs[diff[0]].device) for v in vs]
        analytic_vjp = _vjp(fn, xs, diff, vs)
        vflat = np.concatenate([backend.to_numpy(v).ravel() for v in vs] or [np.zeros(0)])
        if mode == "full":
            for slot, (i, J, Ja) in enumerate(_jacobians(fn, xs, diff, shapes, eps)):
                _compare(fn, "gradcheck (Jacobian)", i, xs, J, Ja, atol, rtol,
                         extra=" as (output element, input element)")
                numeric_vjp = (vflat @ J).reshape(xs[i].shape)
                _compare(fn, "gradcheck (random upstream gradient)", i, xs, numeric_vjp, analytic_vjp[slot],
                         atol, rtol)
        elif mode == "fast":
            for slot, i in enumerate(diff):
                u = rng.standard_normal(xs[i].shape)
                x = xs[i].data
                old = x.copy()
                step = eps * max(1.0, float(np.abs(backend.to_numpy(old)).max(initial=0.0)))
                d = []
                for h in (step, step / 2):
                    x[...] = old + backend.to_device(h * u, xs[i].device)
                    plus = _flat_outputs(fn, xs)
                    x[...] = old - backend.to_device(h * u, xs[i].device)
                    minus = _flat_outputs(fn, xs)
                    x[...] = old
                    d.append(vflat @ (plus - minus) / (2 * h))
                numeric = np.array(_richardson(*d))
                analytic = np.array(float((analytic_vjp[slot] * u).sum()))
                _compare(fn, "gradcheck (fast vᵀJu)", i, xs, numeric, analytic, atol, rtol)
        else:
            raise ValueError(f"gradcheck: mode must be 'full' or 'fast', got {mode!r}")
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


@_on_inputs_device
def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="full", seed=0, raise_exception=True):
    """Check second derivatives: gradcheck the map (x, v) ↦ ∂(vᵀ fn(x))/∂x built with ``create_graph=True``."""
    xs, diff = _prepare(inputs)
    rng = np.random.default_rng(seed + 1)
    with no_grad():
        outs = _outputs(fn, xs)
    vs = [Tensor(backend.to_device(rng.standard_normal(o.shape), o.device), requires_grad=True) for o in outs]
    n = len(xs)

    def first_derivative(*args):
        with enable_grad():  # gradcheck's finite differences run under no_grad; this map needs its graph
            ys = _outputs(fn, list(args[:n]))
            live = [(y, v) for y, v in zip(ys, args[n:]) if y.requires_grad]
            if not live:
                return []
            gs = grad([y for y, _ in live], [args[i] for i in diff], grad_outputs=[v for _, v in live],
                      create_graph=True, allow_unused=True)
        return [g for g in gs if g is not None]

    first_derivative.__qualname__ = f"backward of {_name(fn)}"
    return gradcheck(first_derivative, xs + vs, eps, atol, rtol, mode, seed, raise_exception)
