"""Fused attention against its composed reference, gradient checks, masks, dropout; the Transformer modules
against PyTorch with copied weights; position embeddings."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad.testing import torch_or_skip
from minigrad.models.attention import attention_composed, scaled_dot_product_attention

sdpa = scaled_dot_product_attention


def _t(a, dtype="float64", grad=True):
    return mg.Tensor(np.array(a, dtype=dtype), requires_grad=grad)


@st.composite
def attention_case(draw, max_batch=2):
    """Small q, k, v (batch axes that broadcast), an optional random mask (fully masked rows included),
    causal, dropout."""
    bq, bk, bv = draw(st.lists(st.integers(1, max_batch), min_size=0, max_size=2).flatmap(
        lambda b: st.tuples(*[st.sampled_from([b, [1] * len(b), b[1:]]) for _ in range(3)])))
    Tq, Tk, d, dv = (draw(st.integers(1, 3)) for _ in range(4))
    el = st.floats(-2, 2, allow_nan=False, width=64)
    from hypothesis.extra.numpy import arrays
    q = draw(arrays(np.float64, tuple(bq) + (Tq, d), elements=el))
    k = draw(arrays(np.float64, tuple(bk) + (Tk, d), elements=el))
    v = draw(arrays(np.float64, tuple(bv) + (Tk, dv), elements=el))
    mask = None
    if draw(st.booleans()):
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        padding = tuple(batch[:1]) + (1,) * max(len(batch) - 1, 0) + (1, Tk)  # key padding, per batch row
        mshape = draw(st.sampled_from([(Tq, Tk), (Tk,), tuple(batch) + (Tq, Tk), padding]))
        mask = draw(arrays(np.bool_, mshape))
    causal = draw(st.booleans())
    dropout = draw(st.sampled_from([0.0, 0.0, 0.5]))
    return q, k, v, mask, causal, dropout


def _seeded(fn, dropout, **kw):
    """``fn`` reseeded before each call, so gradcheck's many calls all draw the same dropout mask."""
    def f(q, k, v):
        mg.manual_seed(7)
        return fn(q, k, v, dropout_p=dropout, **kw)
    return f


# ---- the fused Function --------------------------------------------------------------------------------------
@given(attention_case(), st.booleans())
def test_fused_gradcheck(case, recompute):
    q, k, v, mask, causal, dropout = case
    f = _seeded(sdpa, dropout, mask=mask, causal=causal, recompute=recompute)
    assert mg.gradcheck(f, [_t(q), _t(k), _t(v)], atol=1e-6, rtol=1e-4)


@given(attention_case())
def test_fused_matches_composed(case):
    q, k, v, mask, causal, dropout = case
    for dtype, tol in (("float64", 1e-12), ("float32", 2e-5)):
        outs = []
        for fn in (sdpa, attention_composed):
            xs = [_t(a, dtype) for a in (q, k, v)]
            y = _seeded(fn, dropout, mask=mask, causal=causal)(*xs)
            g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
            grads = mg.grad(y, xs, mg.Tensor(g))
            assert y.dtype == np.dtype(dtype) and all(gr.dtype == np.dtype(dtype) for gr in grads)
            outs.append([y.numpy()] + [gr.numpy() for gr in grads])
        for a, b in zip(*outs):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_composed_has_second_derivatives_and_fused_says_it_has_none():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((2, 3), (3, 3), (3, 2)))
    mask = np.array([[True, False, True], [True, True, False]])
    assert mg.gradgradcheck(lambda q, k, v: attention_composed(q, k, v, mask=mask), [_t(q), _t(k), _t(v)])
    xs = [_t(q), _t(k), _t(v)]
    y = sdpa(*xs).sum()
    with pytest.raises(RuntimeError, match="no second derivative"):
        mg.grad(y, xs, create_graph=True)


def test_fully_masked_rows_are_zero_with_zero_gradient():
    rng = np.random.default_rng(0)
    q, k, v = (_t(rng.standard_normal(s), "float32") for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3)))
    mask = np.ones((2, 3, 5), bool)
    mask[0, 1] = False
    mask[1, :] = False
    for fn in (sdpa, attention_composed):
        for recompute in ((False, True) if fn is sdpa else (False,)):
            kw = {"recompute": recompute} if fn is sdpa else {}
            y = fn(q, k, v, mask=mask, **kw)
            gq, gk, gv = mg.grad(y.sum(), [q, k, v])
            assert np.isfinite(y.numpy()).all() and np.isfinite(gq.numpy()).all()
            assert not y.numpy()[0, 1].any() and not y.numpy()[1].any()
            assert not gq.numpy()[0, 1].any() and not gq.numpy()[1].any()
            assert not gk.numpy()[1].any() and not gv.numpy()[1].any()


