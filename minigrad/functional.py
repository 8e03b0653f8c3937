"""Neural-network ops in one namespace (``import minigrad.functional as F``), as in ``torch.nn.functional``."""
from minigrad.ops.elementwise import elu, gelu, leaky_relu, relu, sigmoid, softplus, tanh, where  # noqa: F401
from minigrad.ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,  # noqa: F401
                               l1_loss, mse_loss, nll_loss)
from minigrad.ops.reduction import log_softmax, softmax  # noqa: F401
from minigrad.ops.linalg import linear  # noqa: F401
from minigrad.ops.shape import pad  # noqa: F401


# ---- layers' functional forms: convolution, pooling, normalisation, dropout, embedding --------------------
from minigrad import backend as _backend  # noqa: E402
from minigrad.core import Tensor as _Tensor, as_tensor as _as_tensor  # noqa: E402
from minigrad.ops.conv import conv1d, conv2d, conv_transpose2d  # noqa: F401,E402
from minigrad.ops.norm import batch_norm, group_norm, layer_norm  # noqa: F401,E402
from minigrad.ops.pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d,  # noqa: F401,E402
                                  max_pool1d, max_pool2d, max_unpool2d)


def silu(x):
    """x·σ(x) (also called swish)."""
    x = _as_tensor(x)
    return x * sigmoid(x)


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by 1/(1−p), so that
    evaluation needs no rescaling. The mask comes from the seeded generator of the input's device.
    (``inplace`` is accepted for PyTorch's signature; a new tensor is always returned.)"""
    x = _as_tensor(input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    dtype = x.dtype if x.dtype.itemsize >= 4 else _backend.DEFAULT_FLOAT
    u = _backend.generator(x.device).random(x.shape, dtype=dtype)
    return x * _Tensor((u >= p).astype(x.dtype) * (1.0 / (1.0 - p)))


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, embedding_dim) picked by the integer ``input``; positions equal
    to ``padding_idx`` pass no gradient to the table."""
    w = _as_tensor(weight)
    idx = input.data if isinstance(input, _Tensor) else w.xp.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer indices, got dtype {idx.dtype}")
    if w.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {w.shape}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= w.shape[0]):
        raise IndexError(f"embedding: indices must lie in [0, {w.shape[0]}), got values in "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    y = w[idx]
    if padding_idx is None:
        return y
    is_pad = (idx == padding_idx % w.shape[0])[..., None]
    return where(is_pad, y.detach(), y)
