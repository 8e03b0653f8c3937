"""Regression tests for misuse that used to be silently wrong: per-thread grad mode, in-place changes of saved
tensors, aliased gradients, wrapped axes, unchecked arguments, empty batches and edge-case numerics."""
import threading

import numpy as np
import pytest

import minigrad as mg
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
    with pytest.raises(RuntimeError, match="'a' of Mul.*version 1; expected version 0"):
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
    x = mg.randn(4, 3)
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
    with pytest.raises(IndexError, match=rf"axis|dim") as info:
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
    from models.capsule import squash, squash_composed
    for f in (squash, squash_composed):
        with pytest.raises(IndexError, match="squash"):
            f(_X, axis=2)
