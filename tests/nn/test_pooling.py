"""Pooling: hypothesis gradchecks (first and second order) of max/avg/adaptive pooling, the gather/scatter
pair behind max pooling, PyTorch's tie rule, max pooling's indices and unpooling against PyTorch, and clear
errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.testing import torch_or_skip
from minigrad import nn
from minigrad.ops.pooling import AvgPool2d, AvgPool2dAdjoint, MaxPool2d, MaxPoolGather, MaxPoolScatter, _geometry


@st.composite
def pool_cases(draw):
    """(input shape, kernel, stride, padding, dilation, ceil_mode) of a valid small pooling."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    d = (draw(st.integers(1, 2)), 1)
    p = tuple(draw(st.integers(0, ki // 2 if di == 1 else 0)) for ki, di in zip(k, d))  # no all-padding window
    lo = [max(1, di * (ki - 1) + 1 - 2 * pi) for di, ki, pi in zip(d, k, p)]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(lo[0], lo[0] + 3)),
             draw(st.integers(lo[1], lo[1] + 3)))
    return shape, k, s, p, d, draw(st.booleans())


def _distinct(shape, seed):
    """Values at least 0.1 apart, so no window has a tie that finite differences could cross."""
    rng = np.random.default_rng(seed)
    return mg.tensor(rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1, dtype="float64",
                     requires_grad=True)


@given(pool_cases(), st.integers(0, 2 ** 16))
def test_max_pool2d_gradcheck_and_gradgradcheck(case, seed):
    shape, k, s, p, d, ceil = case
    x = _distinct(shape, seed)
    assert mg.gradcheck(lambda x: F.max_pool2d(x, k, s, p, d, ceil), [x])
    assert mg.gradgradcheck(lambda x: F.max_pool2d(x, k, s, p, d, ceil), [x])


@given(pool_cases(), st.booleans(), st.sampled_from([None, 3]), st.integers(0, 2 ** 16))
def test_avg_pool2d_gradcheck_and_gradgradcheck(case, include_pad, divisor, seed):
    shape, k, s, p, _, ceil = case
    x = _distinct(shape, seed)
    f = lambda x: F.avg_pool2d(x, k, s, p, ceil, include_pad, divisor)  # noqa: E731
    assert mg.gradcheck(f, [x])
    assert mg.gradgradcheck(f, [x])


@given(st.tuples(st.integers(1, 6), st.integers(1, 6)),
       st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 3, None])), st.integers(0, 2 ** 16))
def test_adaptive_avg_pool2d_gradcheck(hw, out, seed):
    x = _distinct((1, 2) + hw, seed)
    assert mg.gradcheck(lambda x: F.adaptive_avg_pool2d(x, out), [x])


@given(pool_cases(), st.integers(0, 2 ** 16))
def test_gather_and_scatter_functions_gradcheck(case, seed):
    """The pair of linear maps behind max pooling, checked on their own (each is the other's backward)."""
    shape, k, s, p, d, ceil = case
    x = _distinct(shape, seed)
    g, khw, out = _geometry("max_pool2d", x, k, s, p, d, ceil)
    pool = MaxPool2d(g, khw, out)
    y = pool(x)
    at = pool.positions_of(pool.saved_tensors[0].data)
    gy = mg.tensor(np.random.default_rng(seed).standard_normal(y.shape), dtype="float64", requires_grad=True)
    assert mg.gradcheck(lambda v: MaxPoolGather(at)(v), [x])
    assert mg.gradcheck(lambda v: MaxPoolScatter(at)(v), [gy])
    np.testing.assert_array_equal(MaxPoolGather(at)(x).numpy(), y.numpy())