def test_causal_means_no_peeking():
    rng = np.random.default_rng(0)
    q, k, v = (_t(rng.standard_normal((5, 3))) for _ in range(3))
    y = sdpa(q, k, v, causal=True)
    v2 = v.numpy().copy()
    v2[3:] += 10.0  # changing future values must not change the first three outputs
    y2 = sdpa(q, k, mg.tensor(v2, dtype="float64"), causal=True)
    np.testing.assert_allclose(y.numpy()[:3], y2.numpy()[:3])
    np.testing.assert_allclose(y.numpy()[0], v.numpy()[0])  # the first query sees only the first key


def test_recompute_saves_only_the_log_sum_exp():
    q, k, v = (_t(np.random.default_rng(0).standard_normal((2, 6, 4))) for _ in range(3))
    *_, p, lse, _ = sdpa(q, k, v).creator.saved_tensors
    assert p.shape == (2, 6, 6) and lse is None
    *_, p, lse, _ = sdpa(q, k, v, recompute=True).creator.saved_tensors
    assert lse.shape == (2, 6, 1) and p is None


def test_dropout_mask_is_seeded_reused_and_unbiased():
    rng = np.random.default_rng(0)
    q, k, v = (_t(rng.standard_normal((4, 8, 8)), "float32") for _ in range(3))
    mg.manual_seed(3)
    a = sdpa(q, k, v, dropout_p=0.25)
    mg.manual_seed(3)
    b = sdpa(q, k, v, dropout_p=0.25)
    c = sdpa(q, k, v, dropout_p=0.25)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(b.numpy(), c.numpy())
    assert f"{a.creator.seed}".isdigit() and not hasattr(a.creator, "keep")  # stored as a seed, not a mask
    mg.manual_seed(3)
    _, w = attention_composed(q, k, v, dropout_p=0.25, return_weights=True)
    assert abs((w.numpy() == 0).mean() - 0.25) < 0.05
    mean = np.mean([sdpa(q, k, v, dropout_p=0.25).numpy() for _ in range(300)], axis=0)
    np.testing.assert_allclose(mean, sdpa(q, k, v).numpy(), atol=0.25)


def test_bad_arguments_are_named():
    q = mg.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="same d"):
        sdpa(q, mg.zeros(2, 3, 5), mg.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="same Tk"):
        sdpa(q, mg.zeros(2, 3, 4), mg.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="batch axes"):
        sdpa(q, mg.zeros(3, 3, 4), mg.zeros(3, 3, 4))
    with pytest.raises(TypeError, match="boolean"):
        sdpa(q, q, q, mask=mg.ones(3, 3))
    with pytest.raises(ValueError, match="does not broadcast"):
        sdpa(q, q, q, mask=np.ones((4, 3), bool))
    with pytest.raises(ValueError, match="dropout_p"):
        sdpa(q, q, q, dropout_p=1.0)
    with pytest.raises(ValueError, match="at least one key"):
        sdpa(q, mg.zeros(2, 0, 4), mg.zeros(2, 0, 4))


def test_matches_torch_sdpa():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2)))
    mask = rng.random((2, 1, 5, 6)) > 0.3
    mask[..., 0] = True  # PyTorch gives NaN on fully masked rows; keep every row attending somewhere
    for causal in (False, True):
        m = None if causal else mask
        xs = [_t(a) for a in (q, k, v)]
        y = sdpa(*xs, mask=m, causal=causal)
        ts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
        ty = torch.nn.functional.scaled_dot_product_attention(
            *ts, attn_mask=None if m is None else torch.tensor(m), is_causal=causal)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-12)
        g = rng.standard_normal(y.shape)
        ours = mg.grad(y, xs, mg.Tensor(g))
        theirs = torch.autograd.grad(ty, ts, torch.tensor(g))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


# ---- modules against PyTorch ------------------------------------------------------------------------------------
from minigrad.models.attention import (LearnedPositionEmbedding, MultiHeadAttention, SinusoidalPositionEmbedding,  # noqa: E402
                              TransformerEncoder, TransformerEncoderLayer, sinusoidal_position_encoding,
                              sinusoidal_shift_matrix)


