"""Layers, containers and initialisers with PyTorch's names and shapes."""
from minigrad.nn.module import Module, ModuleList, Parameter, Sequential  # noqa: F401
from minigrad import functional  # noqa: F401
from minigrad.nn.rnn import GRU, LSTM, GRUCell, LSTMCell  # noqa: F401
from minigrad.nn import utils  # noqa: F401
from minigrad.nn import init  # noqa: F401,E402
from minigrad.nn.activation import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax,  # noqa: F401,E402
                                    Softplus, Tanh)
from minigrad.nn.conv import Conv1d, Conv2d, ConvTranspose2d  # noqa: F401,E402
from minigrad.nn.dropout import Dropout  # noqa: F401,E402
from minigrad.nn.embedding import Embedding  # noqa: F401,E402
from minigrad.nn.linear import Flatten, Identity, Linear, Unflatten  # noqa: F401,E402
from minigrad.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm  # noqa: F401,E402
from minigrad.nn.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d,  # noqa: F401,E402
                                 MaxPool1d, MaxPool2d, MaxUnpool2d)
from minigrad.nn import parallel  # noqa: F401,E402
from minigrad.nn.sync_batchnorm import SyncBatchNorm  # noqa: F401,E402
