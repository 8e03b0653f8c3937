"""Tests generated from minigrad/testing/op_specs.py through the public runner: forward, gradient and second
gradient of every primitive, plus proofs that the strict tolerances catch small errors in a backward."""
import numpy as np
import pytest
from hypothesis import Phase, given, settings

from minigrad.testing import available_devices, check_jvp, run_spec, spec_inputs, spec_tests
from minigrad.testing.op_specs import SPECS

test_forward, test_grad, test_gradgrad = spec_tests(SPECS, devices=available_devices())


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_jvp(spec, device):
    """Forward mode: jvp vs finite differences, <u, J v> = <J^T u, v> with vjp, forward over reverse = reverse
    over forward."""
    run_spec(spec, "jvp", device)


PRIMITIVES = {"Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sqrt", "Abs", "Clip", "Maximum", "Minimum",
              "Where", "Sin", "Cos", "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Elu", "Erf", "Softplus", "Sum", "Max",
              "LogSumExp", "Norm2", "MatMul", "Linear", "Einsum", "Reshape", "Transpose", "BroadcastTo", "SumTo",
              "GetItem", "IndexAdd", "Concatenate", "Split", "Pad", "Softmax", "LogSoftmax", "BinaryCrossEntropy"}


def test_every_primitive_function_is_driven_by_a_spec(monkeypatch):
    """A new op without a spec fails here (Cast and ToDevice are covered in tests/test_core.py)."""
    import minigrad as mg
    from minigrad.core import Function
    from minigrad.ops import arithmetic, elementwise, linalg, loss, reduction, shape
    defined = {k for m in (arithmetic, elementwise, reduction, shape, linalg, loss) for k, v in vars(m).items()
               if isinstance(v, type) and issubclass(v, Function) and v.__module__ == m.__name__}
    assert defined - {"Cast", "ToDevice"} == PRIMITIVES, "update PRIMITIVES and add an OpSpec for the new op"
    called, original = set(), Function.__call__

    def spy(self, *args):
        called.add(type(self).__name__)
        return original(self, *args)
    monkeypatch.setattr(Function, "__call__", spy)
    for spec in SPECS:
        @settings(max_examples=2, deadline=None)
        @given(spec_inputs(spec))
        def once(xs):
            mg.gradgradcheck(spec.op, [mg.Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in xs])
        once()
    assert PRIMITIVES <= called, f"no spec exercises {sorted(PRIMITIVES - called)}"


def test_every_primitive_has_a_jvp_rule_that_a_spec_drives(monkeypatch):
    """Each primitive defines its own jvp beside its backward, and the jvp specs call every one of them."""
    import minigrad as mg
    from minigrad.core import Function
    from minigrad.ops import arithmetic, conv, elementwise, linalg, loss, pooling, reduction, shape
    mods = (arithmetic, elementwise, reduction, shape, linalg, loss, conv, pooling)
    classes = [v for m in mods for v in vars(m).values()
               if isinstance(v, type) and issubclass(v, Function) and v.__module__ == m.__name__]
    assert [c.__name__ for c in classes if c.jvp is Function.jvp] == []
    called, original = set(), Function.__call__

    def spy(self, *args):
        if mg.core.forward_levels():
            called.add(type(self).__name__)
        return original(self, *args)
    monkeypatch.setattr(Function, "__call__", spy)
    for spec in SPECS:
        @settings(max_examples=2, deadline=None)
        @given(spec_inputs(spec))
        def once(xs):
            check_jvp(spec, xs)
        once()
    assert PRIMITIVES <= called, f"no jvp spec exercises {sorted(PRIMITIVES - called)}"


# --- the strict tolerances are proven to catch small errors ----------------------------------------------------

NO_SHRINK = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate], deadline=None, max_examples=12,
                     derandomize=True, database=None)


def _specs_using():
    """{primitive Function name: specs whose op calls it}, found by spying on Function.__call__."""
    import minigrad as mg
    from minigrad.core import Function
    using, original = {}, Function.__call__
    current = []

    def spy(self, *args):
        specs = using.setdefault(type(self).__name__, [])
        if current[0] not in specs:
            specs.append(current[0])
        return original(self, *args)
    Function.__call__ = spy
    try:
        for spec in SPECS:
            current[:] = [spec]
            @settings(max_examples=3, deadline=None, derandomize=True, database=None)
            @given(spec_inputs(spec))
            def once(xs):
                spec.op(*[mg.Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in xs])
            once()
    finally:
        Function.__call__ = original
    return using


_SPECS_USING = {}


def _fails_some_spec(specs, check=None):
    from minigrad.gradcheck import GradcheckError
    from minigrad.testing import check_grad
    check = check or check_grad
    for spec in specs:
        @NO_SHRINK
        @given(spec_inputs(spec))
        def prop(xs):
            check(spec, xs)
        try:
            prop()
        except GradcheckError:
            return spec.name
    return None


def _scaled(backward, factor):
    def wrong(self, *gys):
        gs = backward(self, *gys)
        if not isinstance(gs, (tuple, list)):
            return gs * factor
        return tuple(None if g is None else g * factor for g in gs)
    return wrong


ONLY_IN_BACKWARD = {"SumTo": "broadcast_to", "IndexAdd": "getitem_int_array"}  # reached by second derivatives


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_a_1e5_relative_error_in_a_backward_fails_its_spec(name, monkeypatch):
    """Every primitive's backward scaled by (1 + 1e-5) is caught by at least one of the specs that use it
    (for the two that only ever run inside another op's backward, by that op's second-gradient check)."""
    from minigrad.testing import check_gradgrad
    using = _SPECS_USING or _SPECS_USING.update(_specs_using()) or _SPECS_USING
    cls = next(v for m in _modules() for k, v in vars(m).items() if k == name)
    monkeypatch.setattr(cls, "backward", _scaled(cls.backward, 1 + 1e-5))
    if name in ONLY_IN_BACKWARD:
        caught = _fails_some_spec([s for s in SPECS if s.name == ONLY_IN_BACKWARD[name]], check_gradgrad)
    else:
        caught = _fails_some_spec(using[name])
    assert caught, f"{name}.backward × (1 + 1e-5) passes every spec that uses it"


def test_the_wrong_erf_constant_fails_the_gelu_spec(monkeypatch):
    """1.128 instead of 2/√π (a 3.4e-4 relative error) passed the old rtol=1e-3; it must not pass now."""
    from minigrad.ops import elementwise
    monkeypatch.setattr(elementwise.Erf, "backward",
                        lambda self, gy: gy * 1.128 * elementwise.exp(-(self.saved_tensors[0] * self.saved_tensors[0])))
    assert _fails_some_spec([s for s in SPECS if s.name == "gelu"])


def _modules():
    from minigrad.ops import arithmetic, elementwise, linalg, loss, reduction, shape
    return arithmetic, elementwise, reduction, shape, linalg, loss


def test_maximum_minimum_split_ties_evenly():
    """At a tie PyTorch gives each operand half of the gradient (torch.maximum/minimum); so does minigrad.
    Broadcast operands sum their halves."""
    import minigrad as mg
    a = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = mg.tensor([1.0, 0.0, 3.0], requires_grad=True)
    mg.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0.0, 0.5])
    a.grad = b.grad = None
    mg.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 1.0, 0.5])
    s = mg.tensor([2.0], requires_grad=True)
    v = mg.tensor([2.0, 2.0], requires_grad=True)
    mg.maximum(s, v).sum().backward()
    np.testing.assert_array_equal(s.grad.numpy(), [1.0])
    np.testing.assert_array_equal(v.grad.numpy(), [0.5, 0.5])