@given(pool_cases(), st.integers(0, 2 ** 16))
def test_avg_pool_and_its_adjoint_functions_gradcheck(case, seed):
    """AvgPool2d and AvgPool2dAdjoint on their own: each is the other's backward, so both orders check."""
    shape, k, s, p, _, ceil = case
    x = _distinct(shape, seed)
    g, khw, out = _geometry("avg_pool2d", x, k, s, p, 1, ceil)
    args = (g, khw, out, shape[2:], float(khw[0] * khw[1]))
    gy = mg.tensor(np.random.default_rng(seed).standard_normal(shape[:2] + out), requires_grad=True)
    assert mg.gradcheck(lambda v: AvgPool2d(*args)(v), [x])
    assert mg.gradcheck(lambda v: AvgPool2dAdjoint(*args)(v), [gy])
    assert mg.gradgradcheck(lambda v: AvgPool2dAdjoint(*args)(v), [gy])


def test_1d_pools_gradcheck():
    x = _distinct((2, 2, 7), 0)
    assert mg.gradcheck(lambda x: F.max_pool1d(x, 3, 2, 1), [x])
    assert mg.gradcheck(lambda x: F.avg_pool1d(x, 3, 2, 1, count_include_pad=False), [x])
    assert mg.gradcheck(lambda x: F.adaptive_avg_pool1d(x, 3), [x])


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = mg.tensor(np.zeros((1, 1, 2, 2)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 0], [0, 0]])


def test_max_pool_without_a_backward_skips_the_argmax_but_not_the_max():
    x = _distinct((2, 3, 5, 6), 0)
    y = F.max_pool2d(x, 3, 2, 1)
    assert y.creator.saved_tensors[0] is not None
    with mg.no_grad():
        np.testing.assert_array_equal(F.max_pool2d(x, 3, 2, 1).numpy(), y.numpy())
    g, khw, out = _geometry("max_pool2d", x, 3, 2, 1, 1, False)
    pool = MaxPool2d(g, khw, out, positions=False)
    np.testing.assert_array_equal(pool(x.detach()).numpy(), y.numpy())
    assert pool.saved == ()  # nothing saved: no argmax was taken


@given(pool_cases(), st.integers(0, 2 ** 16))
def test_max_pool2d_indices_match_torch(case, seed):
    """Flat h·W + w positions in each input plane, int64; few distinct values, so ties follow PyTorch's rule."""
    torch = torch_or_skip()
    shape, k, s, p, d, ceil = case
    x = np.random.default_rng(seed).integers(0, 3, shape).astype(np.float64)
    y, idx = F.max_pool2d(mg.tensor(x), k, s, p, d, ceil, return_indices=True)
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, d, ceil, return_indices=True)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx.numpy(), it.numpy())
    np.testing.assert_array_equal(y.numpy(), yt.numpy())


def test_max_pool_indices_unbatched_1d_and_layers_match_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((3, 7, 9))
    for name in ("MaxPool2d", "MaxPool1d"):
        ours, theirs = (getattr(m, name)(3, 2, 1, return_indices=True) for m in (nn, torch.nn))
        (y, idx), (yt, it) = ours(mg.tensor(x)), theirs(torch.tensor(x))
        np.testing.assert_array_equal(idx.numpy(), it.numpy())
        np.testing.assert_array_equal(y.numpy(), yt.numpy())


@given(pool_cases(), st.integers(0, 2 ** 16))
def test_max_unpool2d_gradcheck_and_gradgradcheck(case, seed):
    """Unpooling at the indices of non-overlapping windows (each position named once) is linear in x."""
    shape, k, _, _, _, _ = case
    shape = shape[:2] + (max(shape[2], k[0]), max(shape[3], k[1]))
    idx = F.max_pool2d(_distinct(shape, seed), k, return_indices=True)[1]
    x = mg.tensor(np.random.default_rng(seed).standard_normal(idx.shape), requires_grad=True)
    f = lambda x: F.max_unpool2d(x, idx, k, output_size=shape)  # noqa: E731
    assert f(x).shape == shape
    assert mg.gradcheck(f, [x])
    assert mg.gradgradcheck(f, [x])


