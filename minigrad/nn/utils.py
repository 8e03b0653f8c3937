"""Gradient clipping and flat parameter vectors (``torch.nn.utils``' names and semantics)."""
import math

from minigrad import backend
from minigrad.core import Tensor
from minigrad.ops import concatenate, reshape


def _with_grads(parameters):
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint ``norm_type``-norm is at most ``max_norm``.

    The total norm is ‖(‖g₁‖, ‖g₂‖, …)‖ over every gradient; each gradient is multiplied by
    min(1, max_norm / (total + 1e-6)). Returns the total norm before clipping (a 0-d Tensor), like PyTorch.
    Gradients are replaced by new arrays, never written in place (they may be shared or broadcast views).
    """
    params = _with_grads(parameters)
    norm_type = float(norm_type)
    if not params:
        return Tensor(backend.np.zeros((), backend.DEFAULT_FLOAT))
    grads = [p.grad.data for p in params]
    with backend.device_scope(grads[0]):
        return _clip_grad_norm(params, grads, float(max_norm), norm_type, error_if_nonfinite)


def _clip_grad_norm(params, grads, max_norm, norm_type, error_if_nonfinite):
    xp = backend.get_array_module(grads[0])
    if norm_type == math.inf:
        total = xp.max(xp.stack([xp.abs(g).max() for g in grads]))
    else:
        per = xp.stack([xp.linalg.norm(g.reshape(-1), ord=norm_type) for g in grads])
        total = xp.linalg.norm(per, ord=norm_type)
    total = xp.asarray(total, dtype=grads[0].dtype)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {float(total)}; "
                           "pass error_if_nonfinite=False to clip anyway")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    if bool(coef >= 1.0):  # nothing to clip: spare a pass over every gradient (a NaN coef still spreads)
        return Tensor(total)
    for p, g in zip(params, grads):
        p.grad = Tensor(xp.asarray(g * coef.astype(g.dtype)))
    return Tensor(total)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [−clip_value, clip_value]."""
    v = float(clip_value)
    for p in _with_grads(parameters):
        xp = backend.get_array_module(p.grad.data)
        with backend.device_scope(p.grad.data):
            p.grad = Tensor(xp.asarray(xp.clip(p.grad.data, -v, v)))


def parameters_to_vector(parameters):
    """All parameters flattened and joined into one 1-D tensor (differentiable)."""
    return concatenate([reshape(p, (-1,)) for p in parameters], axis=0)


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D ``vec`` into the parameters' arrays (in place, no graph)."""
    data = vec.data if isinstance(vec, Tensor) else vec
    parameters = list(parameters)
    total = sum(p.data.size for p in parameters)
    if data.ndim != 1 or data.size != total:
        raise ValueError(f"vector_to_parameters: vec must be 1-D with {total} elements, got shape {data.shape}")
    start = 0
    for p in parameters:
        n = p.data.size
        p.data = data[start:start + n].reshape(p.shape).astype(p.dtype, copy=True)
        p._version += 1
        start += n
