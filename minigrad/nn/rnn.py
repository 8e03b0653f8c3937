"""Recurrent layers: GRU and LSTM and their cells, with PyTorch's parameter names, shapes and gate order.

The input projection ``x W_ihᵀ + b_ih`` of all steps is one matmul before the time loop; only ``h W_hhᵀ`` stays
inside it. Each step is then one fused Function (``GRUStep``, ``LSTMStep``: forward and analytic backward on raw
arrays, the default) or, with ``fused=False``, composed from differentiable primitives (matmul, split, sigmoid,
tanh), which is slower but has gradients of any order. Padded steps (``mask`` or ``lengths``) keep the state as
it was and output zeros, so the reverse direction of each sequence starts at its own last valid step.
Equations and the fused backward: docs/derivations/rnn.md.
"""
import math

from minigrad import backend
from minigrad import functional as F
from minigrad.core import Function, Tensor, as_tensor
from minigrad.nn import init as nn_init
from minigrad.nn.module import Module, Parameter
from minigrad.ops import concatenate, matmul, reshape, sigmoid, split, stack, tanh, transpose, where


# ---- one step, on a precomputed input projection gi = x W_ihᵀ + b_ih -------------------------------------------
def _sigmoid_(a):
    """σ(a) in place, as ``minigrad.sigmoid`` computes it: (tanh(a/2) + 1)/2, stable for any |a|."""
    a *= 0.5
    backend.get_array_module(a).tanh(a, out=a)
    a += 1
    a *= 0.5


class GRUStep(Function):
    """h' of one GRU step from gi, h, W_hhᵀ (and b_hh): r, z = σ(gi_rz + h̃_rz), n = tanh(gi_n + r ⊙ h̃_n),
    h' = n + z ⊙ (h − n) with h̃ = h W_hhᵀ + b_hh.

    Backward, with G = ∂L/∂h' and ∂ā the gradients of the gates' pre-activations:
        ∂n̄ = G(1 − z)(1 − n²),   ∂z̄ = G(h − n) z(1 − z),   ∂r̄ = ∂n̄ ⊙ h̃_n ⊙ r(1 − r),
        ∂gi = [∂r̄, ∂z̄, ∂n̄],   ∂h̃ = [∂r̄, ∂z̄, r ⊙ ∂n̄],   ∂h = G z + ∂h̃ W_hh,   ∂W_hhᵀ = hᵀ ∂h̃,   ∂b_hh = Σ_B ∂h̃.
    Saved: r, z, n and h̃_n. The backward works on raw arrays: ``fused=False`` for higher derivatives.
    """

    differentiable_backward = False

    def forward(self, gi, h, w_hh_t, b_hh=None):
        xp, H = backend.get_array_module(gi), h.shape[-1]
        gh = xp.matmul(h, w_hh_t)
        if b_hh is not None:
            gh += b_hh
        rz = gi[:, :2 * H] + gh[:, :2 * H]
        _sigmoid_(rz)
        n = rz[:, :H] * gh[:, 2 * H:]
        n += gi[:, 2 * H:]
        xp.tanh(n, out=n)
        self.save_for_backward(h, w_hh_t, rz, n, gh[:, 2 * H:])
        return n + rz[:, H:] * (h - n)

    def backward(self, gy):
        g, (h, w_hh_t, rz, n, gh_n) = gy.data, (t.data for t in self.saved_tensors)
        xp, H = backend.get_array_module(g), h.shape[-1]
        dn = g * (1 - rz[:, H:]) * (1 - n * n)
        drz = xp.concatenate([dn * gh_n, g * (h - n)], axis=1)
        drz *= rz * (1 - rz)
        dgh = xp.concatenate([drz, dn * rz[:, :H]], axis=1)
        need = self.needs_input_grad
        grads = [xp.concatenate([drz, dn], axis=1) if need[0] else None,
                 g * rz[:, H:] + xp.matmul(dgh, w_hh_t.T) if need[1] else None,
                 xp.matmul(h.T, dgh) if need[2] else None]
        if len(need) == 4:
            grads.append(dgh.sum(axis=0) if need[3] else None)
        return tuple(None if x is None else Tensor(x) for x in grads)

    def jvp(self, *tangents):
        raise NotImplementedError("GRUStep is a fused op without a forward-mode rule (jvp): "
                                  "build the layer with fused=False (gru_step_composed) for forward mode")


