"""Regression tests for misuse that used to be silently wrong: per-thread grad mode, in-place changes of saved
tensors, aliased gradients, wrapped axes, unchecked arguments, empty batches and edge-case numerics."""
import threading

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn


# ---- grad mode and anomaly mode are per thread -----------------------------------------------------------------
def test_training_thread_unaffected_by_inference_thread_under_no_grad():
    errors, stop = [], threading.Event()
    model = nn.Linear(4, 2)
    opt = mg.optim.SGD(model.parameters(), lr=1e-3)
    x = mg.randn(8, 4)

    def infer():
        while not stop.is_set():
            with mg.no_grad():
                y = model(x)
                if y.requires_grad:
                    errors.append("graph recorded under no_grad")

    def train():
        try:
            for _ in range(300):
                opt.zero_grad()
                loss = model(x).sum()
                loss.backward()
                opt.step()
        except Exception as e:  # noqa: BLE001  (any failure counts)
            errors.append(repr(e))

    others = [threading.Thread(target=infer) for _ in range(2)]
    for t in others:
        t.start()
    trainer = threading.Thread(target=train)
    trainer.start()
    trainer.join()
    stop.set()
    for t in others:
        t.join()
    assert errors == []
    assert mg.is_grad_enabled()


def test_new_thread_starts_with_grad_enabled_and_no_anomaly_mode():
    seen = {}

    def probe():
        seen["grad"] = mg.is_grad_enabled()
        with np.errstate(invalid="ignore"):
            seen["log"] = float(mg.log(mg.tensor(-1.0)).item())  # NaN, not an anomaly error

    with mg.no_grad(), mg.detect_anomaly():
        t = threading.Thread(target=probe)
        t.start()
        t.join()
        assert not mg.is_grad_enabled()
    assert seen["grad"] is True and np.isnan(seen["log"])
    assert mg.is_grad_enabled()


def test_set_grad_enabled_call_and_context():
    with mg.set_grad_enabled(False):
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    mg.set_grad_enabled(False)
    try:
        assert not mg.is_grad_enabled()
    finally:
        mg.set_grad_enabled(True)
    assert mg.is_grad_enabled()

    @mg.set_grad_enabled(False)
    def infer():
        return mg.is_grad_enabled()
    assert mg.is_grad_enabled() and infer() is False and mg.is_grad_enabled()
    ctx = mg.no_grad()
    for _ in range(2):  # a context object can be entered again
        with ctx:
            assert not mg.is_grad_enabled()
        assert mg.is_grad_enabled()


# ---- version counter ---------------------------------------------------------------------------------------------
def test_optimizer_step_before_backward_raises():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    opt = mg.optim.SGD([w], lr=0.1)
    w.grad = mg.ones_like(w)
    loss = (w * w).sum()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*Mul"):
        loss.backward()


@pytest.mark.parametrize("change", [
    lambda t: t.add_(1.0), lambda t: t.mul_(2.0), lambda t: t.zero_(), lambda t: t.copy_(mg.ones(3)),
    lambda t: t.clamp_(0.0, 0.5), lambda t: t.__setitem__(0, 5.0), lambda t: t.sub_(1.0), lambda t: t.div_(2.0),
    lambda t: t.fill_(3.0)])
def test_inplace_api_change_of_saved_tensor_raises(change):
    a = mg.tensor([0.1, 0.2, 0.3])
    a.name = "a"
    w = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (a * w).sum()
    v = a._version
    change(a)
    assert a._version == v + 1
    with pytest.raises(RuntimeError, match="'a' of Mul.*changed after Mul used it and is now at version 1"):
        loss.backward()


def test_inplace_change_of_unsaved_input_is_fine():
    a = mg.tensor([0.1, 0.2])
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    loss = (a + w).sum()  # Add reads no input values
    a.add_(1.0)
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), [1, 1])


def test_inplace_change_of_saved_output_raises():
    x = mg.tensor([0.5, 1.0], requires_grad=True)
    y = mg.exp(x)  # Exp's backward reads its output
    with mg.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match="output 0 of Exp"):
        y.sum().backward()


def test_inplace_on_tensor_requiring_grad_needs_no_grad():
    w = mg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="add_.*no_grad"):
        w.add_(1.0)
    with mg.no_grad():
        w.add_(1.0)
    assert w.item() == 2.0


