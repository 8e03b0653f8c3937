"""Declarative op specs: one ``OpSpec`` drives forward (vs a float64 NumPy reference), gradient and
second-gradient checks. minigrad's own test suite is generated from a list of these with ``spec_tests``.

    from minigrad.testing import OpSpec, spec_tests
    SPECS = [OpSpec("cube", lambda a: a ** 3, lambda a: a ** 3)]
    test_forward, test_grad, test_gradgrad = spec_tests(SPECS)   # in a pytest module
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad.testing.strategies import arrays, shapes as _shapes


@dataclass
class OpSpec:
    """How to test one op.

    ``op`` takes Tensors, ``ref`` the same arguments as float64 NumPy arrays; ``elements`` is one hypothesis
    element strategy per input (or one for all); ``shapes`` draws the tuple of input shapes. The gradient
    tolerances are strict by default (``rtol=1e-6``, with Richardson-refined differences at step
    ``grad_eps·max(1, |x|)``): a 1e-5 relative error in a backward fails; loosen them only with a reason
    in ``notes``.
    """
    name: str
    op: Callable
    ref: Callable
    n_inputs: int = 1
    elements: object = None
    shapes: object = None
    second_order: bool = True
    unique: bool = False
    atol: float = 1e-12
    rtol: float = 1e-10
    grad_atol: float = 1e-9
    grad_rtol: float = 1e-6
    grad_eps: float = 1e-4
    kwargs: dict = field(default_factory=dict)
    notes: Optional[str] = None

    def __repr__(self):
        return f"OpSpec({self.name})"


def _as_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _tensors(arrays, device, dtype=None, requires_grad=False):
    """Tensors on ``device`` from host arrays; on the CPU the arrays' own (possibly non-contiguous) layout."""
    return [mg.Tensor(mg.backend.to_device(a if dtype is None else np.array(a, dtype=dtype), device),
                      requires_grad=requires_grad) for a in arrays]


def check_forward(spec, arrays, device="cpu"):
    """The op on Tensors equals the reference on float64 arrays (and keeps float32 as float32)."""
    out = _as_list(spec.op(*_tensors(arrays, device)))
    ref = _as_list(spec.ref(*[np.asarray(a, dtype=np.float64) for a in arrays]))
    assert len(out) == len(ref), f"{spec.name}: {len(out)} outputs, reference has {len(ref)}"
    for k, (o, r) in enumerate(zip(out, ref)):
        r = np.asarray(r)
        assert o.shape == r.shape, f"{spec.name}: output {k} has shape {o.shape}, reference {r.shape}"
        np.testing.assert_allclose(o.numpy(), r, rtol=spec.rtol, atol=spec.atol,
                                   err_msg=f"{spec.name}: forward output {k} differs from the NumPy reference "
                                           f"for input shapes {[a.shape for a in arrays]}")
    out32 = _as_list(spec.op(*_tensors(arrays, device, np.float32)))
    for k, o in enumerate(out32):
        if o.dtype.kind == "f":
            assert o.dtype == np.float32, f"{spec.name}: float32 inputs gave a {o.dtype} output {k}"


def check_grad(spec, arrays, device="cpu"):
    """``mg.gradcheck`` of the op at these inputs with the spec's tolerances."""
    return mg.gradcheck(spec.op, _tensors(arrays, device, np.float64, True), eps=spec.grad_eps,
                        atol=spec.grad_atol, rtol=spec.grad_rtol)


def check_gradgrad(spec, arrays, device="cpu"):
    """``mg.gradgradcheck`` of the op at these inputs with the spec's tolerances."""
    return mg.gradgradcheck(spec.op, _tensors(arrays, device, np.float64, True), eps=spec.grad_eps,
                            atol=spec.grad_atol, rtol=spec.grad_rtol)


def check_jvp(spec, arrays, device="cpu", seed=0):
    """Forward mode on the spec's op: the jvp equals central finite differences along a random tangent (a
    sanity check, at 1e-4), ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ for a random cotangent u (jvp against vjp, at 1e-10), and
    forward over reverse equals reverse over forward (at 1e-9)."""
    return check_jvp_fn(spec.op, _tensors(arrays, device, np.float64), name=spec.name, seed=seed,
                        second_order=spec.second_order)