class LSTMStep(Function):
    """(h', c') of one LSTM step from gi, h, c, W_hhᵀ (and b_hh): i, f, g, o = σ, σ, tanh, σ of
    a = gi + h W_hhᵀ + b_hh; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c').

    Backward, with G_h, G_c = ∂L/∂h', ∂L/∂c' and C = G_c + G_h ⊙ o ⊙ (1 − tanh²c') the whole gradient of c':
        ∂a = [C g, C c, C i, G_h tanh(c')] ⊙ [i(1 − i), f(1 − f), 1 − g², o(1 − o)],
        ∂gi = ∂a,   ∂h = ∂a W_hh,   ∂c = C f,   ∂W_hhᵀ = hᵀ ∂a,   ∂b_hh = Σ_B ∂a.
    Saved: the gates and tanh(c'). The backward works on raw arrays: ``fused=False`` for higher derivatives.
    """

    differentiable_backward = False

    def forward(self, gi, h, c, w_hh_t, b_hh=None):
        xp, H = backend.get_array_module(gi), h.shape[-1]
        a = xp.matmul(h, w_hh_t)
        a += gi
        if b_hh is not None:
            a += b_hh
        g = xp.tanh(a[:, 2 * H:3 * H])
        _sigmoid_(a)  # all of it: one contiguous pass is faster than three strided ones; block g is unused
        c_new = a[:, H:2 * H] * c + a[:, :H] * g
        tanh_c = xp.tanh(c_new)
        self.save_for_backward(h, c, w_hh_t, a, g, tanh_c)
        return a[:, 3 * H:] * tanh_c, c_new

    def backward(self, gh, gc):
        gh, gc, (h, c, w_hh_t, a, g, tc) = gh.data, gc.data, (t.data for t in self.saved_tensors)
        xp, H = backend.get_array_module(gh), h.shape[-1]
        i, f, o = a[:, :H], a[:, H:2 * H], a[:, 3 * H:]
        cc = gh * o * (1 - tc * tc) + gc
        d = xp.concatenate([cc * g, cc * c, cc * i, gh * tc], axis=1)
        slope = a * (1 - a)
        slope[:, 2 * H:3 * H] = 1 - g * g
        d *= slope
        need = self.needs_input_grad
        grads = [d if need[0] else None,
                 xp.matmul(d, w_hh_t.T) if need[1] else None,
                 cc * f if need[2] else None,
                 xp.matmul(h.T, d) if need[3] else None]
        if len(need) == 5:
            grads.append(d.sum(axis=0) if need[4] else None)
        return tuple(None if x is None else Tensor(x) for x in grads)

    def jvp(self, *tangents):
        raise NotImplementedError("LSTMStep is a fused op without a forward-mode rule (jvp): "
                                  "build the layer with fused=False (lstm_step_composed) for forward mode")


def _check_step(name, G, gi, h, w_hh_t, b_hh, c=None):
    """Shapes (B, G·H), (B, H), (H, G·H), (G·H,) and one dtype for the arguments of a fused step."""
    if h.ndim != 2:
        raise ValueError(f"{name}: h must have shape (batch, hidden), got {h.shape}")
    (B, H), dtype = h.shape, h.dtype
    want = {"gi": (B, G * H), "c": (B, H), "w_hh_t": (H, G * H), "b_hh": (G * H,)}
    for arg, t in (("gi", gi), ("c", c), ("w_hh_t", w_hh_t), ("b_hh", b_hh)):
        if t is not None and t.shape != want[arg]:
            raise ValueError(f"{name}: {arg} must have shape {want[arg]} (batch {B}, hidden {H}, {G} gates), "
                             f"got {t.shape}")
        if t is not None and t.dtype != dtype:
            raise TypeError(f"{name}: {arg} has dtype {t.dtype} but h has {dtype}; cast one of them")