@pytest.mark.parametrize("how", ["ema", "module_load_state_dict", "init", "vector_to_parameters", "adam"])
def test_library_updates_bump_the_version(how):
    model = nn.Linear(3, 2)
    x = mg.randn(4, 3, requires_grad=True)  # x's gradient reads the weight, so Linear saves it (as PyTorch does)
    loss = model(x).sum()
    w = model.weight
    v = w._version
    if how == "ema":
        ema = mg.optim.EMA(model)
        ema.copy_to()
    elif how == "module_load_state_dict":
        model.load_state_dict(model.state_dict())
    elif how == "init":
        nn.init.normal_(w)
    elif how == "vector_to_parameters":
        nn.utils.vector_to_parameters(nn.utils.parameters_to_vector(model.parameters()), model.parameters())
    else:
        w.grad = mg.ones_like(w)
        mg.optim.Adam([w]).step()
    assert w._version > v
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ---- gradients never alias -----------------------------------------------------------------------------------------
def test_leaf_grads_do_not_alias_seed_or_each_other_and_are_writable():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0], requires_grad=True)
    G = mg.tensor([1.0, 1.0])
    (a + b).backward(G)
    assert a.grad is not b.grad and a.grad is not G and b.grad is not G
    assert not np.shares_memory(a.grad.data, b.grad.data) and not np.shares_memory(a.grad.data, G.data)
    a.grad.data *= 0.5
    np.testing.assert_allclose(b.grad.numpy(), [1, 1])
    np.testing.assert_allclose(G.numpy(), [1, 1])
    x = mg.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    x.sum().backward()  # a broadcast gradient: read-only view before
    x.grad.data *= 0.5
    np.testing.assert_allclose(x.grad.numpy(), 0.5)


# ---- every axis argument is validated ------------------------------------------------------------------------------
_X = mg.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
_AXIS_CALLS = {
    "sum": lambda a: mg.sum(_X, axis=a), "mean": lambda a: mg.mean(_X, axis=a),
    "max": lambda a: mg.max(_X, axis=a), "min": lambda a: mg.min(_X, axis=a),
    "var": lambda a: mg.var(_X, axis=a), "std": lambda a: mg.std(_X, axis=a),
    "logsumexp": lambda a: mg.logsumexp(_X, axis=a), "norm": lambda a: mg.norm(_X, axis=a),
    "argmax": lambda a: mg.argmax(_X, axis=a), "argmin": lambda a: mg.argmin(_X, axis=a),
    "softmax": lambda a: mg.softmax(_X, axis=a), "log_softmax": lambda a: mg.log_softmax(_X, axis=a),
    "concatenate": lambda a: mg.cat([_X, _X], axis=a), "split": lambda a: mg.split(_X, 1, axis=a),
    "squeeze": lambda a: mg.squeeze(mg.zeros(1, 1), axis=a), "transpose": lambda a: mg.transpose(_X, (a, 0)),
    "swapaxes": lambda a: mg.swapaxes(_X, a, 0), "flatten": lambda a: mg.flatten(_X, 0, a),
    "nn.Softmax": lambda a: nn.Softmax(dim=a)(_X), "nn.Unflatten": lambda a: nn.Unflatten(a, (1, 3))(_X),
}


@pytest.mark.parametrize("name", sorted(_AXIS_CALLS))
@pytest.mark.parametrize("axis", [2, 3, -3, 100])
def test_out_of_range_axis_raises_index_error(name, axis):
    with pytest.raises(IndexError, match=r"axis|dim") as info:
        _AXIS_CALLS[name](axis)
    assert str(axis) in str(info.value) and "2 dimension" in str(info.value)


@pytest.mark.parametrize("name", sorted(_AXIS_CALLS))
def test_negative_axes_keep_working(name):
    _AXIS_CALLS[name](-1)


@pytest.mark.parametrize("call", [lambda: mg.unsqueeze(_X, 3), lambda: mg.stack([_X, _X], axis=-4),
                                  lambda: mg.sum(_X, axis=(0, 0))])
def test_unsqueeze_stack_and_repeated_axes(call):
    with pytest.raises((IndexError, ValueError)):
        call()


def test_issue_axis_reproductions():
    x = _X
    with pytest.raises(IndexError, match="sum: axis=2"):
        mg.sum(x, axis=2)
    with pytest.raises(IndexError, match="softmax: axis=3"):
        mg.softmax(x, axis=3)
    with pytest.raises(IndexError, match="concatenate: axis=2"):
        mg.cat([x, x], axis=2)
    assert mg.unsqueeze(x, -1).shape == (4, 3, 1) and mg.stack([x, x], axis=-1).shape == (4, 3, 2)


def test_squash_axis_is_validated():
    from minigrad.models.capsule import squash, squash_composed
    for f in (squash, squash_composed):
        with pytest.raises(IndexError, match="squash"):
            f(_X, axis=2)


