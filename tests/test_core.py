"""Autograd engine behaviour: graph lifetime, accumulation, grad modes, double backward, errors, dtypes."""
import gc
import time
import weakref

import numpy as np
import pytest

import minigrad as mg


def leaf(values, dtype="float64"):
    return mg.tensor(values, dtype=dtype, requires_grad=True)


def test_graph_is_freed_after_backward():
    x = leaf([1.0, 2.0])
    y = (x * 3.0).exp()
    f = weakref.ref(y.creator)
    loss = y.sum()
    loss.backward()
    del y, loss
    gc.collect()
    assert f() is None, "the graph should be released once nothing refers to it"


def test_outputs_are_weak_references():
    x = leaf([1.0])
    y = x * 2.0
    creator = y.creator
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None and creator.outputs[0]() is None


def test_second_backward_through_freed_graph_raises():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_retain_graph_allows_two_backwards_and_grads_accumulate():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * np.array([1.0, 2.0]))


def test_grad_accumulates_across_graphs_like_pytorch():
    x = leaf([3.0])
    (x * 2.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0 + 6.0])


def test_shared_subexpression_gets_summed_gradient():
    x = leaf([2.0])
    y = x * x
    z = y + y * y  # dz/dx = 2x + 4x^3
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0 + 32.0])


def test_no_grad_records_nothing_and_enable_grad_restores():
    x = leaf([1.0])
    with mg.no_grad():
        y = x * 2.0
        with mg.enable_grad():
            z = x * 2.0
    assert y.creator is None and not y.requires_grad
    assert z.creator is not None and z.requires_grad

    @mg.no_grad()
    def f(t):
        return t * 2.0
    assert f(x).creator is None


def test_create_graph_gives_higher_derivatives():
    x = leaf([0.7])
    y = mg.sin(x) * x
    (g,) = mg.grad(y.sum(), [x], create_graph=True)
    (h,) = mg.grad(g.sum(), [x], create_graph=True)
    (t,) = mg.grad(h.sum(), [x])
    v = 0.7
    np.testing.assert_allclose(g.numpy(), [np.cos(v) * v + np.sin(v)])
    np.testing.assert_allclose(h.numpy(), [-np.sin(v) * v + 2 * np.cos(v)])
    np.testing.assert_allclose(t.numpy(), [-np.cos(v) * v - 3 * np.sin(v)])


def test_backward_create_graph_then_backward_of_grad():
    x = leaf([1.5])
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6 * 1.5])


def test_grad_does_not_touch_dot_grad_and_allow_unused():
    x, y = leaf([1.0]), leaf([2.0])
    out = (x * 3.0).sum()
    with pytest.raises(RuntimeError, match="not used"):
        mg.grad(out, [x, y], retain_graph=True)
    gx, gy = mg.grad(out, [x, y], allow_unused=True)
    assert gy is None and x.grad is None
    np.testing.assert_allclose(gx.numpy(), [3.0])


def test_retain_grad_on_intermediate():
    x = leaf([1.0, 2.0])
    y = (x * 2.0).retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.numpy())


def test_long_chain_is_iterative_and_fast():
    x = leaf([1.0])
    y = x
    for _ in range(100_000):
        y = y * 1.0
    start = time.perf_counter()
    y.sum().backward()
    assert time.perf_counter() - start < 10
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_wide_fan_in_is_fast():
    x = leaf([1.0])
    parts = [x * float(i) for i in range(10_000)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    start = time.perf_counter()
    total.sum().backward()
    assert time.perf_counter() - start < 5
    np.testing.assert_allclose(x.grad.numpy(), [sum(range(10_000))])


def test_float32_is_preserved_with_python_scalars():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    assert x.dtype == np.float32
    y = (x * 1.0001 + 2 - 0.5) / 3.0 ** 1
    y = mg.exp(y) * 0.5 + mg.softmax(y, axis=0) - 1.5
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_python_scalar_constants_are_shared_read_only_and_exact():
    x = mg.tensor([1.0, -2.0], requires_grad=True)
    a, b = x * 0.25, x * 0.25
    c1, c2 = a.creator.saved_tensors[0], b.creator.saved_tensors[0]  # Mul keeps the constant for x's gradient
    assert c1 is c2 and c1.dtype == np.float32 and not c1.data.flags.writeable
    assert (x.astype("float64") * 0.25).creator.saved_tensors[0].dtype == np.float64  # one constant per dtype
    assert (mg.tensor([1, 2]) * 0.5).creator is None  # no graph without a grad-requiring input
    from minigrad.core import _scalar_tensor
    assert _scalar_tensor(0.5, mg.tensor([1, 2])).dtype == np.float32  # float on ints: the default float
    assert (mg.tensor([True]) + 1).dtype == np.int64
    assert np.signbit((mg.tensor([1.0]) * -0.0).numpy()).all()  # zeros are not cached: -0.0 keeps its sign
    nan = (mg.tensor([1.0]) * float("nan")).numpy()
    assert np.isnan(nan).all()
    for i in range(2000):  # the cache stays bounded however many distinct scalars pass through
        x * (i + 0.5)
    from minigrad.core import _constants
    assert len(_constants) <= 512


def test_int_and_bool_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        mg.tensor([1, 2], requires_grad=True)
    t = mg.tensor([True])
    with pytest.raises(TypeError):
        t.requires_grad = True


def test_shape_mismatch_error_names_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 3\)"):
        mg.matmul(mg.zeros(2, 3), mg.zeros(2, 3))
    with pytest.raises(ValueError, match="mse_loss"):
        mg.mse_loss(mg.zeros(3), mg.zeros(3, 1))


