"""Pooling over 2-D windows (1-D pooling is the height-1 case).

Max pooling remembers where each window's maximum sits (a flat index into the padded input) and is then a
gather; its backward is the matching scatter, whose backward is the gather again. Max unpooling writes
values back at such positions (PyTorch's indices), and reads its gradient back from them. Average pooling is a
linear map whose adjoint spreads each gradient evenly over its window. Both pairs are closed under
differentiation, so every order of derivative exists. Adaptive average pooling is two small matmuls.
"""
import math

from minigrad import backend
from minigrad.backend import get_array_module
from minigrad.core import Function, Tensor, as_tensor, is_grad_enabled
from minigrad.ops.conv import Geometry, int_pair, single_int
from minigrad.ops.reduction import mean
from minigrad.ops.shape import reshape, squeeze, unsqueeze


def _geometry(fn, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Geometry of a pooling window; ceil_mode adds bottom/right padding for the extra window."""
    k = int_pair(kernel_size, "kernel_size", fn)
    s = k if stride is None or stride == () or stride == [] else int_pair(stride, "stride", fn)
    p, d = int_pair(padding, "padding", fn), int_pair(dilation, "dilation", fn)
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ValueError(f"{fn}: kernel_size {k}, stride {s} and dilation {d} must be positive, padding {p} >= 0")
    if any(2 * pi > ki for pi, ki in zip(p, k)):
        raise ValueError(f"{fn}: padding {p} must be at most half of kernel_size {k}")
    out, pads = [], []
    for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, d):
        span = n + 2 * pi - di * (ki - 1) - 1
        o = (-(-span // si) if ceil_mode else span // si) + 1
        if ceil_mode and (o - 1) * si >= n + pi:  # the last window must start inside the input or left pad
            o -= 1
        if o < 1:
            raise ValueError(f"{fn}: input of shape {x.shape} is smaller than the window (kernel_size {k}, "
                             f"dilation {d}, padding {p})")
        out.append(o)
        pads.append((pi, pi + max(0, (o - 1) * si + di * (ki - 1) + 1 - n - 2 * pi)))
    return Geometry(s, tuple(pads), d), k, tuple(out)


def _batched(x, fn):
    x = as_tensor(x)
    if x.ndim == 3:
        return unsqueeze(x, 0), True
    if x.ndim != 4:
        raise ValueError(f"{fn}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")
    return x, False


# ---- max pooling ------------------------------------------------------------------------------------------
def _dense(a):
    """``a`` (copied only if it has gaps) and the order of its axes in memory, slowest first."""
    order = sorted(range(a.ndim), key=lambda i: -a.strides[i])
    if not a.transpose(order).flags.c_contiguous:
        return get_array_module(a).ascontiguousarray(a), list(range(a.ndim))
    return a, order


class _Positions:
    """Where each window's maximum sits: tap number ``idx`` (N, C, Ho, Wo), turned on demand into ``pos``,
    offsets into the memory of the padded input (whose axis order ``order`` the gradient copies)."""

    def __init__(self, idx, g, khw, shape, strides, order):
        self.idx, self.g, self.khw, self.shape, self.strides, self.order = idx, g, khw, shape, strides, order
        self.overlap = any(s < d * (k - 1) + 1 for s, d, k in zip(g.stride, g.dilation, khw))
        self._pos = None

    @property
    def pos(self):
        if self._pos is None:
            xp = get_array_module(self.idx)
            n, c, ho, wo = self.idx.shape
            (kh, kw), (sh, sw), (dh, dw) = self.khw, self.g.stride, self.g.dilation
            en, ec, eh, ew = self.strides
            itype = xp.int32 if math.prod(self.shape) < 2 ** 31 else xp.int64
            taps = (xp.arange(kh).reshape(kh, 1) * (dh * eh) + xp.arange(kw) * (dw * ew)).reshape(-1)
            pos = taps.astype(itype)[self.idx]
            pos += (xp.arange(n, dtype=itype) * en).reshape(n, 1, 1, 1)
            pos += (xp.arange(c, dtype=itype) * ec).reshape(c, 1, 1)
            pos += (xp.arange(ho, dtype=itype) * (sh * eh)).reshape(ho, 1) + xp.arange(wo, dtype=itype) * (sw * ew)
            self._pos = pos
        return self._pos

    def indices(self, hw):
        """PyTorch's indices: each maximum's flat position h·W + w in its unpadded (H, W) input plane, int64."""
        xp = get_array_module(self.idx)
        _, _, ho, wo = self.idx.shape
        kw, (sh, sw), (dh, dw) = self.khw[1], self.g.stride, self.g.dilation
        (t, _), (l, _) = self.g.padding
        tap = self.idx.astype(xp.int64)
        rows = tap // kw * dh + (xp.arange(ho) * sh - t).reshape(ho, 1)
        cols = tap % kw * dw + xp.arange(wo) * sw - l
        return rows * hw[1] + cols

    def flat(self, a):
        """``a`` (shaped like the padded input) laid out in ``order`` and flattened."""
        mem = a.transpose(self.order)
        return (mem if mem.flags.c_contiguous else get_array_module(a).ascontiguousarray(mem)).reshape(-1)

    def unflat(self, flat):
        inverse = sorted(range(4), key=self.order.__getitem__)
        return flat.reshape(tuple(self.shape[i] for i in self.order)).transpose(inverse)


class MaxPool2d(Function):
    """y = max over each window, taken tap by tap over strided views. When a backward may run (``positions``)
    it remembers the first maximum of every window (as PyTorch does), found as idx = [v₀≠y]·(1 + [v₁≠y]·(1 + …)).
    With ``return_indices`` a second output holds PyTorch's indices (integers: no gradient flows through it)."""

    def __init__(self, g, khw, out_hw, positions=True, return_indices=False):
        self.g, self.khw, self.out_hw = g, khw, out_hw
        self.positions, self.return_indices = positions or return_indices, return_indices

    def forward(self, x):
        xp = get_array_module(x)
        xpad, order = _dense(self.g.pad(x, value=-math.inf))
        views = [xpad[key] for _, _, key in self.g.slices(self.khw, self.out_hw)]
        y = xp.maximum(views[0], views[1]) if len(views) > 1 else views[0].copy()
        for v in views[2:]:
            xp.maximum(y, v, out=y)
        if not self.positions:  # no backward will run: the argmax would cost as much as the max
            return y
        idx = xp.zeros(y.shape, dtype=xp.uint8 if len(views) < 256 else xp.int32)
        for v in reversed(views[:-1]):
            idx = (v != y) * (idx + 1)
        self.save_for_backward(idx)
        self.layout = xpad.shape, [s // xpad.itemsize for s in xpad.strides], order  # of the padded input
        if self.return_indices:
            return y, self.positions_of(idx).indices(x.shape[2:])
        return y

    def positions_of(self, idx):
        return _Positions(idx, self.g, self.khw, *self.layout)

    def backward(self, gy, *_):
        idx, = self.saved_tensors
        return MaxPoolScatter(self.positions_of(idx.data))(gy)

    def jvp(self, tx):
        idx = self.saved[0]
        gathered = MaxPoolGather(self.positions_of(idx.data if isinstance(idx, Tensor) else idx))(tx)
        return (gathered, None) if self.return_indices else gathered  # the tangent at each window's first maximum


class MaxPoolGather(Function):
    """x at the remembered argmax positions (max pooling with the winners fixed)."""

    def __init__(self, at):
        self.at = at

    def forward(self, x):
        return get_array_module(x).take(self.at.flat(self.at.g.pad(x)), self.at.pos)

    def backward(self, gy):
        return MaxPoolScatter(self.at)(gy)

    def jvp(self, tx):
        return MaxPoolGather(self.at)(tx)


class MaxPoolScatter(Function):
    """Each window's gradient sent to its argmax pixel (summed where windows overlap): max pooling's backward."""

    def __init__(self, at):
        self.at = at

    def forward(self, gy):
        xp, at = get_array_module(gy), self.at
        size = math.prod(at.shape)
        if at.overlap:  # several windows may pick one pixel: bincount adds them up
            out = xp.bincount(at.pos.reshape(-1), weights=gy.reshape(-1), minlength=size).astype(gy.dtype)
        else:
            out = xp.zeros(size, dtype=gy.dtype)
            out[at.pos] = gy
        return at.g.crop(at.unflat(out))

    def backward(self, ggx):
        return MaxPoolGather(self.at)(ggx)

    def jvp(self, tgy):
        return MaxPoolScatter(self.at)(tgy)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over ``kernel_size`` windows of ``input`` (N, C, H, W); padding counts as −∞. With
    ``return_indices``, also where each maximum sits: int64 flat indices h·W + w into its input plane."""
    x, unbatched = _batched(input, "max_pool2d")
    g, k, out = _geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    backward = x.requires_grad and is_grad_enabled()
    pool = MaxPool2d(g, k, out, backward or x._fw is not None, return_indices)  # _fw: forward mode
    if not return_indices:
        y = pool(x)
        return squeeze(y, 0) if unbatched else y
    y, indices = pool(x)
    return (squeeze(y, 0), Tensor(indices.data[0])) if unbatched else (y, indices)


class MaxUnpool2d(Function):
    """Zeros with each value of x written at its position ``pos`` (flat, in the whole output): the placement
    that max pooling's indices describe. Backward reads the gradient back at ``pos`` (a differentiable gather),
    so where several inputs name one position each gets that position's gradient, as in PyTorch."""

    def __init__(self, pos, shape):
        self.pos, self.shape = pos, shape

    def forward(self, x):
        out = get_array_module(x).zeros(math.prod(self.shape), dtype=x.dtype)
        out[self.pos] = x
        return out.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, (-1,))[self.pos]

    def jvp(self, tx):
        return MaxUnpool2d(self.pos, self.shape)(tx)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of ``max_pool2d``: each value of ``input`` goes to the place ``indices`` (as
    returned by ``max_pool2d(..., return_indices=True)``) names in its output plane, all else is zero. The
    output is (H−1)·stride − 2·padding + kernel_size high (and wide) unless ``output_size`` says otherwise."""
    x, unbatched = _batched(input, "max_unpool2d")
    idx = indices.data if isinstance(indices, Tensor) else indices
    idx = backend.to_device(idx, x.device)[None] if unbatched else backend.to_device(idx, x.device)
    if idx.shape != x.shape or idx.dtype.kind not in "iu":
        raise ValueError(f"max_unpool2d: indices must be integers of the input's shape {x.shape}, got "
                         f"{idx.dtype} of shape {idx.shape}")
    k = int_pair(kernel_size, "kernel_size", "max_unpool2d")
    s = k if stride is None else int_pair(stride, "stride", "max_unpool2d")
    p = int_pair(padding, "padding", "max_unpool2d")
    hw = tuple((n - 1) * si - 2 * pi + ki for n, si, pi, ki in zip(x.shape[2:], s, p, k))
    if output_size is not None:
        size = tuple(output_size)[-2:]
        if len(size) != 2 or any(not d - si < o < d + si for o, d, si in zip(size, hw, s)):
            raise ValueError(f"max_unpool2d: output_size {tuple(output_size)} must end with a size strictly "
                             f"within stride {s} of the default {hw}")
        hw = size
    plane = hw[0] * hw[1]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= plane):
        raise IndexError(f"max_unpool2d: indices must lie in [0, {plane}) for output planes {hw}, got values in "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    n, c = x.shape[:2]
    pos = idx.astype("int64") + (get_array_module(idx).arange(n * c, dtype="int64") * plane).reshape(n, c, 1, 1)
    y = MaxUnpool2d(pos, (n, c) + hw)(x)
    return squeeze(y, 0) if unbatched else y


# ---- average pooling ------------------------------------------------------------------------------------
def _window_sum(xpad, g, khw, out_hw):
    """Σ over each window, one strided slice per kernel tap."""
    y = None
    for _, _, key in g.slices(khw, out_hw):
        if y is None:
            y = xpad[key].copy()
        else:
            y += xpad[key]
    return y


def _spread(gy, g, khw, hw):
    """Adjoint of ``_window_sum``: every output's value added over its window of a (cropped) image."""
    (t, b), (l, r) = g.padding
    img = get_array_module(gy).zeros(gy.shape[:2] + (hw[0] + t + b, hw[1] + l + r), dtype=gy.dtype)
    for _, _, key in g.slices(khw, gy.shape[2:]):
        img[key] += gy
    return g.crop(img)


class AvgPool2d(Function):
    """y = (Σ over the window) / divisor; ``divisor`` is a number or an (Ho, Wo) array."""

    def __init__(self, g, khw, out_hw, hw, divisor):
        self.args = (g, khw, out_hw, hw, divisor)

    def forward(self, x):
        g, khw, out_hw, _, divisor = self.args
        return _window_sum(g.pad(x), g, khw, out_hw) / _divisor(divisor, x)

    def backward(self, gy):
        return AvgPool2dAdjoint(*self.args)(gy)

    def jvp(self, tx):
        return AvgPool2d(*self.args)(tx)


class AvgPool2dAdjoint(Function):
    """The backward of average pooling: gy / divisor spread evenly over each window."""

    def __init__(self, g, khw, out_hw, hw, divisor):
        self.args = (g, khw, out_hw, hw, divisor)

    def forward(self, gy):
        g, khw, _, hw, divisor = self.args
        return _spread(gy / _divisor(divisor, gy), g, khw, hw)

    def backward(self, ggx):
        return AvgPool2d(*self.args)(ggx)

    def jvp(self, tgy):
        return AvgPool2dAdjoint(*self.args)(tgy)


def _divisor(divisor, like):
    return divisor if isinstance(divisor, (int, float)) else divisor.astype(like.dtype, copy=False)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over ``kernel_size`` windows. Zero padding counts in the mean when ``count_include_pad``; the
    window part that ``ceil_mode`` adds past the padding never does (PyTorch's rule)."""
    x, unbatched = _batched(input, "avg_pool2d")
    g, k, out = _geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    (t, b), (l, r) = g.padding
    if divisor_override is not None:
        divisor = float(divisor_override)
    elif (b == t and r == l) and (count_include_pad or t == l == 0):
        divisor = float(k[0] * k[1])
    else:  # count, for each window, the pixels that may be counted
        h, w = x.shape[2:]
        ph, pw = (t, l) if count_include_pad else (0, 0)
        mask = get_array_module(x.data).zeros((1, 1, h + t + b, w + l + r))
        mask[:, :, t - ph:t + h + ph, l - pw:l + w + pw] = 1
        divisor = _window_sum(mask, g, k, out)[0, 0]
    y = AvgPool2d(g, k, out, x.shape[2:], divisor)(x)
    return squeeze(y, 0) if unbatched else y


def _adaptive_matrix(n, m, like):
    """(m, n) matrix averaging PyTorch's adaptive bins: bin i covers [⌊i·n/m⌋, ⌈(i+1)·n/m⌉)."""
    xp = get_array_module(like)
    a = xp.zeros((m, n), dtype=like.dtype)
    for i in range(m):
        lo, hi = (i * n) // m, -(-((i + 1) * n) // m)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (an int, a pair, None keeps that side)."""
    x, unbatched = _batched(input, "adaptive_avg_pool2d")
    size = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    (h, w) = x.shape[2:]
    oh, ow = (h if size[0] is None else size[0]), (w if size[1] is None else size[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size!r}")
    if (oh, ow) == (1, 1):
        y = mean(x, (2, 3), keepdims=True)
    elif h % oh == 0 and w % ow == 0:
        y = avg_pool2d(x, (h // oh, w // ow))
    else:
        n, c = x.shape[:2]
        y = reshape(reshape(x, (-1, w)) @ Tensor(_adaptive_matrix(w, ow, x.data).T), (n, c, h, ow))
        y = Tensor(_adaptive_matrix(h, oh, x.data)) @ y
    return squeeze(y, 0) if unbatched else y


# ---- 1-D pooling: the height-1 case ----------------------------------------------------------------------
def _as_2d(fn, input):
    x = as_tensor(input)
    if x.ndim not in (2, 3):
        raise ValueError(f"{fn}: input must be 3-D (N, C, L) or 2-D (C, L), got shape {x.shape}")
    return unsqueeze(x, -2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    x = _as_2d("max_pool1d", input)
    stride = None if stride is None else (1, single_int(stride, "stride", "max_pool1d"))
    y = max_pool2d(x, (1, single_int(kernel_size, "kernel_size", "max_pool1d")), stride,
                   (0, single_int(padding, "padding", "max_pool1d")),
                   (1, single_int(dilation, "dilation", "max_pool1d")), ceil_mode, return_indices)
    return (squeeze(y[0], -2), Tensor(y[1].data.squeeze(-2))) if return_indices else squeeze(y, -2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    x = _as_2d("avg_pool1d", input)
    stride = None if stride is None else (1, single_int(stride, "stride", "avg_pool1d"))
    y = avg_pool2d(x, (1, single_int(kernel_size, "kernel_size", "avg_pool1d")), stride,
                   (0, single_int(padding, "padding", "avg_pool1d")), ceil_mode, count_include_pad)
    return squeeze(y, -2)


def adaptive_avg_pool1d(input, output_size):
    x = _as_2d("adaptive_avg_pool1d", input)
    return squeeze(adaptive_avg_pool2d(x, (1, single_int(output_size, "output_size", "adaptive_avg_pool1d"))), -2)