def _copy_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.to(dtype="float64")


def _check_grads(ours, theirs, atol=1e-9):
    grads = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), atol=atol, err_msg=name)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_multihead_attention_matches_torch(batch_first, fused):
    torch = torch_or_skip()
    torch.manual_seed(0)
    B, L, S, E, h = 3, 4, 5, 8, 2
    theirs = torch.nn.MultiheadAttention(E, h, batch_first=batch_first).double()
    ours = MultiHeadAttention(E, h, batch_first=batch_first, fused=fused)
    _copy_from_torch(ours, theirs)
    assert set(dict(ours.named_parameters())) == set(dict(theirs.named_parameters()))
    rng = np.random.default_rng(0)
    shape = (lambda T: (B, T, E)) if batch_first else (lambda T: (T, B, E))
    q, kv = rng.standard_normal(shape(L)), rng.standard_normal(shape(S))
    padding = np.zeros((B, S), bool)
    padding[0, 3:] = padding[2, 0] = True
    attn_mask = np.triu(np.ones((L, S), bool), 2)  # True = may not attend, as in PyTorch
    for need_weights in (False, True):
        tq, tkv = torch.tensor(q, requires_grad=True), torch.tensor(kv, requires_grad=True)
        ty, tw = theirs(tq, tkv, tkv, key_padding_mask=torch.tensor(padding), attn_mask=torch.tensor(attn_mask),
                        need_weights=need_weights)
        mq, mkv = _t(q), _t(kv)
        y, w = ours(mq, mkv, mkv, key_padding_mask=padding, attn_mask=attn_mask, need_weights=need_weights)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-12)
        if need_weights:
            np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), atol=1e-12)
        g = rng.standard_normal(y.shape)
        theirs.zero_grad()
        ours.zero_grad()
        ty.backward(torch.tensor(g))
        y.backward(mg.Tensor(g))
        np.testing.assert_allclose(mq.grad.numpy(), tq.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(mkv.grad.numpy(), tkv.grad.numpy(), atol=1e-12)
        _check_grads(ours, theirs)


def test_multihead_attention_kdim_vdim_and_self_attention_match_torch():
    torch = torch_or_skip()
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(6, 3, kdim=4, vdim=5, batch_first=True).double()
    ours = MultiHeadAttention(6, 3, kdim=4, vdim=5, batch_first=True)
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 4, 4)), rng.standard_normal((2, 4, 5))
    y, _ = ours(_t(q), _t(k), _t(v), need_weights=False)
    ty, _ = theirs(*(torch.tensor(a) for a in (q, k, v)), need_weights=False)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-12)
    x = _t(q)  # self-attention takes the one-product path
    sa = MultiHeadAttention(6, 3, batch_first=True, bias=False)
    ref = torch.nn.MultiheadAttention(6, 3, batch_first=True, bias=False).double()
    _copy_from_torch(sa, ref)
    ty = ref(*(torch.tensor(q),) * 3, need_weights=False)[0]
    np.testing.assert_allclose(sa(x, x, x, need_weights=False)[0].numpy(), ty.detach().numpy(), atol=1e-12)


