"""Convolutions by im2col: copy every receptive field into a column, then one batched matmul.

Outputs are (N, C, H, W) views of channel-major (C, N, H, W) memory, what the matmul produces: the next
layer's im2col and the backward's reshapes of such arrays are then cheap or free.
Three Functions close the circle of derivatives (derivation: docs/derivations/conv.md):
``Conv2d`` (y = w ⋆ x), its adjoint in x ``ConvTranspose2d`` (col2im of wᵀ·gy), and ``Conv2dGradW``
(Σ gy·colsᵀ). Each one's backward is written with the other two, so every order of derivative exists.
Conv1d is Conv2d on a height-1 image.
"""
from minigrad.backend import get_array_module
from minigrad.core import Function, as_tensor
from minigrad.ops.shape import add_tangents, reshape, squeeze, unsqueeze


def int_pair(v, name, fn, low=None):
    """``v`` as a pair of ints (an int means the same on both sides); with ``low``, each at least ``low`` (stride
    and dilation: 1). ``name`` and ``fn`` word the error."""
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or not all(isinstance(a, int) for a in v):
        raise ValueError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}")
    if low is not None and min(v) < low:
        raise ValueError(f"{fn}: {name} must be >= {low}, got {v!r}")
    return v


class Geometry:
    """Stride, padding ((top, bottom), (left, right)), dilation and groups of a 2-D sliding window."""

    def __init__(self, stride, padding, dilation, groups=1):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def out_size(self, hw, khw):
        return tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                     for n, (lo, hi), d, k, s in zip(hw, self.padding, self.dilation, khw, self.stride))

    def pad(self, x, value=0):
        """x with its padding added (x itself when there is none), stored channel-major."""
        (t, b), (l, r) = self.padding
        if not (t or b or l or r):
            return x
        xp = get_array_module(x)
        n, c, h, w = x.shape
        out = xp.full((c, n, h + t + b, w + l + r), value, dtype=x.dtype).transpose(1, 0, 2, 3)
        out[:, :, t:t + h, l:l + w] = x
        return out

    def slices(self, khw, out_hw):
        """For each kernel tap (i, j): the index of the pixels it touches in the padded image."""
        (kh, kw), (ho, wo), (sh, sw), (dh, dw) = khw, out_hw, self.stride, self.dilation
        for i in range(kh):
            for j in range(kw):
                yield i, j, (Ellipsis, slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                             slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))

    def windows(self, xpad, khw, out_hw):
        """A strided view (N, C, kh, kw, Ho, Wo) of every receptive field: no copy."""
        xp = get_array_module(xpad)
        s0, s1, s2, s3 = xpad.strides
        (sh, sw), (dh, dw) = self.stride, self.dilation
        return xp.lib.stride_tricks.as_strided(xpad, xpad.shape[:2] + tuple(khw) + tuple(out_hw),
                                               (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw))

    def crop(self, img):
        (t, b), (l, r) = self.padding
        return img[:, :, t:img.shape[2] - b, l:img.shape[3] - r]


