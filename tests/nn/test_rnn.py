"""GRU / LSTM and their cells: PyTorch parity (values and every gradient), fused steps vs composed ones, masking,
gradchecks, init."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import torch_or_skip
from minigrad import nn
from minigrad.nn.rnn import gru_cell, gru_step, lstm_cell, lstm_step

MODES = {"GRU": (nn.GRU, 3), "LSTM": (nn.LSTM, 4)}


def _torch_twin(torch, mode, m, **kw):
    """A PyTorch module of the same configuration, with our weights copied in."""
    t = getattr(torch.nn, mode)(m.input_size, m.hidden_size, **kw)
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()})
    return t


def _h_of(mode, state):
    return state if mode == "GRU" else state[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(1, False, False), (2, True, True),
                                                               (2, False, True), (1, True, False)])
def test_matches_torch_values_and_all_gradients(mode, layers, bidirectional, batch_first):
    torch = torch_or_skip()
    kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    m = MODES[mode][0](3, 4, **kw)
    t = _torch_twin(torch, mode, m, **kw)
    rng = np.random.default_rng(1)
    B, T, D = 2, 5, 2 if bidirectional else 1
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3)).astype(np.float32)
    h0 = rng.standard_normal((layers * D, B, 4)).astype(np.float32)
    c0 = rng.standard_normal((layers * D, B, 4)).astype(np.float32)
    w_out = rng.standard_normal(x.shape[:2] + (4 * D,)).astype(np.float32)

    xm, hm, cm = (mg.tensor(a, requires_grad=True) for a in (x, h0, c0))
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    out, state = m(xm, hm if mode == "GRU" else (hm, cm))
    tout, tstate = t(xt, ht if mode == "GRU" else (ht, ct))
    assert out.dtype == np.float32 and out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(_h_of(mode, state).numpy(), _h_of(mode, tstate).detach().numpy(), atol=1e-5)
    if mode == "LSTM":
        np.testing.assert_allclose(state[1].numpy(), tstate[1].detach().numpy(), atol=1e-5)

    loss = (out * mg.tensor(w_out)).sum() + (_h_of(mode, state) ** 2).sum()
    tloss = (tout * torch.tensor(w_out)).sum() + (_h_of(mode, tstate) ** 2).sum()
    if mode == "LSTM":
        loss, tloss = loss + state[1].sum(), tloss + tstate[1].sum()
    loss.backward()
    tloss.backward()
    for a, b in [(xm, xt), (hm, ht)] + ([(cm, ct)] if mode == "LSTM" else []):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-4)
    tparams = dict(t.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-4, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_parameter_names_shapes_and_init_match_torch(mode):
    torch = torch_or_skip()
    cls, G = MODES[mode]
    m = cls(3, 5, num_layers=2, bidirectional=True)
    t = getattr(torch.nn, mode)(3, 5, num_layers=2, bidirectional=True)
    ours, theirs = m.state_dict(), t.state_dict()
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape)
        assert np.abs(ours[k].numpy()).max() <= 1 / math.sqrt(5)
    assert m.weight_ih_l1.shape == (G * 5, 10)
    assert list(cls(3, 5, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("mode", MODES)
def test_orthogonal_init_makes_each_gate_block_orthogonal(mode):
    cls, G = MODES[mode]
    m = cls(3, 4).to(dtype="float64")
    before = m.weight_hh_l0
    m.reset_parameters(init="orthogonal")
    assert m.weight_hh_l0 is before and before.dtype == np.float64
    w = m.weight_hh_l0.numpy()
    for blk in np.split(w, G):
        np.testing.assert_allclose(blk.T @ blk, np.eye(4), atol=1e-5)
    with pytest.raises(ValueError, match="init"):
        m.reset_parameters(init="xavier")


@pytest.mark.parametrize("mode", MODES)
def test_cells_match_torch(mode):
    torch = torch_or_skip()
    cell = {"GRU": nn.GRUCell, "LSTM": nn.LSTMCell}[mode](3, 4)
    tcell = getattr(torch.nn, mode + "Cell")(3, 4)
    tcell.load_state_dict({k: torch.tensor(v.numpy()) for k, v in cell.state_dict().items()})
    rng = np.random.default_rng(2)
    x, h, c = (rng.standard_normal(s).astype(np.float32) for s in [(2, 3), (2, 4), (2, 4)])
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    if mode == "GRU":
        out, tout = cell(xm, mg.tensor(h)), tcell(xt, torch.tensor(h))
        out_sum, tout_sum = out.sum(), tout.sum()
    else:
        out, tout = cell(xm, (mg.tensor(h), mg.tensor(c))), tcell(xt, (torch.tensor(h), torch.tensor(c)))
        out_sum, tout_sum = (out[0] * out[1]).sum(), (tout[0] * tout[1]).sum()
        out, tout = out[0], tout[0]
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), atol=1e-6)
    out_sum.backward()
    tout_sum.backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=1e-5)
    tparams = dict(tcell.named_parameters())
    for name, p in cell.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-5, err_msg=name)
    # unbatched input and the zero default state
    single = cell(mg.tensor(x[0]))
    batched = cell(mg.tensor(x[:1]))
    if mode == "LSTM":
        single, batched = single[0], batched[0]
    np.testing.assert_allclose(single.numpy(), batched.numpy()[0], atol=1e-7)


def _cell_inputs(G, B, I, H, seed):
    rng = np.random.default_rng(seed)
    shapes = [(B, I), (B, H), (B, H), (G * H, I), (G * H, H), (G * H,), (G * H,)]
    return [mg.Tensor(rng.standard_normal(s) * 0.7, requires_grad=True) for s in shapes]


@given(B=st.integers(1, 2), I=st.integers(1, 3), H=st.integers(1, 2), seed=st.integers(0, 10**6))
def test_gru_cell_gradcheck(B, I, H, seed):
    x, h, _, w_ih, w_hh, b_ih, b_hh = _cell_inputs(3, B, I, H, seed)
    assert mg.gradcheck(gru_cell, [x, h, w_ih, w_hh, b_ih, b_hh])


@given(B=st.integers(1, 2), I=st.integers(1, 3), H=st.integers(1, 2), seed=st.integers(0, 10**6))
def test_lstm_cell_gradcheck(B, I, H, seed):
    x, h, c, w_ih, w_hh, b_ih, b_hh = _cell_inputs(4, B, I, H, seed)

    def f(x, h, c, w_ih, w_hh, b_ih, b_hh):
        return lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)
    assert mg.gradcheck(f, [x, h, c, w_ih, w_hh, b_ih, b_hh])


def test_composed_cells_second_derivatives():
    x, h, c, w_ih, w_hh, b_ih, b_hh = _cell_inputs(4, 1, 2, 1, 0)
    assert mg.gradgradcheck(lambda x, h, c, w: lstm_cell(x, (h, c), w_ih.detach(), w, b_ih.detach(), fused=False),
                            [x, h, c, w_hh])
    x, h, _, w_ih, w_hh, b_ih, b_hh = _cell_inputs(3, 1, 2, 1, 1)
    assert mg.gradgradcheck(lambda x, h, w: gru_cell(x, h, w_ih.detach(), w, None, b_hh.detach(), fused=False),
                            [x, h, w_hh])


# ---- the fused steps --------------------------------------------------------------------------------------------
@given(mode=st.sampled_from(list(MODES)), B=st.integers(1, 3), H=st.integers(1, 3), bias=st.booleans(),
       seed=st.integers(0, 10**6))
def test_fused_step_gradcheck(mode, B, H, bias, seed):
    G = MODES[mode][1]
    rng = np.random.default_rng(seed)
    gi, h, c, w_hh_t = (mg.Tensor(rng.standard_normal(s), requires_grad=True)
                        for s in [(B, G * H), (B, H), (B, H), (H, G * H)])
    args = [gi, h, c, w_hh_t] if mode == "LSTM" else [gi, h, w_hh_t]
    if bias:
        args.append(mg.Tensor(rng.standard_normal(G * H), requires_grad=True))
    assert mg.gradcheck(lstm_step if mode == "LSTM" else gru_step, args)


def test_fused_step_refuses_bad_arguments():
    h, w = mg.zeros(2, 3), mg.zeros(3, 9)
    with pytest.raises(ValueError, match="gi must have shape"):
        gru_step(mg.zeros(2, 8), h, w)
    with pytest.raises(ValueError, match="w_hh_t must have shape"):
        lstm_step(mg.zeros(2, 12), h, h, w)
    with pytest.raises(TypeError, match="b_hh has dtype"):
        gru_step(mg.zeros(2, 9), h, w, mg.zeros(9, dtype="float64"))


def _run(m, x, hx, lengths, mask, seed):
    """Forward (dropout reseeded), a fixed weighted loss: the outputs and the gradient of every leaf as arrays."""
    mg.manual_seed(seed)
    out, state = m(x, hx, lengths=lengths, mask=mask)
    states = [state] if m.mode == "GRU" else list(state)
    loss = (out * mg.Tensor(np.random.default_rng(seed).standard_normal(out.shape))).sum()
    for s in states:
        loss = loss + (s * s).sum()
    leaves = [x] + (list(hx) if isinstance(hx, tuple) else [hx]) + list(m.parameters())
    grads = mg.grad(loss, leaves, allow_unused=True)
    return [out.numpy()] + [s.numpy() for s in states] + [0 if g is None else g.numpy() for g in grads]


@given(mode=st.sampled_from(list(MODES)), T=st.integers(1, 4), B=st.integers(1, 3), I=st.integers(1, 3),
       H=st.integers(1, 3), layers=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(),
       batch_first=st.booleans(), dropout=st.sampled_from([0.0, 0.4]),
       padding=st.sampled_from(["none", "lengths", "mask"]), seed=st.integers(0, 10**6))
def test_fused_layer_equals_composed(mode, T, B, I, H, layers, bidirectional, bias, batch_first, dropout, padding,
                                     seed):
    """Same outputs (bit for bit) and gradients of every input, state and parameter (float64, to rounding), with
    padding, bidirectional, several layers and dropout between them."""
    rng = np.random.default_rng(seed)
    LD = layers * (2 if bidirectional else 1)
    x = mg.Tensor(rng.standard_normal((B, T, I) if batch_first else (T, B, I)), requires_grad=True)
    h0, c0 = (mg.Tensor(rng.standard_normal((LD, B, H)), requires_grad=True) for _ in range(2))
    hx = h0 if mode == "GRU" else (h0, c0)
    lengths = rng.integers(0, T + 1, B) if padding == "lengths" else None
    mask = rng.random((B, T)) < 0.6 if padding == "mask" else None
    kw = dict(num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=batch_first, dropout=dropout)
    results = []
    for fused in (True, False):
        mg.manual_seed(1)
        m = MODES[mode][0](I, H, fused=fused, **kw).to(dtype="float64")
        results.append(_run(m, x, hx, lengths, mask, seed))
    np.testing.assert_array_equal(results[0][0], results[1][0])  # the same forward operations, in the same order
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", MODES)
def test_fused_cell_equals_composed(mode):
    cls = {"GRU": nn.GRUCell, "LSTM": nn.LSTMCell}[mode]
    rng = np.random.default_rng(6)
    x, h, c = (mg.Tensor(rng.standard_normal(s), requires_grad=True) for s in [(3, 2), (3, 4), (3, 4)])
    results = []
    for fused in (True, False):
        mg.manual_seed(0)
        cell = cls(2, 4, fused=fused).to(dtype="float64")
        out = cell(x, h) if mode == "GRU" else cell(x, (h, c))
        loss = (out * out).sum() if mode == "GRU" else (out[0] * out[1]).sum() + out[1].sum()
        leaves = [x, h, c] + list(cell.parameters())
        results.append([g.numpy() for g in mg.grad(loss, leaves, allow_unused=True) if g is not None])
    assert len(results[0]) == len(results[1]) >= 6
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", MODES)
def test_double_backward_needs_fused_false(mode):
    x = mg.Tensor(np.random.default_rng(7).standard_normal((3, 2, 2)), requires_grad=True)
    for fused in (True, False):
        mg.manual_seed(0)
        m = MODES[mode][0](2, 3, fused=fused).to(dtype="float64")
        loss = (m(x)[0] ** 2).sum()
        if fused:
            with pytest.raises(RuntimeError, match=f"{mode}Step .*no second derivative.*fused=False"):
                mg.grad(loss, [x], create_graph=True)
            continue
        (gx,) = mg.grad(loss, [x], create_graph=True)
        (gx * gx).sum().backward()
        assert m.weight_hh_l0.grad is not None and np.isfinite(x.grad.numpy()).all()
    assert mg.gradgradcheck(lambda x: m(x)[0], [x])


@pytest.mark.parametrize("mode", MODES)
def test_masked_layer_gradcheck(mode):
    m = MODES[mode][0](2, 2, bidirectional=True).to(dtype="float64")
    x = mg.Tensor(np.random.default_rng(3).standard_normal((3, 2, 2)), requires_grad=True)
    lengths = [3, 2]

    def f(x):
        out, state = m(x, lengths=lengths)
        return out, _h_of(mode, state)
    assert mg.gradcheck(f, [x])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [True, False])
def test_masking_equals_running_each_sequence_alone(mode, batch_first):
    cls = MODES[mode][0]
    m = cls(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    rng = np.random.default_rng(4)
    lengths = np.array([5, 2, 4, 1])
    B, T = len(lengths), 5
    x = rng.standard_normal((B, T, 3)).astype(np.float32)
    h0 = rng.standard_normal((4, B, 4)).astype(np.float32)
    xm = mg.tensor(x if batch_first else x.transpose(1, 0, 2), requires_grad=True)
    h0m = mg.tensor(h0, requires_grad=True)
    hx = h0m if mode == "GRU" else (h0m, mg.zeros(4, B, 4))
    mask = np.arange(T)[None] < lengths[:, None]
    out, state = m(xm, hx, mask=mask)
    out_l, state_l = m(xm, hx, lengths=lengths)
    np.testing.assert_array_equal(out.numpy(), out_l.numpy())
    out_bt = out.numpy() if batch_first else out.numpy().transpose(1, 0, 2)
    assert np.all(out_bt[~mask] == 0)
    hn = _h_of(mode, state)
    (out.sum() + hn.sum()).backward()
    gx = xm.grad.numpy() if batch_first else xm.grad.numpy().transpose(1, 0, 2)
    assert np.all(gx[~mask] == 0)
    for b, L in enumerate(lengths):
        xb = mg.tensor(x[b:b + 1, :L] if batch_first else x[b:b + 1, :L].transpose(1, 0, 2), requires_grad=True)
        h0b = mg.tensor(h0[:, b:b + 1], requires_grad=True)
        ob, sb = m(xb, h0b if mode == "GRU" else (h0b, mg.zeros(4, 1, 4)))
        ob_bt = ob.numpy() if batch_first else ob.numpy().transpose(1, 0, 2)
        np.testing.assert_allclose(out_bt[b, :L], ob_bt[0], atol=1e-6)
        np.testing.assert_allclose(hn.numpy()[:, b], _h_of(mode, sb).numpy()[:, 0], atol=1e-6)
        (ob.sum() + _h_of(mode, sb).sum()).backward()
        gb = xb.grad.numpy() if batch_first else xb.grad.numpy().transpose(1, 0, 2)
        np.testing.assert_allclose(gx[b, :L], gb[0], atol=1e-5)
        np.testing.assert_allclose(h0m.grad.numpy()[:, b], h0b.grad.numpy()[:, 0], atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_masking_matches_torch_packed_sequences(mode):
    torch = torch_or_skip()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    m = MODES[mode][0](3, 4, **kw)
    t = _torch_twin(torch, mode, m, **kw)
    x = np.random.default_rng(5).standard_normal((3, 6, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4])
    xm, xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, state = m(xm, lengths=mg.tensor(lengths))
    packed, tstate = t(pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False))
    tout = pad_packed_sequence(packed, batch_first=True, total_length=6)[0]
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(_h_of(mode, state).numpy(), _h_of(mode, tstate).detach().numpy(), atol=1e-5)
    (out.sum() + _h_of(mode, state).sum()).backward()
    (tout.sum() + _h_of(mode, tstate).sum()).backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=1e-5)
    tparams = dict(t.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-4, err_msg=name)


def test_zero_length_sequence_keeps_initial_state():
    m = nn.GRU(2, 3)
    x = mg.randn(4, 2, 2)
    h0 = mg.randn(1, 2, 3)
    out, hn = m(x, h0, lengths=[0, 4])
    np.testing.assert_array_equal(out.numpy()[:, 0], 0)
    np.testing.assert_array_equal(hn.numpy()[0, 0], h0.numpy()[0, 0])


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input_equals_batch_of_one(mode):
    m = MODES[mode][0](3, 4, num_layers=2, bidirectional=True)
    x = mg.randn(5, 3)
    out, state = m(x)
    out_b, state_b = m(mg.tensor(x.numpy()[:, None]))
    assert out.shape == (5, 8) and _h_of(mode, state).shape == (4, 4)
    np.testing.assert_allclose(out.numpy(), out_b.numpy()[:, 0], atol=1e-7)
    np.testing.assert_allclose(_h_of(mode, state).numpy(), _h_of(mode, state_b).numpy()[:, 0], atol=1e-7)


def test_dropout_between_layers_only_in_training():
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = mg.randn(4, 2, 3)
    train_out = m(x)[0].numpy()
    m.eval()
    eval_out = m(x)[0].numpy()
    m.dropout = 0.0
    np.testing.assert_array_equal(m(x)[0].numpy(), eval_out)
    assert not np.allclose(train_out, eval_out)


def test_float64_module_and_dtype_mismatch():
    m = nn.GRU(2, 3).to(dtype="float64")
    assert m(mg.randn(3, 1, 2, dtype="float64"))[0].dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        m(mg.randn(3, 1, 2))


def test_bad_arguments_are_named():
    m = nn.LSTM(3, 4, batch_first=True)
    with pytest.raises(ValueError, match="input must have shape"):
        m(mg.randn(2, 5, 2))
    with pytest.raises(ValueError, match="initial state"):
        m(mg.randn(2, 5, 3), (mg.zeros(1, 3, 4), mg.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="mask"):
        m(mg.randn(2, 5, 3), mask=np.ones((5, 2), bool))
    with pytest.raises(ValueError, match="lengths"):
        m(mg.randn(2, 5, 3), lengths=[6, 1])
    with pytest.raises(ValueError, match="not both"):
        m(mg.randn(2, 5, 3), mask=np.ones((2, 5), bool), lengths=[5, 5])
    with pytest.raises(ValueError, match="num_layers"):
        nn.GRU(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="hidden state"):
        nn.GRUCell(3, 4)(mg.randn(2, 3), mg.zeros(3, 4))


@pytest.mark.parametrize("mode", MODES)
def test_every_device_gives_the_cpu_result(mode, device):
    m = MODES[mode][0](3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = mg.randn(2, 5, 3)
    out_cpu, state_cpu = m(x, lengths=[5, 3])
    m.to(device)
    xd = x.to(device).detach().requires_grad_()
    out, state = m(xd, lengths=[5, 3])
    assert out.device == xd.device
    np.testing.assert_allclose(out.numpy(), out_cpu.numpy(), atol=1e-5)
    np.testing.assert_allclose(_h_of(mode, state).numpy(), _h_of(mode, state_cpu).numpy(), atol=1e-5)
    out.sum().backward()
    assert xd.grad.device == xd.device and m.weight_hh_l1_reverse.grad.device == xd.device
