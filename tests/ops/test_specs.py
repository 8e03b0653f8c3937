"""Tests generated from tests/op_specs.py: forward, gradient and second gradient of every primitive."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minigrad.testing import arrays, check_forward, check_grad, check_gradgrad, check_jvp
from op_specs import SPECS, SPEC_IDS


@st.composite
def inputs_for(draw, spec):
    shapes = draw(spec.shapes)
    elements = spec.elements if isinstance(spec.elements, list) else [spec.elements] * spec.n_inputs
    return [draw(arrays(shape=s, elements=e, unique=spec.unique)) for s, e in zip(shapes, elements)]


def _run(spec, check, device):
    @given(inputs_for(spec))
    def inner(xs):
        check(spec, xs, device)
    inner()


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_forward(spec, device):
    _run(spec, check_forward, device)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_grad(spec, device):
    _run(spec, check_grad, device)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.second_order], ids=[s.name for s in SPECS if s.second_order])
def test_gradgrad(spec, device):
    _run(spec, check_gradgrad, device)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_jvp(spec, device):
    """Forward mode: jvp vs finite differences, and the transpose identity <u, J v> = <J^T u, v> with vjp."""
    _run(spec, check_jvp, device)


PRIMITIVES = {"Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sqrt", "Abs", "Clip", "Maximum", "Minimum",
              "Where", "Sin", "Cos", "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Elu", "Erf", "Softplus", "Sum", "Max",
              "LogSumExp", "Norm2", "MatMul", "Linear", "Einsum", "Reshape", "Transpose", "BroadcastTo", "SumTo",
              "GetItem", "IndexAdd", "Concatenate", "Split", "Pad", "Softmax", "LogSoftmax"}


def test_every_primitive_function_is_driven_by_a_spec(monkeypatch):
    """A new op without a spec fails here (Cast and ToDevice are covered in tests/test_core.py)."""
    import minigrad as mg
    from minigrad.core import Function
    from minigrad.ops import arithmetic, elementwise, linalg, nn, reduction, shape
    defined = {k for m in (arithmetic, elementwise, reduction, shape, linalg, nn) for k, v in vars(m).items()
               if isinstance(v, type) and issubclass(v, Function) and v.__module__ == m.__name__}
    assert defined - {"Cast", "ToDevice"} == PRIMITIVES, "update PRIMITIVES and add an OpSpec for the new op"
    called, original = set(), Function.__call__

    def spy(self, *args):
        called.add(type(self).__name__)
        return original(self, *args)
    monkeypatch.setattr(Function, "__call__", spy)
    for spec in SPECS:
        @settings(max_examples=2, deadline=None)
        @given(inputs_for(spec))
        def once(xs):
            mg.gradgradcheck(spec.op, [mg.Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in xs])
        once()
    assert PRIMITIVES <= called, f"no spec exercises {sorted(PRIMITIVES - called)}"


def test_every_primitive_has_a_jvp_rule_that_a_spec_drives(monkeypatch):
    """Each primitive defines its own jvp beside its backward, and the jvp specs call every one of them."""
    import minigrad as mg
    from minigrad.core import Function
    from minigrad.ops import arithmetic, conv, elementwise, linalg, nn, pooling, reduction, shape
    mods = (arithmetic, elementwise, reduction, shape, linalg, nn, conv, pooling)
    classes = [v for m in mods for v in vars(m).values()
               if isinstance(v, type) and issubclass(v, Function) and v.__module__ == m.__name__]
    assert [c.__name__ for c in classes if c.jvp is Function.jvp] == []
    called, original = set(), Function.__call__

    def spy(self, *args):
        if mg.core._Config.forward_levels:
            called.add(type(self).__name__)
        return original(self, *args)
    monkeypatch.setattr(Function, "__call__", spy)
    for spec in SPECS:
        @settings(max_examples=2, deadline=None)
        @given(inputs_for(spec))
        def once(xs):
            check_jvp(spec, xs)
        once()
    assert PRIMITIVES <= called, f"no jvp spec exercises {sorted(PRIMITIVES - called)}"