def im2col(x, khw, g, out_hw=None):
    """Columns (groups, C/groups·kh·kw, N·Ho·Wo): each receptive field of the batch as one column, in one copy
    of the strided window view. Channel-major, so a convolution is one matmul per group. ``out_hw`` may
    keep fewer windows than fit (a transposed conv's output_padding can leave rows no input reaches)."""
    out_hw = g.out_size(x.shape[2:], khw) if out_hw is None else tuple(out_hw)
    win = g.windows(g.pad(x), khw, out_hw)
    cols = win.transpose(1, 2, 3, 0, 4, 5).reshape(g.groups, x.shape[1] // g.groups * khw[0] * khw[1], -1)
    return cols, out_hw


def col2im(cols, hw, g):
    """The adjoint of im2col: add columns (C, kh, kw, N, Ho, Wo) back onto the image, giving (N, C, H, W)
    (stored channel-major, like a convolution's output)."""
    xp = get_array_module(cols)
    (t, b), (l, r) = g.padding
    c, kh, kw, n, ho, wo = cols.shape
    img = xp.zeros((c, n, hw[0] + t + b, hw[1] + l + r), dtype=cols.dtype)
    for i, j, key in g.slices((kh, kw), (ho, wo)):
        img[key] += cols[:, i, j]
    return g.crop(img).transpose(1, 0, 2, 3)


def _channel_major(a, groups):
    """(N, C, H, W) -> (groups, C/groups, N·H·W)."""
    n, c = a.shape[:2]
    return a.transpose(1, 0, 2, 3).reshape(groups, c // groups, -1)


# ---- argument checks shared by the functions users call (PyTorch's torch.nn.functional signatures) ----------
def _padding(padding, khw, dilation, stride, fn):
    """PyTorch's padding spellings: int, pair, 'valid', or 'same' (stride 1; extra pixel at the end)."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{fn}: padding='same' needs stride 1, got stride={stride}")
        total = [d * (k - 1) for d, k in zip(dilation, khw)]
        return tuple((t // 2, t - t // 2) for t in total)
    ph, pw = int_pair(padding, "padding", fn)
    if ph < 0 or pw < 0:
        raise ValueError(f"{fn}: padding must be non-negative, got {padding!r}")
    return ((ph, ph), (pw, pw))


def _check(fn, x, w, groups, transposed=False):
    if x.ndim != 4:
        raise ValueError(f"{fn}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        layout = ("(in_channels, out_channels/groups, kH, kW)" if transposed
                  else "(out_channels, in_channels/groups, kH, kW)")
        raise ValueError(f"{fn}: weight must be 4-D {layout}, got shape {w.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"{fn}: input dtype {x.dtype} differs from weight dtype {w.dtype}; cast one of them")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    cin = w.shape[0] if transposed else w.shape[1] * groups
    if x.shape[1] != cin:
        raise ValueError(f"{fn}: input has {x.shape[1]} channels (shape {x.shape}) but weight of shape {w.shape} "
                         f"with groups={groups} expects {cin}")
    if w.shape[0] % groups or x.shape[1] % groups:
        raise ValueError(f"{fn}: channels ({x.shape[1]} in, weight {w.shape}) must divide by groups={groups}")


def _unbatched(x, ndim):
    """``x`` with a batch axis (added when it has ``ndim`` − 1 axes), and whether one was added."""
    x = as_tensor(x)
    if x.ndim == ndim - 1:
        return unsqueeze(x, 0), True
    return x, False


def _add_bias(y, bias, fn):
    if bias is None:
        return y
    bias = as_tensor(bias, y)
    if bias.shape != (y.shape[1],):
        raise ValueError(f"{fn}: bias must have shape ({y.shape[1]},) (one per output channel), got {bias.shape}")
    return y + reshape(bias, (1, -1) + (1,) * (y.ndim - 2))


def single_int(v, name, fn, low=None):
    """``v`` as one int (a 1-tuple is unpacked), with ``low`` at least ``low``; ``name`` and ``fn`` word the
    error."""
    v = v if isinstance(v, int) else (v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v)
    if not isinstance(v, int):
        raise ValueError(f"{fn}: {name} must be an int, got {v!r}")
    if low is not None and v < low:
        raise ValueError(f"{fn}: {name} must be >= {low}, got {v!r}")
    return v


class Conv2d(Function):
    """y[n,o] = Σ_{c,i,j} w[o,c,i,j] x[n,c,s·h+d·i, s·w+d·j]: im2col, then w (O, K) @ cols (K, N·L)."""

    def __init__(self, g, out_hw=None):
        self.g, self.out_hw = g, out_hw

    def forward(self, x, w):
        o, _, kh, kw = w.shape
        cols, (ho, wo) = im2col(x, (kh, kw), self.g, self.out_hw)
        need_x, need_w = self.needs_input_grad
        # bilinear: each input is read only for the other's gradient; the columns, kh·kw copies of x, only for w's
        self.save_for_backward(x if need_w else None, w if need_x else None, cols if need_w else None)
        self.x_hw, self.khw = x.shape[2:], (kh, kw)
        y = get_array_module(x).matmul(w.reshape(self.g.groups, o // self.g.groups, -1), cols)
        return y.reshape(o, x.shape[0], ho, wo).transpose(1, 0, 2, 3)

    def backward(self, gy):
        x, w, cols = self.saved_tensors
        need_x, need_w = self.needs_input_grad
        gx = ConvTranspose2d(self.g, self.x_hw)(gy, w) if need_x else None
        gw = Conv2dGradW(self.g, self.khw, cols.data)(x, gy) if need_w else None
        return gx, gw

    def jvp(self, tx, tw):
        x, w = self.inputs
        return add_tangents(None if tx is None else Conv2d(self.g, self.out_hw)(tx, w),
                            None if tw is None else Conv2d(self.g, self.out_hw)(x, tw))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of ``input`` (N, C, H, W) with ``weight`` (O, C/groups, kH, kW), plus ``bias``."""
    x, unbatched = _unbatched(input, 4)
    w = as_tensor(weight)
    _check("conv2d", x, w, groups)
    stride, dilation = int_pair(stride, "stride", "conv2d", 1), int_pair(dilation, "dilation", "conv2d", 1)
    g = Geometry(stride, _padding(padding, w.shape[2:], dilation, stride, "conv2d"), dilation, groups)
    ho, wo = g.out_size(x.shape[2:], w.shape[2:])
    if ho < 1 or wo < 1:
        raise ValueError(f"conv2d: input of shape {x.shape} is smaller than the kernel {w.shape[2:]} "
                         f"(dilation {dilation}, padding {padding})")
    y = _add_bias(Conv2d(g)(x, w), bias, "conv2d")
    return squeeze(y, 0) if unbatched else y


class ConvTranspose2d(Function):
    """The adjoint of Conv2d in its input: cols = wᵀ @ x, then col2im onto an image of size ``hw``.
    ``w`` has the conv layout (C_x, C_y/groups, kh, kw), which is PyTorch's ConvTranspose2d layout."""

    def __init__(self, g, hw):
        self.g, self.hw = g, tuple(hw)

    def forward(self, x, w):
        need_x, need_w = self.needs_input_grad
        self.save_for_backward(x if need_w else None, w if need_x else None)  # bilinear, as Conv2d
        self.x_hw, self.khw = x.shape[2:], w.shape[2:]
        n, cin, h, wd = x.shape
        gr = self.g.groups
        _, cog, kh, kw = w.shape
        xp = get_array_module(x)
        wt = w.reshape(gr, cin // gr, cog * kh * kw).transpose(0, 2, 1)
        cols = xp.matmul(wt, _channel_major(x, gr))
        return col2im(cols.reshape(gr * cog, kh, kw, n, h, wd), self.hw, self.g)

    def backward(self, gy):
        x, w = self.saved_tensors
        need_x, need_w = self.needs_input_grad
        gx = Conv2d(self.g, self.x_hw)(gy, w) if need_x else None
        gw = Conv2dGradW(self.g, self.khw)(gy, x) if need_w else None
        return gx, gw

    def jvp(self, tx, tw):
        x, w = self.inputs
        return add_tangents(None if tx is None else ConvTranspose2d(self.g, self.hw)(tx, w),
                            None if tw is None else ConvTranspose2d(self.g, self.hw)(x, tw))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The gradient of conv2d w.r.t. its input, as a layer: ``weight`` is (C_in, C_out/groups, kH, kW) and
    H_out = (H−1)·stride − 2·padding + dilation·(kH−1) + output_padding + 1."""
    x, unbatched = _unbatched(input, 4)
    w = as_tensor(weight)
    _check("conv_transpose2d", x, w, groups, transposed=True)
    stride = int_pair(stride, "stride", "conv_transpose2d", 1)
    dilation = int_pair(dilation, "dilation", "conv_transpose2d", 1)
    padding = int_pair(padding, "padding", "conv_transpose2d", 0)
    op = int_pair(output_padding, "output_padding", "conv_transpose2d")
    if any(o >= max(s, d) or o < 0 for o, s, d in zip(op, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {op} must be smaller than stride {stride} or dilation "
                         f"{dilation}")
    hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
               for n, s, p, d, k, o in zip(x.shape[2:], stride, padding, dilation, w.shape[2:], op))
    if min(hw) < 1:
        raise ValueError(f"conv_transpose2d: padding {padding} leaves an empty output {hw} for input {x.shape}")
    g = Geometry(stride, tuple((p, p) for p in padding), dilation, groups)
    y = _add_bias(ConvTranspose2d(g, hw)(x, w), bias, "conv_transpose2d")
    return squeeze(y, 0) if unbatched else y


class Conv2dGradW(Function):
    """∂L/∂w of Conv2d: gw[o,k] = Σ_{n,l} gy[n,o,l] cols(x)[k,n,l]; bilinear in (x, gy). ``cols`` are x's
    columns when the convolution already made them (they are not kept: backward reads x and gy)."""

    def __init__(self, g, khw, cols=None):
        self.g, self.khw, self.cols = g, tuple(khw), cols

    def forward(self, x, gy):
        need_x, need_gy = self.needs_input_grad
        self.save_for_backward(x if need_gy else None, gy if need_x else None)  # bilinear, as Conv2d
        self.x_hw, self.gy_hw = x.shape[2:], gy.shape[2:]
        cols = self.cols if self.cols is not None else im2col(x, self.khw, self.g, gy.shape[2:])[0]
        self.cols = None
        gw = get_array_module(x).matmul(_channel_major(gy, self.g.groups), cols.transpose(0, 2, 1))
        return gw.reshape((gy.shape[1], x.shape[1] // self.g.groups) + self.khw)

    def backward(self, ggw):
        x, gy = self.saved_tensors
        need_x, need_gy = self.needs_input_grad
        gx = ConvTranspose2d(self.g, self.x_hw)(gy, ggw) if need_x else None
        ggy = Conv2d(self.g, self.gy_hw)(x, ggw) if need_gy else None
        return gx, ggy

    def jvp(self, tx, tgy):
        x, gy = self.inputs
        return add_tangents(None if tx is None else Conv2dGradW(self.g, self.khw)(tx, gy),
                            None if tgy is None else Conv2dGradW(self.g, self.khw)(x, tgy))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation of ``input`` (N, C, L) with ``weight`` (O, C/groups, k): conv2d with height 1."""
    x, unbatched = _unbatched(input, 3)
    w = as_tensor(weight)
    if x.ndim != 3 or w.ndim != 3:
        raise ValueError(f"conv1d: input must be 3-D (N, C, L) or 2-D (C, L) and weight 3-D (out_channels, "
                         f"in_channels/groups, k); got shapes {tuple(as_tensor(input).shape)} and {w.shape}")
    pad = padding if isinstance(padding, str) else (0, single_int(padding, "padding", "conv1d", 0))
    y = conv2d(unsqueeze(x, 2), unsqueeze(w, 2), None, (1, single_int(stride, "stride", "conv1d", 1)), pad,
               (1, single_int(dilation, "dilation", "conv1d", 1)), groups)
    y = _add_bias(squeeze(y, 2), bias, "conv1d")
    return squeeze(y, 0) if unbatched else y