# ---- argument and shape errors, empty batches ------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [(dict(dilation=0), "dilation must be >= 1"),
                                       (dict(stride=0), "stride must be >= 1"),
                                       (dict(stride=-1), "stride must be >= 1"), (dict(padding=-1), "padding")])
def test_conv2d_rejects_bad_geometry(kw, match):
    x, w = mg.randn(1, 1, 5, 5), mg.randn(1, 1, 2, 2)
    with pytest.raises(ValueError, match="conv2d: " + match):
        F.conv2d(x, w, **kw)


@pytest.mark.parametrize("kw", [dict(stride=0), dict(dilation=0), dict(padding=-1)])
def test_conv1d_and_conv_transpose2d_reject_bad_geometry(kw):
    with pytest.raises(ValueError, match="conv1d"):
        F.conv1d(mg.randn(1, 1, 5), mg.randn(1, 1, 2), **kw)
    with pytest.raises(ValueError, match="conv_transpose2d"):
        F.conv_transpose2d(mg.randn(1, 1, 3, 3), mg.randn(1, 1, 2, 2), **kw)


def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient():
    x = mg.randn(2, 3, requires_grad=True)
    loss = mg.cross_entropy(x, mg.tensor([-100, -100]))
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)
    w = mg.tensor([0.0, 1.0, 1.0])
    assert np.isnan(mg.cross_entropy(mg.randn(2, 3), mg.tensor([0, 0]), weight=w).item())


def test_cross_entropy_empty_batch():
    x = mg.zeros(0, 3, requires_grad=True)
    t = mg.tensor(np.zeros(0, np.int64))
    loss = mg.cross_entropy(x, t)
    assert np.isnan(loss.item())
    loss.backward()
    assert x.grad.shape == (0, 3)
    assert mg.cross_entropy(x, t, reduction="sum").item() == 0
    assert mg.cross_entropy(x, t, reduction="none").shape == (0,)
    assert np.isnan(mg.cross_entropy(x, mg.zeros(0, 3)).item())  # probability targets


def test_crf_empty_batch():
    from minigrad.models.crf import crf_marginals, crf_nll, crf_nll_composed, viterbi_decode
    h = mg.zeros(0, 4, 3, requires_grad=True)
    A = mg.randn(3, 3, requires_grad=True)
    tags = np.zeros((0, 4), np.int64)
    for f in (crf_nll, crf_nll_composed):
        nll = f(h, tags, A)
        assert nll.shape == (0,)
        nll.sum().backward()
        assert h.grad.shape == (0, 4, 3) and not A.grad.numpy().any()
        h.grad = A.grad = None
    assert crf_marginals(h, A).shape == (0, 4, 3)
    paths, scores = viterbi_decode(h, A)
    assert paths.shape == (0, 4) and scores.shape == (0,)


def test_batched_matmul_with_mismatched_batch_shapes():
    with pytest.raises(ValueError, match=r"matmul: batch shapes \(2,\) and \(3,\)"):
        mg.randn(2, 3, 4) @ mg.randn(3, 4, 5)
    assert (mg.randn(2, 3, 4) @ mg.randn(1, 4, 5)).shape == (2, 3, 5)


@pytest.mark.parametrize("data", [["a", "b"], np.array(["x"]), [object()], [None]])
def test_tensor_rejects_non_numeric_data(data):
    with pytest.raises(TypeError, match="tensor: data must be numbers"):
        mg.tensor(data)


@pytest.mark.parametrize("opt_cls, key", [(mg.optim.Adam, "exp_avg"), (mg.optim.Adam, "exp_avg_sq"),
                                          (mg.optim.SGD, "momentum_buffer"), (mg.optim.RMSprop, "square_avg")])
def test_optimizer_load_state_dict_checks_state_shapes(opt_cls, key):
    w = mg.randn(3, 2, requires_grad=True)
    opt = opt_cls([w], lr=0.1, **({"momentum": 0.9} if opt_cls is mg.optim.SGD else {}))
    w.grad = mg.ones_like(w)
    opt.step()
    sd = opt.state_dict()
    good = sd["state"][0][key].copy()
    sd["state"][0][key] = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=rf"state '{key}' of param 0 has shape \(2, 3\).*\(3, 2\)"):
        opt.load_state_dict(sd)
    np.testing.assert_array_equal(opt.state[w][key], good)  # untouched