def test_backward_wrong_gradient_shape_from_user_function():
    class Bad(mg.Function):
        def forward(self, x):
            return x.sum()

        def backward(self, gy):
            return gy  # wrong: should be broadcast to the input's shape

    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"Bad.backward returned a gradient of shape \(\) for input 0"):
        Bad()(x).backward()


def test_cuda_request_without_gpu_is_clear():
    if mg.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="cuda"):
        mg.zeros(2, device="cuda")


def test_device_mixing_raises(monkeypatch):
    from minigrad import core

    class FakeDeviceArray(np.ndarray):
        pass

    a = mg.zeros(2)
    b = mg.Tensor(np.zeros(2).view(FakeDeviceArray))
    monkeypatch.setattr(mg.backend, "device_of", lambda x: "cuda:0" if isinstance(x, FakeDeviceArray) else "cpu")
    with pytest.raises(RuntimeError, match="different devices"):
        core._check_devices(mg.ops.arithmetic.Add(), [a.data, b.data])


def test_bad_device_name():
    with pytest.raises(ValueError, match="unknown device"):
        mg.zeros(1, device="tpu")


def test_user_function_as_documented():
    class Square(mg.Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x * x

        def backward(self, gy):
            (x,) = self.saved_tensors
            return 2 * x * gy

    x = leaf([3.0])
    y = Square()(x)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0])
    assert mg.gradgradcheck(lambda t: Square()(t), [leaf([0.3, -1.2])])


def test_backward_needs_grad_for_non_scalar():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2.0).backward()
    (x * 2.0).backward(mg.tensor([1.0, 1.0], dtype="float64"))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


# ---- subgradient conventions at kinks (documented in minigrad/ops/elementwise.py) ------------------------
def test_kink_conventions():
    x = leaf([0.0])
    mg.relu(x).backward()
    assert x.grad.item() == 0.0, "relu'(0) = 0"
    x.grad = None
    mg.abs(x).backward()
    assert x.grad.item() == 0.0, "abs'(0) = 0"
    x.grad = None
    mg.clip(x, 0.0, 1.0).backward()
    assert x.grad.item() == 1.0, "clip passes the gradient at its bounds"
    a, b = leaf([1.0]), leaf([1.0])
    mg.maximum(a, b).backward()
    assert a.grad.item() == 0.5 and b.grad.item() == 0.5, "ties of maximum share the gradient"
    m = leaf([2.0, 2.0, 1.0])
    mg.max(m).backward()
    np.testing.assert_allclose(m.grad.numpy(), [0.5, 0.5, 0.0])
    z = leaf([0.0, 0.0])
    mg.norm(z).backward()
    np.testing.assert_allclose(z.grad.numpy(), [0.0, 0.0])