def test_multihead_attention_padding_only_rows_are_finite_and_errors_are_clear():
    mha = MultiHeadAttention(4, 2, batch_first=True)
    x = mg.randn(2, 3, 4, requires_grad=True)
    padding = np.array([[True] * 3, [False, False, True]])
    y, _ = mha(x, x, x, key_padding_mask=padding, need_weights=False)
    y.sum().backward()
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(5, 2)
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(x, x, x, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(TypeError, match="boolean"):
        mha(x, x, x, attn_mask=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="3-D"):
        mha(x[0], x[0], x[0])


def test_multihead_attention_dropout_fused_equals_composed():
    x = mg.randn(2, 5, 8, requires_grad=True)
    results = []
    for fused in (True, False):
        mg.manual_seed(0)
        mha = MultiHeadAttention(8, 2, dropout=0.3, batch_first=True, fused=fused)
        mg.manual_seed(5)
        y = mha(x, x, x, need_weights=False)[0]
        results.append((y.numpy(), mg.grad(y.sum(), [x])[0].numpy()))
        mha.eval()
        mg.manual_seed(5)
        assert not np.allclose(mha(x, x, x, need_weights=False)[0].numpy(), y.numpy())  # eval: no dropout
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_encoder_layer_matches_torch(norm_first, activation):
    torch = torch_or_skip()
    torch.manual_seed(0)
    E, h, B, T = 8, 2, 2, 5
    theirs = torch.nn.TransformerEncoderLayer(E, h, 16, dropout=0.0, activation=activation, batch_first=True,
                                              norm_first=norm_first).double()
    ours = TransformerEncoderLayer(E, h, 16, dropout=0.0, activation=activation, batch_first=True,
                                   norm_first=norm_first)
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, E))
    padding = np.zeros((B, T), bool)
    padding[1, 3:] = True
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx, src_key_padding_mask=torch.tensor(padding))
    mx = _t(x)
    y = ours(mx, src_key_padding_mask=padding)
    keep = ~padding  # PyTorch's fast path may zero padded positions; compare the real ones
    np.testing.assert_allclose(y.numpy()[keep], ty.detach().numpy()[keep], atol=1e-10)
    g = rng.standard_normal(y.shape) * keep[..., None]
    ty.backward(torch.tensor(g))
    y.backward(mg.Tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=1e-10)
    _check_grads(ours, theirs, atol=1e-10)


def test_encoder_stack_copies_layers_and_matches_torch():
    torch = torch_or_skip()
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).double()
    theirs = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(8).double(), enable_nested_tensor=False)
    from minigrad import nn
    ours = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2,
                              norm=nn.LayerNorm(8))
    assert ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight
    assert set(ours.state_dict()) == set(theirs.state_dict())
    _copy_from_torch(ours, theirs)
    x = np.random.default_rng(0).standard_normal((2, 6, 8))
    np.testing.assert_allclose(ours(_t(x), is_causal=True).numpy(),
                               theirs(torch.tensor(x), mask=torch.nn.Transformer.generate_square_subsequent_mask(
                                   6, dtype=torch.float64), is_causal=True).detach().numpy(), atol=1e-10)
    built = TransformerEncoder(lambda: TransformerEncoderLayer(8, 2, 16, batch_first=True), 3)
    assert len(built.layers) == 3 and built.layers[0].norm1.weight is not built.layers[2].norm1.weight


# ---- position embeddings -------------------------------------------------------------------------------------
def test_sinusoidal_formula_and_dtype():
    pe = sinusoidal_position_encoding(np.arange(7), 6)
    assert pe.shape == (7, 6) and pe.dtype == np.float32
    for p in range(7):
        for i in range(3):
            w = 10000.0 ** (-2 * i / 6)
            np.testing.assert_allclose(pe[p, 2 * i:2 * i + 2], [np.sin(p * w), np.cos(p * w)], atol=1e-6)
    x = mg.zeros(2, 7, 6)
    np.testing.assert_allclose(SinusoidalPositionEmbedding(6)(x, offset=3).numpy()[1],
                               sinusoidal_position_encoding(np.arange(3, 10), 6))
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionEmbedding(5)


@given(st.integers(0, 500), st.integers(-50, 50), st.sampled_from([2, 8, 64]))
def test_sinusoidal_shift_is_a_fixed_rotation(p, k, d):
    """PE(p+k) = M_k PE(p) with M_k independent of p: block rotations by k·ωᵢ (orthogonal)."""
    M = sinusoidal_shift_matrix(k, d)
    pe = lambda ps: sinusoidal_position_encoding(np.asarray(ps, dtype=np.float64), d, dtype="float64")
    np.testing.assert_allclose(pe(p + k), M @ pe(p), atol=1e-9)
    ps = np.arange(p, p + 20)
    np.testing.assert_allclose(pe(ps + k), pe(ps) @ M.T, atol=1e-9)
    np.testing.assert_allclose(M @ M.T, np.eye(d), atol=1e-12)


def test_learned_position_embedding():
    pe = LearnedPositionEmbedding(10, 4)
    x = mg.zeros(3, 5, 4)
    y = pe(x, offset=2)
    np.testing.assert_allclose(y.numpy()[0], pe.weight.numpy()[2:7])
    y.sum().backward()
    np.testing.assert_array_equal(pe.weight.grad.numpy()[:, 0], [0, 0, 3, 3, 3, 3, 3, 0, 0, 0])
    with pytest.raises(ValueError, match="max_len"):
        pe(mg.zeros(1, 9, 4), offset=2)
