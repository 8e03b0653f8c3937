"""Convolutions: hypothesis gradchecks of Conv2d, ConvTranspose2d and Conv2dGradW (every geometry knob),
second derivatives (they back gradient penalties), dtype, layout and clear errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.ops.conv import Conv2dGradW, Geometry


@st.composite
def conv_cases(draw, max_side=5):
    """(x shape, w shape, kwargs) of a valid small conv2d with any stride/padding/dilation/groups."""
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2))), draw(st.sampled_from([1, (1, 2)]))
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    padding = draw(st.tuples(st.integers(0, 1), st.integers(0, 1)))
    lo = [max(1, di * (k - 1) + 1 - 2 * p) for di, k, p in zip(d, (kh, kw), padding)]
    h, w = draw(st.integers(lo[0], max(lo[0], max_side))), draw(st.integers(lo[1], max(lo[1], max_side)))
    n = draw(st.integers(1, 2))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return (n, cin, h, w), (cout, cin // groups, kh, kw), kwargs


def _tensors(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [mg.tensor(rng.standard_normal(s), dtype="float64", requires_grad=True) for s in shapes]


@given(conv_cases(), st.integers(0, 2 ** 16))
def test_conv2d_gradcheck(case, seed):
    xs, ws, kw = case
    x, w, b = _tensors(seed, xs, ws, (ws[0],))
    assert mg.gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])


@given(conv_cases(max_side=4), st.integers(0, 2 ** 16))
def test_conv2d_gradgradcheck(case, seed):
    xs, ws, kw = case
    x, w = _tensors(seed, xs, ws)
    assert mg.gradgradcheck(lambda x, w: F.conv2d(x, w, **kw), [x, w])


@st.composite
def transpose_cases(draw):
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), 1)
    padding = tuple(draw(st.integers(0, (d * (ki - 1)) // 2)) for d, ki in zip(dilation, k))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    x = (draw(st.integers(1, 2)), cin, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    return x, (cin, cout // groups) + k, kwargs


@given(transpose_cases(), st.integers(0, 2 ** 16))
def test_conv_transpose2d_gradcheck_and_gradgradcheck(case, seed):
    xs, ws, kw = case
    x, w, b = _tensors(seed, xs, ws, (ws[1] * kw["groups"],))
    assert mg.gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), [x, w, b])
    assert mg.gradgradcheck(lambda x, w: F.conv_transpose2d(x, w, **kw), [x, w])


@given(conv_cases(max_side=4), st.integers(0, 2 ** 16))
def test_conv2d_weight_gradient_function_gradcheck(case, seed):
    """Conv2dGradW on its own (it is the weight gradient; its backward makes second derivatives)."""
    xs, ws, kw = case
    s, d = kw["stride"], kw["dilation"]
    g = Geometry(s, tuple((p, p) for p in kw["padding"]), (d, d) if isinstance(d, int) else d, kw["groups"])
    ys = (xs[0], ws[0]) + g.out_size(xs[2:], ws[2:])
    x, gy = _tensors(seed, xs, ys)
    assert mg.gradcheck(lambda x, gy: Conv2dGradW(g, ws[2:])(x, gy), [x, gy])


@given(st.integers(1, 2), st.sampled_from([0, 1, "same"]), st.integers(1, 2), st.integers(0, 2 ** 16))
def test_conv1d_gradcheck_and_gradgradcheck(groups, padding, dilation, seed):
    x, w, b = _tensors(seed, (2, 2 * groups, 5), (2, 2, 2), (2,))
    kw = dict(padding=padding, dilation=dilation, groups=groups)
    assert mg.gradcheck(lambda x, w, b: F.conv1d(x, w, b, **kw), [x, w, b])
    assert mg.gradgradcheck(lambda x, w: F.conv1d(x, w, **kw), [x, w])


@given(st.integers(0, 2 ** 16))
def test_linear_gradgradcheck(seed):
    x, w, b = _tensors(seed, (3, 4), (2, 4), (2,))
    assert mg.gradgradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])


def test_gradient_penalty_through_a_conv_net():
    """d/dθ ‖∂D/∂x‖², the WGAN-GP pattern, checked against finite differences in θ."""
    x0 = np.random.default_rng(0).standard_normal((2, 1, 5, 5))
    w1, w2 = _tensors(1, (3, 1, 3, 3), (1, 3, 3, 3))

    def penalty(w1, w2):
        with mg.enable_grad():  # gradcheck evaluates under no_grad; the inner gradient needs a graph
            x = mg.tensor(x0, dtype="float64", requires_grad=True)
            d = F.conv2d(F.tanh(F.conv2d(x, w1, padding=1)), w2, stride=2).sum()
            (g,) = mg.grad(d, x, create_graph=True)
            return (g * g).sum()
    assert mg.gradcheck(penalty, [w1, w2])


def test_float32_stays_float32_and_any_layout_works():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    xt = mg.tensor(x, requires_grad=True)
    y = F.conv2d(xt, mg.tensor(w), padding=1, stride=2)
    assert y.dtype == np.float32
    y.sum().backward()
    assert xt.grad.dtype == np.float32
    odd = mg.Tensor(np.ascontiguousarray(x.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1))  # same values
    np.testing.assert_allclose(F.conv2d(odd, mg.tensor(w), padding=1, stride=2).numpy(), y.numpy(), rtol=1e-6)


def test_unbatched_input():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    y = F.conv2d(mg.tensor(x), mg.tensor(w))
    np.testing.assert_allclose(y.numpy(), F.conv2d(mg.tensor(x[None]), mg.tensor(w)).numpy()[0])


@pytest.mark.parametrize("call,match", [
    (lambda: F.conv2d(mg.zeros(1, 3, 5, 5), mg.zeros(2, 2, 3, 3)), r"input has 3 channels.*\(1, 3, 5, 5\)"),
    (lambda: F.conv2d(mg.zeros(1, 1, 2, 2, 2), mg.zeros(2, 1, 3, 3)), r"input must be 4-D"),
    (lambda: F.conv2d(mg.zeros(1, 2, 5, 5), mg.zeros(2, 2, 3)), r"weight must be 4-D"),
    (lambda: F.conv2d(mg.zeros(1, 2, 2, 2), mg.zeros(2, 2, 3, 3)), r"smaller than the kernel"),
    (lambda: F.conv2d(mg.zeros(1, 2, 5, 5), mg.zeros(2, 2, 3, 3), padding="same", stride=2), r"stride 1"),
    (lambda: F.conv2d(mg.zeros(1, 2, 5, 5), mg.zeros(2, 2, 3, 3), bias=mg.zeros(3)), r"bias must have shape"),
    (lambda: F.conv2d(mg.zeros(1, 2, 5, 5), mg.zeros(2, 2, 3, 3, dtype="float64")), r"dtype"),
    (lambda: F.conv_transpose2d(mg.zeros(1, 2, 3, 3), mg.zeros(2, 1, 3, 3), stride=2, output_padding=2),
     r"output_padding"),
])
def test_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_frozen_weights_keep_no_columns_and_still_pass_the_input_gradient():
    x, w = _tensors(0, (2, 2, 5, 5), (3, 2, 3, 3))
    assert F.conv2d(x, w).creator.saved_tensors[2] is not None  # the weight's gradient needs the columns
    w.requires_grad = False
    assert F.conv2d(x, w).creator.saved_tensors[2] is None
    assert mg.gradcheck(lambda x: F.conv2d(x, w, padding=1), [x])