def check_jvp_fn(f, xs, atol=1e-5, rtol=1e-4, eps=1e-6, name=None, seed=0, second_order=True):
    """``check_jvp`` for any function of float64 Tensors ``xs``. With ``second_order``, also forward over
    reverse: the jvp of x ↦ Jᵀ(x) u (what ``hvp`` and ``hessian`` compute) against finite differences."""
    name = name or getattr(f, "__name__", "f")
    rng = np.random.default_rng(seed)
    xs = [x if isinstance(x, mg.Tensor) else mg.Tensor(np.asarray(x, dtype=np.float64)) for x in xs]
    vs = [mg.Tensor(mg.backend.to_device(rng.standard_normal(x.shape), x.device)) for x in xs]
    out, tout = mg.func.jvp(f, tuple(xs), tuple(vs))
    outs, touts = _as_list(out), _as_list(tout)
    ref = _as_list(f(*xs))
    for k, (o, r, t) in enumerate(zip(outs, ref, touts)):
        np.testing.assert_array_equal(o.numpy(), r.numpy(), err_msg=f"{name}: jvp's primal output {k} differs")
        assert t.shape == o.shape and t.dtype == o.dtype, \
            f"{name}: tangent {k} is {t.dtype} {t.shape}, its output {o.dtype} {o.shape}"
    moved = lambda x, d, s: mg.Tensor(mg.backend.to_device(x.numpy() + s * d.numpy(), x.device))  # on the host
    shift = lambda s: [moved(x, v, s) for x, v in zip(xs, vs)]
    plus, minus = _as_list(f(*shift(eps))), _as_list(f(*shift(-eps)))
    for k, (t, p, m) in enumerate(zip(touts, plus, minus)):
        fd = (p.numpy() - m.numpy()) / (2 * eps)
        np.testing.assert_allclose(t.numpy(), fd, atol=atol, rtol=rtol,
                                   err_msg=f"{name}: jvp of output {k} differs from finite differences "
                                           f"(input shapes {[x.shape for x in xs]})")
    us = [mg.Tensor(mg.backend.to_device(rng.standard_normal(o.shape), o.device)) for o in outs]
    _, vjp_fn = mg.func.vjp(f, *xs)
    jtu = vjp_fn(us[0] if isinstance(out, mg.Tensor) else tuple(us))
    lhs = sum(float((u.numpy() * t.numpy()).sum()) for u, t in zip(us, touts))
    rhs = sum(float((g.numpy() * v.numpy()).sum()) for g, v in zip(jtu, vs))
    scale = sum(float(np.abs(u.numpy()).sum() * np.abs(t.numpy()).max(initial=0)) for u, t in zip(us, touts)) + 1
    assert abs(lhs - rhs) <= 1e-10 * scale, f"{name}: <u, J v> = {lhs!r} but <J^T u, v> = {rhs!r}"
    if second_order:
        cot = us[0] if isinstance(out, mg.Tensor) else tuple(us)
        pullback = lambda *ys: mg.func.vjp(f, *ys)[1](cot)
        _, tgrad = mg.func.jvp(pullback, tuple(xs), tuple(vs))
        plus, minus = pullback(*shift(eps)), pullback(*shift(-eps))
        for k, (t, p, m) in enumerate(zip(tgrad, plus, minus)):
            np.testing.assert_allclose(t.numpy(), (p.numpy() - m.numpy()) / (2 * eps), atol=atol, rtol=rtol,
                                       err_msg=f"{name}: forward over reverse (jvp of the vjp) for input {k} "
                                               f"differs from finite differences")
        push = lambda *ys: mg.func.jvp(f, ys, tuple(vs))[1]  # reverse over forward: x ↦ ⟨u, J(x) v⟩ pulled back
        pulled = mg.func.vjp(push, *xs)[1](cot)
        ws = [mg.Tensor(mg.backend.to_device(rng.standard_normal(x.shape), x.device)) for x in xs]
        at = lambda s: _as_list(push(*[moved(x, w, s) for x, w in zip(xs, ws)]))
        fd = sum(float((u.numpy() * (p.numpy() - m.numpy())).sum()) for u, p, m in zip(us, at(eps), at(-eps)))
        exact = sum(float((g.numpy() * w.numpy()).sum()) for g, w in zip(pulled, ws))
        assert abs(fd / (2 * eps) - exact) <= atol * 10 + rtol * abs(exact), \
            f"{name}: reverse over forward (vjp of the jvp) gives {exact!r}, finite differences {fd / (2 * eps)!r}"
        for k, (a, b) in enumerate(zip(tgrad, pulled)):  # both are ∇²⟨u, f⟩ v: two code paths, one answer
            a, b = a.numpy(), b.numpy()
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * (1 + np.abs(b).max(initial=0)),
                                       err_msg=f"{name}: forward over reverse and reverse over forward disagree "
                                               f"on input {k} (the second derivative is symmetric)")
    return True


@st.composite
def spec_inputs(draw, spec):
    """Hypothesis strategy for one list of input arrays of ``spec`` (its shapes, then its elements)."""
    shapes = draw(spec.shapes if spec.shapes is not None else _shapes().map(lambda s: (s,) * spec.n_inputs))
    elements = spec.elements if isinstance(spec.elements, list) else [spec.elements] * spec.n_inputs
    return [draw(arrays(shape=s, elements=e, unique=spec.unique)) for s, e in zip(shapes, elements)]




CHECKS = {"forward": check_forward, "grad": check_grad, "gradgrad": check_gradgrad, "jvp": check_jvp}


def run_spec(spec, check="grad", device="cpu"):
    """Run one property (``"forward"``, ``"grad"``, ``"gradgrad"``, ``"jvp"`` or a ``check(spec, arrays, device)``)
    of ``spec`` over hypothesis-drawn inputs, under the active hypothesis settings profile."""
    check = CHECKS[check] if isinstance(check, str) else check

    @given(spec_inputs(spec))
    def prop(xs):
        check(spec, xs, device)
    prop()


def spec_tests(specs, devices=("cpu",)):
    """Three pytest test functions ``(test_forward, test_grad, test_gradgrad)`` parametrized over ``specs``
    (ids are the spec names) and ``devices``; assign them to module-level names in a test module."""
    import pytest

    def make(kind, chosen):
        @pytest.mark.parametrize("device", list(devices))
        @pytest.mark.parametrize("spec", chosen, ids=[s.name for s in chosen])
        def test(spec, device):
            run_spec(spec, kind, device)
        test.__name__ = test.__qualname__ = f"test_{kind}"
        return test

    return (make("forward", list(specs)), make("grad", list(specs)),
            make("gradgrad", [s for s in specs if s.second_order]))
