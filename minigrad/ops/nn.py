"""Softmax family and losses. Losses follow PyTorch's defaults (``reduction="mean"``)."""
from minigrad import backend
from minigrad.core import Function, Tensor, as_tensor
from minigrad.ops.reduction import _axes, _quiet, mean, sum
from minigrad.ops.elementwise import exp, softplus


def _xp(a):
    return backend.get_array_module(a)


class Softmax(Function):
    """y = exp(x − logsumexp x); ∂x = y ⊙ (gy − Σ gy ⊙ y)."""
    needs_input_data = False
    saves_output = True


    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = _xp(x)
        m = x.max(axis=self.axis, keepdims=True)
        e = xp.exp(x - xp.where(xp.isfinite(m), m, 0))
        with _quiet(xp):
            return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.output()
        return y * (gy - sum(gy * y, self.axis, keepdims=True))

    def jvp(self, tx):
        y = self.output()
        return y * (tx - sum(tx * y, self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x − logsumexp x; ∂x = gy − exp(y) Σ gy."""
    needs_input_data = False
    saves_output = True


    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = _xp(x)
        m = x.max(axis=self.axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        with _quiet(xp):
            return x - (xp.log(xp.exp(x - m).sum(axis=self.axis, keepdims=True)) + m)

    def backward(self, gy):
        return gy - exp(self.output()) * sum(gy, self.axis, keepdims=True)

    def jvp(self, tx):
        return tx - sum(exp(self.output()) * tx, self.axis, keepdims=True)


def softmax(x, axis=-1):
    x = as_tensor(x)
    return Softmax(_axes(axis, x.ndim))(x)


def log_softmax(x, axis=-1):
    x = as_tensor(x)
    return LogSoftmax(_axes(axis, x.ndim))(x)


def _reduce(loss, reduction, name):
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, target, reduction="mean", ignore_index=-100, label_smoothing=0.0, weight=None):
    """PyTorch's ``cross_entropy``: logits ``(N, C)`` or ``(N, C, d1, …)``; target class indices (``(N, d1, …)``)
    or class probabilities (same shape as logits). Written as −Σ q·log_softmax with q the (smoothed) target."""
    logits = as_tensor(logits)
    if logits.ndim < 1:
        raise ValueError("cross_entropy: logits need a class axis")
    lp = log_softmax(logits, axis=1 if logits.ndim > 1 else 0)
    return nll_loss(lp, target, reduction, ignore_index, label_smoothing, weight)


def nll_loss(log_probs, target, reduction="mean", ignore_index=-100, label_smoothing=0.0, weight=None):
    """Negative log-likelihood of targets given log-probabilities ``(N, C, …)``: −Σ_c q_c log p_c, where q is
    the one-hot target (rows equal to ``ignore_index`` are all-zero), smoothed towards 1/C and weighted."""
    lp = as_tensor(log_probs)
    caxis = 1 if lp.ndim > 1 else 0
    C = lp.shape[caxis]
    xp = _xp(lp.data)
    tdata = target.data if isinstance(target, Tensor) else xp.asarray(target)
    if tdata.dtype.kind == "f":
        if tdata.shape != lp.shape:
            raise ValueError(f"cross_entropy: probability targets need the logits' shape {lp.shape}, got {tdata.shape}")
        valid, q = None, tdata.astype(lp.dtype)
        if label_smoothing:
            q = q * (1 - label_smoothing) + label_smoothing / C
    else:
        expected = lp.shape[:caxis] + lp.shape[caxis + 1:]
        if tdata.shape != expected:
            raise ValueError(f"cross_entropy: class-index target must have shape {expected} for logits "
                             f"{lp.shape}, got {tdata.shape}")
        valid = tdata != ignore_index
        bad = valid & ((tdata < 0) | (tdata >= C))
        if bool(bad.any()):
            raise IndexError(f"cross_entropy: target holds class {int(tdata[bad].reshape(-1)[0])} outside [0, {C})")
        safe = xp.where(valid, tdata, 0)
        classes = xp.arange(C).reshape((C,) + (1,) * (tdata.ndim - caxis))
        q = (classes == xp.expand_dims(safe, caxis)).astype(lp.dtype)
        if label_smoothing:
            q = q * (1 - label_smoothing) + label_smoothing / C
        q = q * xp.expand_dims(valid, caxis)
    if weight is not None:
        w = as_tensor(weight, lp).data.astype(lp.dtype)
        q = q * w.reshape((C,) + (1,) * (lp.ndim - caxis - 1))
    loss = -sum(lp * Tensor(q.astype(lp.dtype, copy=False)), axis=caxis)
    if reduction == "mean" and valid is not None:
        denom = valid.sum() if weight is None else (w[safe] * valid).sum()
        return sum(loss) * (1.0 / float(denom))
    return _reduce(loss, reduction, "cross_entropy")


def binary_cross_entropy_with_logits(logits, target, reduction="mean", pos_weight=None):
    """−[t log σ(x) + (1−t) log(1−σ(x))] = softplus(x) − t·x, stable for any logit."""
    logits = as_tensor(logits)
    target = as_tensor(target, logits)
    if target.shape != logits.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target shape {target.shape} != "
                         f"logits shape {logits.shape}")
    if pos_weight is None:
        loss = softplus(logits) - target * logits
    else:
        pw = as_tensor(pos_weight, logits)
        loss = (1 - target) * logits + (1 + (pw - 1) * target) * softplus(-logits)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def binary_cross_entropy(probs, target, reduction="mean", eps=1e-12):
    """BCE on probabilities (clipped away from 0 and 1 by ``eps``)."""
    from minigrad.ops.elementwise import clip, log
    probs = as_tensor(probs)
    target = as_tensor(target, probs)
    p = clip(probs, eps, 1 - eps)
    return _reduce(-(target * log(p) + (1 - target) * log(1 - p)), reduction, "binary_cross_entropy")


def mse_loss(input, target, reduction="mean"):
    input = as_tensor(input)
    target = as_tensor(target, input)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} != target shape {target.shape} "
                         "(no silent broadcasting in a loss)")
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    from minigrad.ops.elementwise import abs as _abs
    input = as_tensor(input)
    target = as_tensor(target, input)
    if input.shape != target.shape:
        raise ValueError(f"l1_loss: input shape {input.shape} != target shape {target.shape}")
    return _reduce(_abs(input - target), reduction, "l1_loss")
