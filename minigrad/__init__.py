"""minigrad: reverse-mode automatic differentiation on NumPy and CuPy arrays, small enough to read."""
from minigrad.core import (Function, Tensor, detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad,
                           set_grad_enabled)
from minigrad.creation import (arange, full, manual_seed, ones, ones_like, rand, randint, randn, tensor, zeros,
                               zeros_like)
from minigrad.ops import *  # noqa: F401,F403  (mg.exp, mg.matmul, mg.logsumexp, ...)
from minigrad import cuda, functional  # noqa: E402
from minigrad.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: E402
from minigrad.gradcheck import jacobians as gradcheck_jacobians  # noqa: E402

float32 = "float32"
float64 = "float64"
int64 = "int64"
__version__ = "0.1.0"
from minigrad import nn, optim  # noqa: E402,F401
from minigrad.io import load, save  # noqa: E402,F401
from minigrad import data, utils, viz  # noqa: E402,F401
from minigrad import forward_ad, func  # noqa: E402,F401
from minigrad import distributed  # noqa: E402,F401