# ---- numerics -----------------------------------------------------------------------------------------------------
def test_binary_cross_entropy_clamps_log_like_pytorch():
    assert F.binary_cross_entropy(mg.tensor([1.0, 0.5]), mg.tensor([1.0, 1.0])).item() == pytest.approx(0.3465736)
    p = mg.tensor([1.0, 0.0, 0.5], requires_grad=True)
    loss = F.binary_cross_entropy(p, mg.tensor([0.0, 1.0, 1.0]))
    assert loss.item() == pytest.approx((100 + 100 + np.log(2)) / 3, rel=1e-6)  # PyTorch: 66.8977
    loss.backward()
    np.testing.assert_allclose(p.grad.numpy(), [1e12 / 3, -1e12 / 3, -2 / 3], rtol=1e-6)


@pytest.mark.parametrize("bad", [[1.5], [-0.1], [float("nan")]])
def test_binary_cross_entropy_rejects_inputs_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=r"binary_cross_entropy: every element of input must lie in \[0, 1\]"):
        F.binary_cross_entropy(mg.tensor(bad), mg.tensor([1.0]))


_INF, _NAN = float("inf"), float("nan")


@pytest.mark.parametrize("row, softmax", [
    ([_INF, 1, 0], [_NAN] * 3), ([_NAN, 1, 0], [_NAN] * 3), ([_INF, _INF, 0], [_NAN] * 3),
    ([-_INF, -_INF], [_NAN] * 2), ([-_INF, 1, 0], [0.0, 0.7310586, 0.2689414])])
def test_softmax_propagates_inf_and_nan_like_pytorch(row, softmax):
    x = mg.tensor(row)
    np.testing.assert_allclose(mg.softmax(x).numpy(), softmax, rtol=1e-6)
    with np.errstate(divide="ignore"):
        expect = np.log(np.array(softmax, np.float32)) if not np.isnan(softmax).any() else softmax
        np.testing.assert_allclose(mg.log_softmax(x).numpy(), expect, rtol=1e-6)


def test_max_and_min_route_gradient_to_nan():
    for f in (mg.max, mg.min):
        x = mg.tensor([1.0, _NAN, 3.0], requires_grad=True)
        f(x).backward()
        np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 0])
        x = mg.tensor([[1.0, _NAN, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
        f(x, axis=1).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [0, 0, 1] if f is mg.max else [1, 0, 0]])


def test_reliability_script_quick_run_finds_no_problem(capsys):
    """The sampled run of scripts/reliability.py: misuse table, threads, hostile files, fuzz and two kills."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "scripts" / "reliability.py"
    spec = importlib.util.spec_from_file_location("reliability_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0, capsys.readouterr().err
    assert "| silent-wrong | 0 |" in capsys.readouterr().out


def test_retained_grads_do_not_alias_the_seed_or_leaf_grads():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0], requires_grad=True)
    y = (a + b).retain_grad()
    G = mg.tensor([1.0, 1.0])
    y.backward(G)
    arrays = [G.data, y.grad.data, a.grad.data, b.grad.data]
    assert not any(np.shares_memory(p, q) for i, p in enumerate(arrays) for q in arrays[i + 1:])
    y2, z = mg.split(mg.stack([a, b]), 2)  # a multi-output op with a retained output
    y2.retain_grad()
    (y2.sum() + z.sum()).backward()
    y2.grad.data *= 2.0


def test_edge_numerics_match_the_pytorch_oracle():
    torch = pytest.importorskip("torch")
    rows = [[_INF, 1.0, 0.0], [_NAN, 1.0, 0.0], [-_INF, 1.0, 0.0], [-_INF, -_INF, -_INF], [1.0, _INF, _INF]]
    x = np.array(rows, np.float32)
    for ours, theirs in [(mg.softmax, torch.softmax), (mg.log_softmax, torch.log_softmax)]:
        np.testing.assert_allclose(ours(mg.tensor(x), axis=1).numpy(), theirs(torch.tensor(x), 1).numpy(), rtol=1e-6)
    p = np.array([1.0, 0.0, 0.5, 0.0, 1.0, 1e-30], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.5], np.float32)
    mp, tp = mg.tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    loss, ref = F.binary_cross_entropy(mp, mg.tensor(t)), torch.nn.functional.binary_cross_entropy(tp, torch.tensor(t))
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-6)
    np.testing.assert_allclose(mp.grad.numpy(), tp.grad.numpy(), rtol=1e-5)
    v = np.array([[1.0, _NAN, 3.0, _NAN], [4.0, 5.0, 6.0, 2.0]], np.float32)
    for ours, theirs in [(mg.max, torch.max), (mg.min, torch.min)]:
        a = mg.tensor(v, requires_grad=True)
        ours(a, axis=1).sum().backward()
        for i, row in enumerate(v):  # torch.max(row): the gradient shared among the NaNs (or tied extremes)
            b = torch.tensor(row, requires_grad=True)
            theirs(b).backward()
            np.testing.assert_allclose(a.grad.numpy()[i], b.grad.numpy())