def gru_step(gi, h, w_hh_t, b_hh=None):
    """The fused GRU step (``GRUStep``): gi (B, 3H), h (B, H), w_hh_t (H, 3H), b_hh (3H,) → h' (B, H)."""
    gi, h, w_hh_t = as_tensor(gi), as_tensor(h), as_tensor(w_hh_t)
    b_hh = None if b_hh is None else as_tensor(b_hh)
    _check_step("gru_step", 3, gi, h, w_hh_t, b_hh)
    return GRUStep()(gi, h, w_hh_t, *(() if b_hh is None else (b_hh,)))


def lstm_step(gi, h, c, w_hh_t, b_hh=None):
    """The fused LSTM step (``LSTMStep``): gi (B, 4H), h, c (B, H), w_hh_t (H, 4H), b_hh (4H,) → (h', c')."""
    gi, h, c, w_hh_t = as_tensor(gi), as_tensor(h), as_tensor(c), as_tensor(w_hh_t)
    b_hh = None if b_hh is None else as_tensor(b_hh)
    _check_step("lstm_step", 4, gi, h, w_hh_t, b_hh, c)
    return LSTMStep()(gi, h, c, w_hh_t, *(() if b_hh is None else (b_hh,)))


def gru_step_composed(gi, h, w_hh_t, b_hh=None):
    """The same GRU step from differentiable primitives: slower, but with second derivatives."""
    gh = matmul(h, w_hh_t)
    if b_hh is not None:
        gh = gh + b_hh
    H = h.shape[-1]
    gi_rz, gi_n = split(gi, [2 * H], axis=-1)
    gh_rz, gh_n = split(gh, [2 * H], axis=-1)
    r, z = split(sigmoid(gi_rz + gh_rz), 2, axis=-1)
    n = tanh(gi_n + r * gh_n)
    return n + z * (h - n)


def lstm_step_composed(gi, h, c, w_hh_t, b_hh=None):
    """The same LSTM step from differentiable primitives: slower, but with second derivatives."""
    g = gi + matmul(h, w_hh_t)
    if b_hh is not None:
        g = g + b_hh
    i, f, gg, o = split(g, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * tanh(gg)
    return sigmoid(o) * tanh(c), c


def _project(x, w_ih, b_ih):
    y = matmul(x, w_ih.mT)
    return y if b_ih is None else y + b_ih


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, fused=True):
    """One GRU step on ``x`` (B, I) and ``h`` (B, H); weights (3H, I), (3H, H) in gate order r, z, n."""
    return (gru_step if fused else gru_step_composed)(_project(x, w_ih, b_ih), h, w_hh.mT, b_hh)


def lstm_cell(x, hc, w_ih, w_hh, b_ih=None, b_hh=None, fused=True):
    """One LSTM step on ``x`` (B, I) and ``hc = (h, c)``; weights (4H, I), (4H, H) in gate order i, f, g, o."""
    h, c = hc
    return (lstm_step if fused else lstm_step_composed)(_project(x, w_ih, b_ih), h, c, w_hh.mT, b_hh)


# ---- parameters -------------------------------------------------------------------------------------------------
def _uniform(shape, bound, dtype, device):
    """U(−bound, bound) drawn on the host generator (same numbers on every device)."""
    data = backend.generator("cpu").uniform(-bound, bound, size=shape).astype(dtype)
    return Parameter(backend.to_device(data, device))


def _orthogonal_blocks(rows, cols, dtype):
    """(rows, cols) made of stacked (cols, cols) orthogonal blocks, one per gate, drawn on the host."""
    data = backend.np.empty((rows, cols), dtype)
    for i in range(0, rows, cols):
        nn_init.orthogonal_(Tensor(data[i:i + cols]))  # fills the view, so ``data`` itself
    return data


