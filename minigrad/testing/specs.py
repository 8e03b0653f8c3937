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


@st.composite
def spec_inputs(draw, spec):
    """Hypothesis strategy for one list of input arrays of ``spec`` (its shapes, then its elements)."""
    shapes = draw(spec.shapes if spec.shapes is not None else _shapes().map(lambda s: (s,) * spec.n_inputs))
    elements = spec.elements if isinstance(spec.elements, list) else [spec.elements] * spec.n_inputs
    return [draw(arrays(shape=s, elements=e, unique=spec.unique)) for s, e in zip(shapes, elements)]


CHECKS = {"forward": check_forward, "grad": check_grad, "gradgrad": check_gradgrad}


def run_spec(spec, check="grad", device="cpu"):
    """Run one property (``"forward"``, ``"grad"``, ``"gradgrad"`` or a ``check(spec, arrays, device)``)
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
