"""One declarative spec per primitive op: forward vs a float64 NumPy reference, gradient, second gradient."""
import numpy as np
import scipy.special as sps
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import OpSpec, away_from, broadcastable_shapes, grid, positive, shapes


def _lse(x, axis=None, keepdims=False):
    return sps.logsumexp(x, axis=axis, keepdims=keepdims)


def _gelu(x):
    return 0.5 * x * (1 + sps.erf(x / np.sqrt(2)))


unary = lambda: shapes(min_dims=0, max_dims=3, min_side=0, max_side=4).map(lambda s: (s,))
binary = lambda: broadcastable_shapes(2, min_dims=0, max_dims=3, min_side=0, max_side=3)
ternary_where = lambda: broadcastable_shapes(3, min_dims=0, max_dims=3, min_side=1, max_side=3)
nonempty = lambda lo=1: shapes(min_dims=1, max_dims=3, min_side=lo, max_side=4).map(lambda s: (s,))
matrix_pair = lambda: st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2)).map(
    lambda t: ((t[3], t[0], t[1]), (t[1], t[2])))
away0 = away_from((0.0,), 0.05)
offgrid = grid().map(lambda v: v + 0.05)  # with grid() on the other operand: two varying inputs, never within 0.05

SPECS = [
    OpSpec("add", lambda a, b: a + b, np.add, 2, shapes=binary()),
    OpSpec("sub", lambda a, b: a - b, np.subtract, 2, shapes=binary()),
    OpSpec("mul", lambda a, b: a * b, np.multiply, 2, shapes=binary()),
    OpSpec("div", lambda a, b: a / b, np.divide, 2, shapes=binary(), elements=[None, positive(0.5, 3.0)]),
    OpSpec("neg", lambda a: -a, np.negative, shapes=unary()),
    OpSpec("pow_scalar", lambda a: a ** 3, lambda a: a ** 3, shapes=unary()),
    OpSpec("pow", lambda a, b: a ** b, np.power, 2, shapes=binary(), elements=[positive(0.5, 2.0), None]),
    OpSpec("scalar_mix", lambda a: 2.5 * a - 1 / (a + 4.0), lambda a: 2.5 * a - 1 / (a + 4.0), shapes=unary(),
           elements=positive(0.1, 3.0)),
    OpSpec("exp", mg.exp, np.exp, shapes=unary()),
    OpSpec("log", mg.log, np.log, shapes=unary(), elements=positive()),
    OpSpec("sqrt", mg.sqrt, np.sqrt, shapes=unary(), elements=positive()),
    OpSpec("abs", mg.abs, np.abs, shapes=unary(), elements=away0),
    OpSpec("clip", lambda a: mg.clip(a, -1.0, 1.5), lambda a: np.clip(a, -1.0, 1.5), shapes=unary(),
           elements=away_from((-1.0, 1.5), 0.05)),
    OpSpec("maximum", mg.maximum, np.maximum, 2, shapes=binary(), elements=[grid(), offgrid]),
    OpSpec("minimum", mg.minimum, np.minimum, 2, shapes=binary(), elements=[grid(), offgrid]),
    OpSpec("maximum_self_tie", lambda a: mg.maximum(a, a), lambda a: a, shapes=unary(),
           notes="both operands are one tensor: every element ties and the halves add up to the derivative 1"),
    OpSpec("minimum_tie_scaled", lambda a: mg.minimum(a, a) * 3.0 + mg.maximum(2.0 * a, a + a), lambda a: 5 * a,
           shapes=unary()),
    OpSpec("where", lambda a, b, c: mg.where(c > 0, a, b), lambda a, b, c: np.where(c > 0, a, b), 3,
           shapes=ternary_where(), elements=[None, None, away0]),
    OpSpec("sin", mg.sin, np.sin, shapes=unary()),
    OpSpec("cos", mg.cos, np.cos, shapes=unary()),
    OpSpec("tanh", mg.tanh, np.tanh, shapes=unary()),
    OpSpec("sigmoid", mg.sigmoid, sps.expit, shapes=unary()),
    OpSpec("relu", mg.relu, lambda a: np.maximum(a, 0), shapes=unary(), elements=away0),
    OpSpec("leaky_relu", lambda a: mg.leaky_relu(a, 0.1), lambda a: np.where(a > 0, a, 0.1 * a), shapes=unary(),
           elements=away0),
    OpSpec("elu", mg.elu, lambda a: np.where(a > 0, a, np.expm1(a)), shapes=unary(), elements=away0),
    OpSpec("gelu", mg.gelu, _gelu, shapes=unary()),
    OpSpec("gelu_tanh", lambda a: mg.gelu(a, approximate="tanh"),
           lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3))), shapes=unary()),
    OpSpec("softplus", mg.softplus, lambda a: np.logaddexp(0, a), shapes=unary()),
    OpSpec("sum", mg.sum, np.sum, shapes=unary()),
    OpSpec("sum_axis", lambda a: mg.sum(a, axis=-1, keepdims=True), lambda a: a.sum(-1, keepdims=True),
           shapes=nonempty(0)),
    OpSpec("mean_axis", lambda a: mg.mean(a, axis=0), lambda a: a.mean(0), shapes=nonempty()),
    OpSpec("max_axis", lambda a: mg.max(a, axis=-1), lambda a: a.max(-1), shapes=nonempty(), elements=grid(),
           unique=True),
    OpSpec("min_all", mg.min, np.min, shapes=nonempty(), elements=grid(), unique=True),
    OpSpec("var_axis", lambda a: mg.var(a, axis=0, ddof=1), lambda a: a.var(0, ddof=1),
           shapes=shapes(1, 3, 2, 4).map(lambda s: (s,))),
    OpSpec("logsumexp", lambda a: mg.logsumexp(a, axis=-1), lambda a: _lse(a, -1), shapes=nonempty()),
    OpSpec("norm", lambda a: mg.norm(a, axis=-1), lambda a: np.linalg.norm(a, axis=-1), shapes=nonempty(),
           elements=positive(0.2, 2.0)),
    OpSpec("norm_l1", lambda a: mg.norm(a, ord=1), lambda a: np.abs(a).sum(), shapes=nonempty(), elements=away0),
    OpSpec("norm_inf", lambda a: mg.norm(a, ord=float("inf")), lambda a: np.abs(a).max(), shapes=nonempty(),
           elements=grid(0.1, 0.1, 3.0), unique=True),
    OpSpec("matmul", mg.matmul, np.matmul, 2, shapes=matrix_pair()),
    OpSpec("matmul_vec", mg.matmul, np.matmul, 2,
           shapes=st.integers(1, 4).flatmap(lambda n: st.just(((n,), (n, 3))))),
    OpSpec("linear", lambda x, w, b: mg.functional.linear(x, w, b), lambda x, w, b: x @ w.T + b, 3,
           shapes=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).map(
               lambda t: ((2, t[0], t[1]), (t[2], t[1]), (t[2],)))),
    OpSpec("linear_1d_no_bias", lambda x, w: mg.functional.linear(x, w), lambda x, w: x @ w.T, 2,
           shapes=st.just(((3,), (2, 3)))),
    OpSpec("einsum", lambda a, b: mg.einsum("bij,jk->bik", a, b), lambda a, b: np.einsum("bij,jk->bik", a, b), 2,
           shapes=matrix_pair()),
    OpSpec("einsum_sum_only", lambda a: mg.einsum("ij->j", a), lambda a: np.einsum("ij->j", a),
           shapes=shapes(2, 2).map(lambda s: (s,))),
    OpSpec("reshape", lambda a: a.reshape(-1), lambda a: a.reshape(-1), shapes=unary()),
    OpSpec("transpose", lambda a: a.T, lambda a: a.T, shapes=unary()),
    OpSpec("broadcast_to", lambda a: mg.broadcast_to(a, (2,) + a.shape), lambda a: np.broadcast_to(a, (2,) + a.shape),
           shapes=unary()),
    OpSpec("squeeze_unsqueeze", lambda a: mg.squeeze(mg.unsqueeze(a, 0), 0), lambda a: a, shapes=unary()),
    OpSpec("getitem_basic", lambda a: a[1:, ::2], lambda a: a[1:, ::2], shapes=shapes(2, 3).map(lambda s: (s,))),
    OpSpec("getitem_int_array", lambda a: a[np.array([0, -1, 0])], lambda a: a[np.array([0, -1, 0])],
           shapes=nonempty()),
    OpSpec("concatenate", lambda a, b: mg.concatenate([a, b, a], axis=-1),
           lambda a, b: np.concatenate([a, b, a], axis=-1), 2,
           shapes=shapes(1, 3).map(lambda s: (s, s[:-1] + (2,)))),
    OpSpec("stack", lambda a, b: mg.stack([a, b], axis=0), lambda a, b: np.stack([a, b]), 2,
           shapes=shapes(0, 3).map(lambda s: (s, s))),
    OpSpec("split", lambda a: tuple(mg.split(a, [1], axis=0)), lambda a: tuple(np.split(a, [1], axis=0)),
           shapes=shapes(1, 3, 2).map(lambda s: (s,))),
    OpSpec("pad", lambda a: mg.pad(a, 1, value=0.5), lambda a: np.pad(a, 1, constant_values=0.5), shapes=unary()),
    OpSpec("softmax", lambda a: mg.softmax(a, axis=-1), lambda a: np.exp(a - _lse(a, -1, True)), shapes=nonempty()),
    OpSpec("log_softmax", lambda a: mg.log_softmax(a, axis=0), lambda a: a - _lse(a, 0, True), shapes=nonempty()),
    OpSpec("cross_entropy", lambda a: mg.cross_entropy(a, np.arange(a.shape[0]) % a.shape[1], label_smoothing=0.1),
           lambda a: _ce_ref(a, np.arange(a.shape[0]) % a.shape[1], 0.1),
           shapes=shapes(2, 2, 1, 4).map(lambda s: (s,))),
    OpSpec("bce_with_logits", lambda a, t: mg.binary_cross_entropy_with_logits(a, mg.sigmoid(t)),
           lambda a, t: np.mean(np.logaddexp(0, a) - sps.expit(t) * a), 2,
           shapes=shapes(1, 2).map(lambda s: (s, s))),
    OpSpec("binary_cross_entropy", lambda a, t: mg.binary_cross_entropy(mg.sigmoid(a), mg.sigmoid(t)),
           lambda a, t: np.mean(-(sps.expit(t) * np.log(sps.expit(a)) + sps.expit(-t) * np.log(sps.expit(-a)))), 2,
           shapes=shapes(1, 2).map(lambda s: (s, s))),
    OpSpec("mse_loss", mg.mse_loss, lambda a, b: np.mean((a - b) ** 2), 2, shapes=shapes(1, 2).map(lambda s: (s, s))),
]


def _ce_ref(x, t, eps):
    lp = x - _lse(x, 1, True)
    C = x.shape[1]
    q = np.eye(C)[t] * (1 - eps) + eps / C
    return np.mean(-(q * lp).sum(1))


SPEC_IDS = [s.name for s in SPECS]