def _check_dtype(name, x, w):
    if x.dtype != w.dtype:
        raise TypeError(f"{name}: input has dtype {x.dtype} but the parameters are {w.dtype}; "
                        f"cast one of them (e.g. module.to(dtype={str(x.dtype)!r}))")


class _CellBase(Module):
    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, fused=True):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        self.fused = bool(fused)
        dtype = backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)
        device = backend.parse_device(device)
        G, H, k = self.gates, self.hidden_size, 1.0 / math.sqrt(hidden_size)
        self.weight_ih = _uniform((G * H, self.input_size), k, dtype, device)
        self.weight_hh = _uniform((G * H, H), k, dtype, device)
        self.register_parameter("bias_ih", _uniform((G * H,), k, dtype, device) if bias else None)
        self.register_parameter("bias_hh", _uniform((G * H,), k, dtype, device) if bias else None)

    def _prepare(self, x, hx, n_states):
        """(B, I) input (a lone (I,) is given a batch axis) and the zero initial state(s)."""
        x = as_tensor(x)
        name = type(self).__name__
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must have shape (batch, {self.input_size}) or ({self.input_size},), "
                             f"got {x.shape}")
        _check_dtype(name, x, self.weight_ih)
        batched = x.ndim == 2
        if not batched:
            x = reshape(x, (1,) + x.shape)
        if hx is None:
            zero = Tensor(x.xp.zeros((x.shape[0], self.hidden_size), x.dtype))
            hx = (zero,) * n_states
        else:
            hx = tuple(as_tensor(h) for h in ((hx,) if n_states == 1 else hx))
            want = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            for h in hx:
                if h.shape != want:
                    raise ValueError(f"{name}: hidden state must have shape {want}, got {h.shape}")
            if not batched:
                hx = tuple(reshape(h, (1,) + h.shape) for h in hx)
        return x, hx, batched

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
                + ("" if self.fused else ", fused=False"))


class GRUCell(_CellBase):
    """One GRU step: ``h' = GRUCell(I, H)(x, h)`` with x (B, I), h (B, H) (h defaults to zeros).
    ``fused=False`` composes the step from primitives, for second derivatives."""
    gates = 3

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, hx, 1)
        h = gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.fused)
        return h if batched else reshape(h, h.shape[1:])


class LSTMCell(_CellBase):
    """One LSTM step: ``h', c' = LSTMCell(I, H)(x, (h, c))`` (the state defaults to zeros).
    ``fused=False`` composes the step from primitives, for second derivatives."""
    gates = 4

    def forward(self, input, hx=None):
        x, hc, batched = self._prepare(input, hx, 2)
        h, c = lstm_cell(x, hc, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.fused)
        return (h, c) if batched else (reshape(h, h.shape[1:]), reshape(c, c.shape[1:]))


