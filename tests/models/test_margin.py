"""Margin losses: each hand-written Function agrees with its composed reference in value and gradient, passes
gradcheck away from its kinks, keeps float32, stays finite at cos θ = ±1 and rejects bad input clearly."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
from minigrad.testing import torch_or_skip
from minigrad.models import margin as M

SOFTMAX_LOSSES = {
    "normalized_softmax": (M.normalized_softmax_loss, M.normalized_softmax_loss_composed, {}),
    "am_softmax": (M.am_softmax_loss, M.am_softmax_loss_composed, {"m": 0.35}),
    "a_softmax": (M.a_softmax_loss, M.a_softmax_loss_composed, {"m": 4}),
    "a_softmax_m2": (M.a_softmax_loss, M.a_softmax_loss_composed, {"m": 2}),
    "arcface": (M.arcface_loss, M.arcface_loss_composed, {"m": 0.5}),
}


def _kinks(name, kw):
    """Target cosines where ψ is not differentiable (or is clamped), to keep finite differences honest."""
    if name.startswith("a_softmax"):
        m = kw["m"]
        thetas = [2 * math.pi * k / (m + j) for j in (-1, 1) for k in range(1, m + 1) if m + j > 0]
        return [math.cos(t) for t in thetas if 0 < t < math.pi]
    if name == "arcface":
        return [-math.cos(kw["m"])]
    return []


@st.composite
def problems(draw, max_b=4, max_c=5, max_d=4):
    b, c, d = draw(st.integers(1, max_b)), draw(st.integers(1, max_c)), draw(st.integers(2, max_d))
    el = st.floats(-2, 2, allow_nan=False, width=64)
    x = np.array(draw(st.lists(el, min_size=b * d, max_size=b * d))).reshape(b, d)
    w = np.array(draw(st.lists(el, min_size=c * d, max_size=c * d))).reshape(c, d)
    y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=b, max_size=b)), dtype=np.int64)
    s = draw(st.sampled_from([1.0, 4.0, 30.0]))
    return x, w, y, s


def _target_cos(x, w, y):
    xh = x / np.linalg.norm(x, axis=1, keepdims=True)
    wh = w / np.linalg.norm(w, axis=1, keepdims=True)
    return (xh[np.arange(len(y))] * wh[y]).sum(1)


def _t(a, grad=True):
    return mg.Tensor(np.array(a, dtype=np.float64), requires_grad=grad)


@pytest.mark.parametrize("name", list(SOFTMAX_LOSSES))
@given(problems())
def test_softmax_family_matches_composed_and_gradcheck(name, problem):
    op, ref, kw = SOFTMAX_LOSSES[name]
    x, w, y, s = problem
    assume(np.linalg.norm(x, axis=1).min() > 0.3 and np.linalg.norm(w, axis=1).min() > 0.3)
    c = _target_cos(x, w, y)
    assume(all(abs(ci - k) > 0.03 for ci in c for k in _kinks(name, kw)) and np.abs(c).max() < 0.98)
    xt, wt = _t(x), _t(w)
    out, expect = op(xt, wt, y, s=s, **kw), ref(xt, wt, y, s=s, **kw)
    np.testing.assert_allclose(out.numpy(), expect.numpy(), rtol=1e-10, atol=1e-10)
    v = np.random.default_rng(0).standard_normal(len(y))
    g_op = mg.grad(out, [xt, wt], grad_outputs=mg.Tensor(v))
    g_ref = mg.grad(expect, [xt, wt], grad_outputs=mg.Tensor(v))
    for a, b in zip(g_op, g_ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-8)
    assert mg.gradcheck(lambda a, b: op(a, b, y, s=s, **kw), [_t(x), _t(w)], atol=1e-5, rtol=1e-4)


@st.composite
def triplets(draw, max_b=4, max_d=4):
    b, d = draw(st.integers(1, max_b)), draw(st.integers(1, max_d))
    el = st.floats(-2, 2, allow_nan=False, width=64)
    a, p, n = (np.array(draw(st.lists(el, min_size=b * d, max_size=b * d))).reshape(b, d) for _ in range(3))
    return a, p, n, draw(st.sampled_from([0.2, 1.0, 2.5]))


@given(triplets())
def test_triplet_matches_composed_and_gradcheck(problem):
    a, p, n, margin = problem
    dap, dan = np.linalg.norm(a - p, axis=1), np.linalg.norm(a - n, axis=1)
    assume(min(dap.min(), dan.min()) > 0.1 and np.abs(dap - dan + margin).min() > 0.05)
    ts = [_t(a), _t(p), _t(n)]
    out, expect = M.triplet_loss(*ts, margin=margin), M.triplet_loss_composed(*ts, margin=margin)
    np.testing.assert_allclose(out.numpy(), expect.numpy(), rtol=1e-10, atol=1e-12)
    for g, h in zip(mg.grad(out.sum(), ts), mg.grad(expect.sum(), ts)):
        np.testing.assert_allclose(g.numpy(), h.numpy(), rtol=1e-8, atol=1e-10)
    assert mg.gradcheck(lambda *z: M.triplet_loss(*z, margin=margin), [_t(a), _t(p), _t(n)])


@given(triplets(), st.data())
def test_contrastive_matches_composed_and_gradcheck(problem, data):
    a, p, _, margin = problem
    same = np.array(data.draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a))))
    assume(np.linalg.norm(a - p, axis=1).min() > 0.1)
    ts = [_t(a), _t(p)]
    out, expect = M.contrastive_loss(*ts, same, margin=margin), M.contrastive_loss_composed(*ts, same, margin=margin)
    np.testing.assert_allclose(out.numpy(), expect.numpy(), rtol=1e-10, atol=1e-12)
    for g, h in zip(mg.grad(out.sum(), ts), mg.grad(expect.sum(), ts)):
        np.testing.assert_allclose(g.numpy(), h.numpy(), rtol=1e-8, atol=1e-10)
    assert mg.gradcheck(lambda u, v: M.contrastive_loss(u, v, same, margin=margin), [_t(a), _t(p)])


def test_contrastive_convention():
    x1 = mg.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    x2 = mg.tensor([[3.0, 4.0], [3.0, 4.0], [0.3, 0.4]])
    loss = M.contrastive_loss(x1, x2, [1, 0, 0], margin=1.0).numpy()
    np.testing.assert_allclose(loss, [12.5, 0.0, 0.125], rtol=1e-6)  # ½d², beyond the margin, ½(1 − d)²


def test_psi_values():
    """ψ at known angles: cos(θ+m) for ArcFace (and its continuous fallback), min(cos 4θ, cos θ) for A-Softmax."""
    for theta in [0.1, 0.7, 1.5, 2.5, 3.0]:
        c = np.array([math.cos(theta)])
        psi, _ = M.ArcFace(None, 1.0, 0.5, 1e-12).psi(np, c)
        want = math.cos(theta + 0.5) if theta < math.pi - 0.5 else math.cos(theta) - (1 - math.cos(0.5))
        assert abs(psi[0] - want) < 1e-9
        psi, _ = M.ASoftmax(None, 1.0, 4).psi(np, c)
        assert abs(psi[0] - min(math.cos(4 * theta), math.cos(theta))) < 1e-9


@pytest.mark.parametrize("name", list(SOFTMAX_LOSSES))
def test_float32_in_float32_out(name):
    op, _, kw = SOFTMAX_LOSSES[name]
    rng = np.random.default_rng(1)
    x = mg.tensor(rng.standard_normal((6, 5)).astype(np.float32), requires_grad=True)
    w = mg.tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    loss = op(x, w, mg.tensor([0, 1, 2, 3, 0, 1]), **kw)
    loss.sum().backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    a, p, n = (mg.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True) for _ in range(3))
    assert M.triplet_loss(a, p, n).dtype == np.float32
    assert M.contrastive_loss(a, p, [1, 0, 1]).dtype == np.float32


@pytest.mark.parametrize("name", list(SOFTMAX_LOSSES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_at_cos_plus_minus_one_and_zero_embedding(name, dtype):
    op, ref, kw = SOFTMAX_LOSSES[name]
    w = np.random.default_rng(2).standard_normal((3, 4)).astype(dtype)
    x = np.stack([w[0] * 2, -w[1], np.zeros(4, dtype)])  # cos = +1, cos = −1, a zero embedding
    xt, wt = mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)
    loss = op(xt, wt, [0, 1, 2], **kw)
    loss.sum().backward()
    assert np.isfinite(loss.numpy()).all()
    assert np.isfinite(xt.grad.numpy()).all() and np.isfinite(wt.grad.numpy()).all()
    np.testing.assert_allclose(loss.numpy(), ref(mg.tensor(x), mg.tensor(w), [0, 1, 2], **kw).numpy(), rtol=1e-5)


def test_margins_raise_the_loss_at_the_same_point():
    rng = np.random.default_rng(3)
    x, w, y = mg.tensor(rng.standard_normal((8, 4))), mg.tensor(rng.standard_normal((5, 4))), rng.integers(0, 5, 8)
    base = M.normalized_softmax_loss(x, w, y).numpy()
    assert (M.am_softmax_loss(x, w, y).numpy() > base).all()
    assert (M.arcface_loss(x, w, y).numpy() > base).all()
    assert (M.a_softmax_loss(x, w, y).numpy() >= base - 1e-12).all()


def test_torch_oracle_am_softmax_and_arcface():
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    x, w, y = rng.standard_normal((6, 5)), rng.standard_normal((4, 5)), rng.integers(0, 4, 6)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    cos = torch.nn.functional.normalize(tx) @ torch.nn.functional.normalize(tw).T
    onehot = torch.nn.functional.one_hot(torch.tensor(y), 4).bool()
    for fn, psi in [(M.am_softmax_loss, cos - 0.35), (M.arcface_loss, torch.cos(torch.acos(cos) + 0.5))]:
        tx.grad = tw.grad = None
        assert (cos[onehot] > -math.cos(0.5)).all()
        ref = torch.nn.functional.cross_entropy(30 * torch.where(onehot, psi, cos), torch.tensor(y), reduction="none")
        ref.sum().backward(retain_graph=True)
        xt, wt = _t(x), _t(w)
        out = fn(xt, wt, y)
        out.sum().backward()
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(wt.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_bad_inputs_raise_clear_errors():
    x, w = mg.randn(4, 3), mg.randn(5, 3)
    with pytest.raises(IndexError, match=r"outside \[0, 5\)"):
        M.am_softmax_loss(x, w, [0, 1, 5, 2])
    with pytest.raises(IndexError, match="-1"):
        M.arcface_loss(x, w, [0, 1, -1, 2])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        M.am_softmax_loss(x, w, [0, 1, 2])
    with pytest.raises(TypeError, match="integers"):
        M.normalized_softmax_loss(x, w, np.array([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="feature size"):
        M.am_softmax_loss(x, mg.randn(5, 2), [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        M.am_softmax_loss(mg.randn(4), w, [0, 1, 2, 3])
    with pytest.raises(TypeError, match="dtype"):
        M.am_softmax_loss(x, w.astype("float64"), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="positive"):
        M.am_softmax_loss(x, w, [0, 1, 2, 3], s=0.0)
    with pytest.raises(ValueError, match="positive integer"):
        M.a_softmax_loss(x, w, [0, 1, 2, 3], m=1.5)
    with pytest.raises(ValueError, match="margin m"):
        M.arcface_loss(x, w, [0, 1, 2, 3], m=4.0)
    with pytest.raises(ValueError, match="one shape"):
        M.triplet_loss(x, x, mg.randn(3, 3))
    with pytest.raises(IndexError, match="same"):
        M.contrastive_loss(x, x, [0, 1, 2, 1])
    with pytest.raises(ValueError, match="loss must be one of"):
        M.MarginHead(3, 5, loss="cosface")


def test_margin_head_learns_separable_classes():
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((4, 6)).astype(np.float32) * 3
    y = np.repeat(np.arange(4), 16)
    x = mg.tensor(centers[y] + rng.standard_normal((64, 6)).astype(np.float32))
    for kind in M.LOSSES:
        head = M.MarginHead(6, 4, loss=kind, s=10.0)
        first = None
        for _ in range(40):
            loss = head(x, y)
            first = loss.item() if first is None else first
            head.weight.grad = None
            loss.backward()
            head.weight.data -= 0.5 * head.weight.grad.data
        assert loss.item() < first, kind
        pred = (x.numpy() @ head.weight.numpy().T).argmax(1)
        assert (pred == y).mean() > 0.9, kind


# ---- data: the synthetic generator and the pair-corpus reader ----------------------------------------------
def test_synthetic_groups_are_many_distinct_and_repeatable():
    from minigrad.models.margin_data import synthetic_paraphrase_groups
    groups = synthetic_paraphrase_groups(seed=0)
    assert len(groups) >= 1000
    assert all(2 <= len(g) <= 8 and len(set(g)) == len(g) for g in groups)
    assert groups == synthetic_paraphrase_groups(seed=0)
    assert groups != synthetic_paraphrase_groups(seed=1)


def test_groups_from_pairs_union_find(tmp_path):
    from minigrad.models.margin_data import groups_from_pairs, split_groups
    path = tmp_path / "pairs.tsv"
    path.write_text("sentence1\tsentence2\tlabel\n"
                    "a\tb\t1\nb\tc\t1\nd\te\t1\na\td\t0\nf\tg\t0\nc\ta\t1\n", encoding="utf-8")
    groups = sorted(groups_from_pairs(path))
    assert groups == [["a", "b", "c"], ["d", "e"]]
    train, test = split_groups(groups, test_fraction=0.5, seed=0)
    assert len(train) == len(test) == 1 and sorted(train + test) == groups
    path.write_text("a\tb\t1\nc\td\n", encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        groups_from_pairs(path)


# ---- the examples, in their seconds-long quick mode ---------------------------------------------------------
def test_margin_sentences_quick(tmp_path):
    from examples import margin_sentences
    r = margin_sentences.run(quick=True, out_dir=str(tmp_path), losses=["softmax", "am"])
    assert set(r["losses"]) == {"char_bag_baseline", "softmax", "am"}
    assert 0.0 <= r["top1"] <= 1.0 and (tmp_path / "results.json").exists()


def test_margin_images_quick(tmp_path):
    pytest.importorskip("matplotlib")
    from examples import margin_images
    r = margin_images.run(quick=True, out_dir=str(tmp_path), losses=["softmax", "am"])
    assert r["dataset"] == "digits" and 0.0 <= r["mAP"] <= 1.0
    assert (tmp_path / "embedding_2d.png").stat().st_size > 0


def test_margin_sentences_reads_a_pairs_file(tmp_path):
    from examples import margin_sentences
    from minigrad.models.margin_data import synthetic_paraphrase_groups
    groups = synthetic_paraphrase_groups(seed=3)[:40]
    lines = [f"{g[i]}\t{g[i + 1]}\t1" for g in groups for i in range(len(g) - 1)]
    lines += [f"{a[0]}\t{b[0]}\t0" for a, b in zip(groups, groups[1:])]
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = margin_sentences.run(quick=True, out_dir=str(tmp_path), pairs=str(path), losses=["am"])
    assert r["train_groups"] + r["test_groups"] == 40 and "pairs file" in r["data"]


def test_boolean_labels_are_rejected_but_boolean_same_is_fine():
    x, w = mg.randn(2, 3), mg.randn(4, 3)
    with pytest.raises(TypeError, match="labels must be integers"):
        M.am_softmax_loss(x, w, np.array([True, False]))
    assert M.contrastive_loss(x, x, np.array([True, False])).shape == (2,)