# ---- numerical stability ----------------------------------------------------------------------------------
def test_extreme_logits_stay_finite():
    x = leaf([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype="float32")
    for f in (lambda t: mg.logsumexp(t, axis=1), lambda t: mg.softmax(t, axis=1),
              lambda t: mg.log_softmax(t, axis=1), lambda t: mg.cross_entropy(t, [1, 2]),
              lambda t: mg.binary_cross_entropy_with_logits(t, mg.ones_like(t)), mg.sigmoid, mg.softplus):
        x.grad = None
        y = f(x)
        assert np.isfinite(y.numpy()).all()
        y.sum().backward()
        assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(mg.cross_entropy(x, [1, 2], reduction="none").numpy(), [2e4, np.log(3)], rtol=1e-6,
                               atol=1e-3)  # float32 spacing at 1e4 is ~1e-3


def test_logsumexp_of_all_minus_inf_row():
    x = mg.tensor([[-np.inf, -np.inf], [0.0, 0.0]])
    np.testing.assert_allclose(mg.logsumexp(x, axis=1).numpy(), [-np.inf, np.log(2)])


# ---- losses follow PyTorch ---------------------------------------------------------------------------------
def test_cross_entropy_matches_torch_options():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4, 3))
    target = rng.integers(0, 4, (5, 3))
    target[0, 0] = -100
    w = rng.random(4)
    for kw in [dict(), dict(label_smoothing=0.2), dict(reduction="sum"), dict(reduction="none"), dict(weight=w)]:
        x = leaf(logits)
        y = mg.cross_entropy(x, target, **{k: v for k, v in kw.items()})
        tx = torch.tensor(logits, requires_grad=True)
        tkw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kw.items()}
        ty = torch.nn.functional.cross_entropy(tx, torch.tensor(target), **tkw)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        y.sum().backward()
        ty.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_cross_entropy_bad_target():
    with pytest.raises(IndexError, match="outside"):
        mg.cross_entropy(mg.zeros(2, 3), [0, 3])
    with pytest.raises(ValueError, match="shape"):
        mg.cross_entropy(mg.zeros(2, 3), [0, 1, 2])


def test_getitem_integer_array_scatter_add_backward():
    x = leaf([1.0, 2.0, 3.0])
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.0, 1.0])


def test_dtype_names_accepted():
    assert mg.zeros(2, dtype="float64").dtype == np.float64
    assert mg.zeros(2, dtype=np.float16).dtype == np.float16
    with pytest.raises(TypeError, match="dtype"):
        mg.zeros(2, dtype="no-such-type")


def test_manual_seed_repeats():
    mg.manual_seed(3)
    a = mg.randn(4).numpy()
    mg.manual_seed(3)
    b = mg.randn(4).numpy()
    np.testing.assert_array_equal(a, b)


def test_intermediates_not_read_by_backward_are_freed():
    x = leaf(np.ones(1000))
    y = mg.exp(x)          # saves its output: exp' = exp
    z = y * 2.0            # Mul by a constant reads no value of y
    w = z + 1.0            # Add reads no values at all
    ref_z = weakref.ref(z.data)
    del z
    gc.collect()
    assert ref_z() is None, "an intermediate that backward never reads should be freed with its tensor"
    (gx,) = mg.grad(w.sum(), [x], create_graph=True)
    np.testing.assert_allclose(gx.numpy(), 2 * np.e * np.ones(1000))
    (gxx,) = mg.grad(gx.sum(), [x])
    np.testing.assert_allclose(gxx.numpy(), 2 * np.e * np.ones(1000))


def test_dropped_output_is_rebuilt_for_backward_that_reads_it():
    x = leaf([0.5, 1.0])
    s = mg.sigmoid(x) + 0.0  # the sigmoid output itself is not held by anyone but its saved array
    gc.collect()
    s.sum().backward()
    sig = 1 / (1 + np.exp(-np.array([0.5, 1.0])))
    np.testing.assert_allclose(x.grad.numpy(), sig * (1 - sig))


def test_constant_times_intermediate_weight_batch_matmul():
    w = leaf(np.ones((3, 2)))
    h = w * 2.0                                # an intermediate, reached through an Edge by the matmul below
    y = mg.matmul(mg.ones(4, 5, 3, dtype="float64"), h)
    y.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.full((3, 2), 2 * 20.0))


def test_flatten_rejects_bad_ranges():
    x = mg.zeros(2, 3)
    for start, end in [(3, -1), (-5, -1), (1, 0)]:
        with pytest.raises(ValueError, match="flatten"):
            mg.flatten(x, start, end)
    assert mg.flatten(x).shape == (6,) and mg.flatten(x, 1).shape == (2, 3)


def test_cast_and_device_move_are_differentiable():
    from minigrad.ops.shape import Cast, ToDevice
    x = leaf([1.5, -2.0])
    y = Cast(np.dtype("float32"))(x)
    assert y.dtype == np.float32
    (ToDevice("cpu")(y) * 2.0).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