# ---- multi-layer, optionally bidirectional sequences ------------------------------------------------------------
class _RNNBase(Module):
    mode, gates = None, 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, fused=True):
        super().__init__()
        if int(num_layers) < 1:
            raise ValueError(f"{self.mode}: num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.mode}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.fused = bool(bidirectional), bool(fused)
        self.num_directions = 2 if bidirectional else 1
        self._dtype = backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)
        self._device = backend.parse_device(device)
        self.reset_parameters()

    def _names(self, layer, direction):
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        return [f"weight_ih{sfx}", f"weight_hh{sfx}"] + ([f"bias_ih{sfx}", f"bias_hh{sfx}"] if self.bias else [])

    def reset_parameters(self, init="uniform"):
        """PyTorch's U(−1/√H, 1/√H) for every parameter; ``init="orthogonal"`` then makes each gate's block of
        every ``weight_hh`` orthogonal (a common choice for long sequences). Existing parameters keep their
        identity, device and dtype (an optimizer holding them stays valid)."""
        if init not in ("uniform", "orthogonal"):
            raise ValueError(f"{self.mode}.reset_parameters: init must be 'uniform' or 'orthogonal', got {init!r}")
        G, H, k = self.gates, self.hidden_size, 1.0 / math.sqrt(self.hidden_size)
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else H * self.num_directions
            for direction in range(self.num_directions):
                shapes = [(G * H, in_size), (G * H, H), (G * H,), (G * H,)]
                for name, shape in zip(self._names(layer, direction), shapes):
                    old = getattr(self, name, None)
                    dtype, device = (self._dtype, self._device) if old is None else (old.dtype, old.device)
                    p = _uniform(shape, k, dtype, device)
                    if init == "orthogonal" and name.startswith("weight_hh"):
                        p.data = backend.to_device(_orthogonal_blocks(G * H, H, dtype), device)
                    if old is None:
                        setattr(self, name, p)
                    else:
                        old.data = p.data

    def _initial_state(self, hx, x, batched, n_states):
        LD, B, H = self.num_layers * self.num_directions, x.shape[1], self.hidden_size
        if hx is None:
            zero = Tensor(x.xp.zeros((B, H), x.dtype))
            return [[zero] * LD for _ in range(n_states)]
        hx = (hx,) if n_states == 1 else tuple(hx)
        want = (LD, B, H) if batched else (LD, H)
        states = []
        for h in hx:
            h = as_tensor(h)
            if h.shape != want:
                raise ValueError(f"{self.mode}: initial state must have shape {want} "
                                 f"(num_layers * num_directions, batch, hidden_size), got {h.shape}")
            states.append([reshape(p, (B, H)) for p in split(h, LD, axis=0)] if LD > 1 else [reshape(h, (B, H))])
        return states

    def _mask(self, mask, lengths, T, B, batched, device):
        """(B, T) boolean array of valid steps on ``device`` and, per step, (all valid?, none valid?)."""
        if mask is not None and lengths is not None:
            raise ValueError(f"{self.mode}: pass mask or lengths, not both")
        if mask is None and lengths is None:
            return None, None
        np = backend.np
        if lengths is not None:
            lengths = np.asarray(backend.to_numpy(lengths.data if isinstance(lengths, Tensor) else lengths))
            lengths = lengths.reshape(-1) if lengths.ndim == 0 and not batched else lengths
            if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
                raise ValueError(f"{self.mode}: lengths must hold {B} integers, got {lengths.dtype} {lengths.shape}")
            if (lengths < 0).any() or (lengths > T).any():
                raise ValueError(f"{self.mode}: lengths must lie in [0, {T}] (the sequence length), got {lengths}")
            valid = np.arange(T)[None, :] < lengths[:, None]
        else:
            valid = np.asarray(backend.to_numpy(mask.data if isinstance(mask, Tensor) else mask))
            if not batched and valid.ndim == 1:
                valid = valid[None]
            if valid.shape != (B, T) or valid.dtype != bool:
                raise ValueError(f"{self.mode}: mask must be a bool array of shape (batch, seq) = {(B, T)} "
                                 f"(whatever batch_first says), got {valid.dtype} {valid.shape}")
        return backend.to_device(valid, device), (valid.all(axis=0).tolist(), (~valid.any(axis=0)).tolist())

    def _direction(self, gi, states, layer, direction, mask, summary):
        """Run one direction of one layer over the projected inputs ``gi`` (list of T (B, G·H) tensors)."""
        names = self._names(layer, direction)
        lstm = self.mode == "LSTM"
        params = [getattr(self, names[1]).mT]
        if self.bias and not lstm:  # the LSTM's b_hh is folded into gi
            params.append(getattr(self, names[3]))
        fused, composed = (LSTMStep, lstm_step_composed) if lstm else (GRUStep, gru_step_composed)
        h = states[0]
        c = states[1] if lstm else None
        T = len(gi)
        outs = [None] * T
        for t in (range(T - 1, -1, -1) if direction else range(T)):
            if summary is not None and summary[1][t]:  # nobody is valid here: skip the step
                outs[t] = Tensor(h.xp.zeros(h.shape, h.dtype))
                continue
            state = (h, c) if lstm else (h,)
            new = fused()(gi[t], *state, *params) if self.fused else composed(gi[t], *state, *params)
            h_new, c_new = new if lstm else (new, None)
            if summary is None or summary[0][t]:
                h, c, outs[t] = h_new, c_new, h_new
            else:
                m = mask[:, t:t + 1]
                h, outs[t] = where(m, h_new, h), where(m, h_new, 0.0)
                c = where(m, c_new, c) if lstm else None
        return outs, h, c

    def forward(self, input, hx=None, mask=None, lengths=None):
        """``input`` (T, B, I), or (B, T, I) with ``batch_first``, or unbatched (T, I).

        ``hx``: initial state (num_layers·num_directions, B, H) (a pair (h0, c0) for LSTM), zeros by default.
        ``mask`` (B, T) bool or ``lengths`` (B,): padded steps keep the state and output zeros.
        Returns ``(output, h_n)`` for GRU and ``(output, (h_n, c_n))`` for LSTM, as PyTorch does.
        """
        x = as_tensor(input)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{self.mode}: input must have shape (seq, batch, {self.input_size}) "
                             f"(or (batch, seq, {self.input_size}) with batch_first, or unbatched "
                             f"(seq, {self.input_size})), got {x.shape}")
        _check_dtype(self.mode, x, self.weight_ih_l0)
        batched = x.ndim == 3
        if not batched:
            x = reshape(x, (x.shape[0], 1, x.shape[1]))
        elif self.batch_first:
            x = transpose(x, (1, 0, 2))
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError(f"{self.mode}: the input sequence is empty (seq length 0)")
        lstm = self.mode == "LSTM"
        states = self._initial_state(hx, x, batched, 2 if lstm else 1)
        mask, summary = self._mask(mask, lengths, T, B, batched, x.device)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            if layer > 0:
                x = F.dropout(x, self.dropout, self.training)
            flat = reshape(x, (T * B, x.shape[2]))
            outs = []
            for direction in range(self.num_directions):
                names = self._names(layer, direction)
                w_ih = getattr(self, names[0])
                b = None
                if self.bias:
                    b = getattr(self, names[2])
                    if lstm:  # both biases fold into the precomputed projection
                        b = b + getattr(self, names[3])
                gi = reshape(_project(flat, w_ih, b), (T, B, w_ih.shape[0]))
                gi = [reshape(g, g.shape[1:]) for g in split(gi, T, axis=0)] if T > 1 else [reshape(gi, gi.shape[1:])]
                k = layer * self.num_directions + direction
                out, h, c = self._direction(gi, [s[k] for s in states], layer, direction, mask, summary)
                outs.append(stack(out, axis=0))
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if len(outs) == 1 else concatenate(outs, axis=-1)
        h_n = stack(h_n, axis=0)
        c_n = stack(c_n, axis=0) if lstm else None
        if not batched:
            x = reshape(x, (T, x.shape[-1]))
            h_n = reshape(h_n, (h_n.shape[0], h_n.shape[2]))
            c_n = reshape(c_n, (c_n.shape[0], c_n.shape[2])) if lstm else None
        elif self.batch_first:
            x = transpose(x, (1, 0, 2))
        return (x, (h_n, c_n)) if lstm else (x, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if not self.fused:
            s += ", fused=False"
        return s


class GRU(_RNNBase):
    """Multi-layer GRU with PyTorch's signature; parameters ``weight_ih_l{k}`` (3H, in), ``weight_hh_l{k}``
    (3H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3H,) and ``..._reverse`` copies, gates in order r, z, n.
    Each step is the fused ``GRUStep``; pass ``fused=False`` for second (and higher) derivatives."""
    mode, gates = "GRU", 3


class LSTM(_RNNBase):
    """Multi-layer LSTM with PyTorch's signature; parameters ``weight_ih_l{k}`` (4H, in), ``weight_hh_l{k}``
    (4H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H,) and ``..._reverse`` copies, gates in order i, f, g, o.
    Each step is the fused ``LSTMStep``; pass ``fused=False`` for second (and higher) derivatives."""
    mode, gates = "LSTM", 4
