"""Losses, composed from differentiable ops; they follow PyTorch's defaults (``reduction="mean"``)."""
from minigrad.backend import get_array_module, ignore_float_errors
from minigrad.core import Function, Tensor, as_tensor, on_inputs_device
from minigrad.ops.elementwise import abs, log, maximum, softplus
from minigrad.ops.reduction import log_softmax, mean, sum
from minigrad.ops.shape import add_tangents


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


@on_inputs_device
def nll_loss(log_probs, target, reduction="mean", ignore_index=-100, label_smoothing=0.0, weight=None):
    """Negative log-likelihood of targets given log-probabilities ``(N, C, …)``: −Σ_c q_c log p_c, where q is
    the one-hot target (rows equal to ``ignore_index`` are all-zero), smoothed towards 1/C and weighted."""
    lp = as_tensor(log_probs)
    caxis = 1 if lp.ndim > 1 else 0
    C = lp.shape[caxis]
    xp = get_array_module(lp.data)
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
    if valid is None and isinstance(target, Tensor) and target.requires_grad:
        qt = target if not label_smoothing else target * (1 - label_smoothing) + label_smoothing / C
        if weight is not None:  # probability targets that require grad get ∂/∂q = −log p (PyTorch does too)
            qt = qt * Tensor(w.reshape((C,) + (1,) * (lp.ndim - caxis - 1)))
        loss = -sum(lp * qt, axis=caxis)
        return _reduce(loss, reduction, "cross_entropy")
    loss = -sum(lp * Tensor(q.astype(lp.dtype, copy=False)), axis=caxis)
    if reduction == "mean" and valid is not None:
        denom = float(valid.sum() if weight is None else (w[safe] * valid).sum())
        if not denom:  # every target ignored, or an empty batch: NaN as in PyTorch, with zero gradients
            return sum(loss) + float("nan")
        return sum(loss) * (1.0 / denom)
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


class BinaryCrossEntropy(Function):
    """ℓ = −[t·max(log p, −100) + (1−t)·max(log(1−p), −100)] element-wise, PyTorch's clamp of the log, so p = 0
    or 1 gives a finite loss. ∂p = (p − t) / max(p(1−p), 1e-12) (PyTorch's), ∂t = log(1−p) − log p (clamped)."""

    def forward(self, p, t):
        need_p, need_t = self.needs_input_grad
        self.save_for_backward(p, t if need_p else None)
        xp = get_array_module(p)
        with ignore_float_errors():
            lp, l1p = xp.maximum(xp.log(p), -100), xp.maximum(xp.log1p(-p), -100)
        return -(t * lp + (1 - t) * l1p)

    def backward(self, gy):
        p, t = self.saved_tensors
        need_p, need_t = self.needs_input_grad
        gp = gy * (p - t) / maximum(p * (1 - p), 1e-12) if need_p else None
        gt = None
        if need_t:
            with ignore_float_errors():
                gt = gy * (maximum(log(1 - p), -100.0) - maximum(log(p), -100.0))
        return gp, gt

    def jvp(self, tp, tt):
        p, t = self.inputs
        with ignore_float_errors():
            return add_tangents(None if tp is None else tp * (p - t) / maximum(p * (1 - p), 1e-12),
                                None if tt is None else tt * (maximum(log(1 - p), -100.0) - maximum(log(p), -100.0)))


def binary_cross_entropy(probs, target, reduction="mean", weight=None):
    """BCE on probabilities in [0, 1] (PyTorch's: logs clamped at −100, inputs outside [0, 1] rejected)."""
    probs = as_tensor(probs)
    target = as_tensor(target, probs)
    if target.shape != probs.shape:
        raise ValueError(f"binary_cross_entropy: target shape {target.shape} != input shape {probs.shape}")
    if probs.size:
        lo, hi = float(probs.data.min()), float(probs.data.max())
        if not (lo >= 0 and hi <= 1):  # NaN fails too
            raise ValueError(f"binary_cross_entropy: every element of input must lie in [0, 1] (probabilities; "
                             f"use binary_cross_entropy_with_logits for logits), got values in [{lo}, {hi}]")
    loss = BinaryCrossEntropy()(probs, target)
    if weight is not None:
        loss = loss * as_tensor(weight, probs)
    return _reduce(loss, reduction, "binary_cross_entropy")


def mse_loss(input, target, reduction="mean"):
    input = as_tensor(input)
    target = as_tensor(target, input)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} != target shape {target.shape} "
                         "(no silent broadcasting in a loss)")
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    input = as_tensor(input)
    target = as_tensor(target, input)
    if input.shape != target.shape:
        raise ValueError(f"l1_loss: input shape {input.shape} != target shape {target.shape}")
    return _reduce(abs(input - target), reduction, "l1_loss")
