"""Conv1d, Conv2d and ConvTranspose2d layers (weights and arguments as in PyTorch)."""
from minigrad import functional as F
from minigrad.core import as_tensor
from minigrad.nn.linear import default_init, empty_parameter
from minigrad.nn.module import Module


def _tuple(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


class _ConvNd(Module):
    """Shared set-up: weight (out, in/groups, *kernel) — (in, out/groups, *kernel) when transposed."""

    dims = 2
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, device, dtype, output_padding=0):
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels={in_channels} and out_channels={out_channels} must both "
                             f"divide by groups={groups}")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        n = self.dims
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _tuple(kernel_size, n), _tuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        self.dilation, self.groups = _tuple(dilation, n), groups
        self.output_padding, self.padding_mode = _tuple(output_padding, n), padding_mode
        shape = ((in_channels, out_channels // groups) if self.transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = empty_parameter(shape, device, dtype)
        self.register_parameter("bias", empty_parameter((out_channels,), device, dtype) if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        default_init(self.weight, self.bias)

    def _check(self, input):
        x = as_tensor(input)
        n = self.dims
        layout = "(N, C, L)" if n == 1 else "(N, C, H, W)"
        if x.ndim not in (n + 1, n + 2):
            raise ValueError(f"{type(self).__name__}: input must be {n + 2}-D {layout} or {n + 1}-D unbatched, "
                             f"got shape {x.shape}")
        if x.shape[-n - 1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}(in_channels={self.in_channels}): input has "
                             f"{x.shape[-n - 1]} channels (shape {x.shape})")
        return x

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) inputs."""

    dims = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):
        p = self.padding if isinstance(self.padding, str) else self.padding[0]
        return F.conv1d(self._check(input), self.weight, self.bias, self.stride[0], p, self.dilation[0],
                        self.groups)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) inputs."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):
        return F.conv2d(self._check(input), self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """The transpose (gradient) of a Conv2d as a layer: upsamples by ``stride``.
    H_out = (H−1)·stride − 2·padding + dilation·(k−1) + output_padding + 1."""

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, output_padding)
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got {padding!r}")

    def forward(self, input, output_size=None):
        x = self._check(input)
        op = self.output_padding
        if output_size is not None:
            base = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                    zip(x.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size)]
            op = tuple(int(o) - b for o, b in zip(tuple(output_size)[-2:], base))
            if any(o < 0 or o >= max(s, d) for o, s, d in zip(op, self.stride, self.dilation)):
                raise ValueError(f"ConvTranspose2d: output_size {tuple(output_size)} is not reachable from input "
                                 f"{x.shape} (sizes from {tuple(base)} up to stride - 1 more)")
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                                  self.dilation)