@pytest.mark.parametrize("shape,k,s,p,output_size", [((2, 3, 6, 8), 2, None, 0, None),
                                                     ((2, 2, 7, 6), 3, 1, 1, None),  # overlapping windows
                                                     ((3, 7, 7), 3, 2, 1, (7, 7)),
                                                     ((1, 2, 5, 5), (2, 3), (2, 1), 0, (1, 2, 5, 5))])
def test_max_unpool2d_matches_torch(shape, k, s, p, output_size):
    """Forward and the gradient of x equal PyTorch's, the indices coming from max pooling."""
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    pooled, idx = F.max_pool2d(mg.tensor(rng.standard_normal(shape)), k, s, p, return_indices=True)
    x = mg.tensor(pooled.numpy(), requires_grad=True)
    xt = torch.tensor(pooled.numpy(), requires_grad=True)
    y = nn.MaxUnpool2d(k, s, p)(x, idx, output_size)
    yt = torch.nn.MaxUnpool2d(k, s, p)(xt, torch.tensor(idx.numpy()), output_size)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    gy = rng.standard_normal(y.shape)
    (y * mg.tensor(gy)).sum().backward()
    (yt * torch.tensor(gy)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_max_pool_propagates_nan():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y = F.max_pool2d(mg.tensor(x), 2).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])


def test_overlapping_windows_add_their_gradients():
    x = mg.tensor(np.array([[[[0.0, 1.0, 0.5, 0.2]]]]), requires_grad=True)
    F.max_pool2d(x, (1, 2), 1).sum().backward()  # windows [0,1], [1,.5], [.5,.2]: x[1] wins twice
    np.testing.assert_array_equal(x.grad.numpy()[0, 0, 0], [0, 2, 1, 0])


def test_float32_in_float32_out():
    x = mg.tensor(np.random.default_rng(0).random((2, 3, 6, 6), dtype=np.float32), requires_grad=True)
    for y in (F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
              F.adaptive_avg_pool2d(x, (4, 5))):
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32


@pytest.mark.parametrize("call,match", [
    (lambda: F.max_pool2d(mg.zeros(2, 2, 2, 2, 2), 2), r"max_pool2d: input must be 4-D .* got shape \(2, 2, 2, 2, 2\)"),
    (lambda: F.max_pool2d(mg.zeros(1, 1, 4, 4), 2, padding=2), r"padding .* at most half"),
    (lambda: F.avg_pool2d(mg.zeros(1, 1, 2, 2), 3), r"smaller than the window"),
    (lambda: F.max_pool1d(mg.zeros(1, 1, 1, 4), 2), r"max_pool1d: input must be 3-D"),
    (lambda: F.adaptive_avg_pool2d(mg.zeros(1, 1, 4, 4), (1, 2, 3)), r"output_size"),
])
def test_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.max_unpool2d(mg.zeros(1, 1, 2, 2), mg.zeros(1, 1, 2, 3, dtype="int64"), 2), ValueError,
     r"indices must be integers of the input's shape \(1, 1, 2, 2\), got int64 of shape \(1, 1, 2, 3\)"),
    (lambda: F.max_unpool2d(mg.zeros(1, 1, 2, 2), mg.zeros(1, 1, 2, 2), 2), ValueError, r"got float32"),
    (lambda: F.max_unpool2d(mg.zeros(1, 1, 1, 2), mg.tensor([[[[0, 8]]]]), 2), IndexError,
     r"indices must lie in \[0, 8\) for output planes \(2, 4\), got values in \[0, 8\]"),
    (lambda: F.max_unpool2d(mg.zeros(1, 1, 2, 2), mg.zeros(1, 1, 2, 2, dtype="int64"), 2, output_size=(6, 4)),
     ValueError, r"output_size \(6, 4\) must end with a size strictly within stride \(2, 2\) of the default \(4, 4\)"),
])
def test_unpool_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
