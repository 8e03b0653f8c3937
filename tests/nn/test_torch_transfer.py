"""Every layer against PyTorch: same state_dict names and shapes, weights copied over, then equal outputs,
input gradients, parameter gradients and buffers (float64, so the tolerances are tight)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.testing import torch_or_skip
from minigrad import nn

# (minigrad constructor, torch constructor name, args, kwargs, input shape)
LAYERS = [
    (nn.Linear, "Linear", (5, 3), {}, (4, 5)),
    (nn.Linear, "Linear", (5, 3), {"bias": False}, (2, 3, 5)),
    (nn.Conv1d, "Conv1d", (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2}, (2, 4, 9)),
    (nn.Conv1d, "Conv1d", (3, 4, 3), {"padding": "same", "dilation": 2}, (2, 3, 8)),
    (nn.Conv1d, "Conv1d", (3, 4, 2), {}, (3, 7)),
    (nn.Conv2d, "Conv2d", (4, 6, 3), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}, (2, 4, 9, 8)),
    (nn.Conv2d, "Conv2d", (3, 4, (2, 3)), {"bias": False, "stride": (1, 2)}, (2, 3, 6, 7)),
    (nn.Conv2d, "Conv2d", (3, 4, 4), {"padding": "same"}, (2, 3, 6, 5)),
    (nn.Conv2d, "Conv2d", (3, 2, 3), {"padding": (0, 2)}, (3, 5, 5)),
    (nn.ConvTranspose2d, "ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1,
                                                        "groups": 2}, (2, 4, 4, 5)),
    (nn.ConvTranspose2d, "ConvTranspose2d", (3, 2, (2, 3)), {"stride": (2, 1), "dilation": 2, "bias": False},
     (2, 3, 3, 4)),
    (nn.MaxPool2d, "MaxPool2d", (2,), {}, (2, 3, 6, 8)),
    (nn.MaxPool2d, "MaxPool2d", (3, 2, 1), {"ceil_mode": True}, (2, 3, 8, 7)),
    (nn.MaxPool2d, "MaxPool2d", (2, 1), {"dilation": 2}, (2, 2, 5, 6)),
    (nn.MaxPool2d, "MaxPool2d", ((3, 2), (2, 1), (1, 0)), {}, (3, 7, 6)),
    (nn.MaxPool1d, "MaxPool1d", (3, 2, 1), {}, (2, 3, 9)),
    (nn.AvgPool2d, "AvgPool2d", (2,), {}, (2, 3, 6, 8)),
    (nn.AvgPool2d, "AvgPool2d", (3, 2, 1), {"ceil_mode": True, "count_include_pad": False}, (2, 3, 8, 7)),
    (nn.AvgPool2d, "AvgPool2d", (3, 2, 1), {"ceil_mode": True}, (2, 3, 8, 7)),
    (nn.AvgPool2d, "AvgPool2d", (3, 2, 1), {"divisor_override": 2}, (2, 3, 7, 7)),
    (nn.AvgPool1d, "AvgPool1d", (3, 2, 1), {}, (2, 3, 9)),
    (nn.AdaptiveAvgPool2d, "AdaptiveAvgPool2d", ((1, 1),), {}, (2, 3, 5, 7)),
    (nn.AdaptiveAvgPool2d, "AdaptiveAvgPool2d", ((3, 5),), {}, (2, 3, 7, 8)),
    (nn.AdaptiveAvgPool2d, "AdaptiveAvgPool2d", ((None, 2),), {}, (2, 3, 5, 4)),
    (nn.AdaptiveAvgPool1d, "AdaptiveAvgPool1d", (3,), {}, (2, 3, 7)),
    (nn.LayerNorm, "LayerNorm", ((3, 4),), {}, (2, 5, 3, 4)),
    (nn.LayerNorm, "LayerNorm", (4,), {"elementwise_affine": False}, (3, 4)),
    (nn.LayerNorm, "LayerNorm", (4,), {"bias": False, "eps": 1e-3}, (3, 4)),
    (nn.GroupNorm, "GroupNorm", (3, 6), {}, (2, 6, 4, 3)),
    (nn.GroupNorm, "GroupNorm", (1, 4), {"eps": 1e-3}, (3, 4, 5)),
    (nn.GroupNorm, "GroupNorm", (4, 4), {"affine": False}, (2, 4, 3)),
    (nn.BatchNorm1d, "BatchNorm1d", (3,), {}, (6, 3)),
    (nn.BatchNorm1d, "BatchNorm1d", (3,), {"momentum": None}, (4, 3, 5)),
    (nn.BatchNorm1d, "BatchNorm1d", (3,), {"affine": False, "track_running_stats": False}, (4, 3, 5)),
    (nn.BatchNorm2d, "BatchNorm2d", (3,), {"momentum": 0.3, "eps": 1e-3}, (4, 3, 5, 2)),
    (nn.Dropout, "Dropout", (0.3,), {}, (4, 5)),
    (nn.Flatten, "Flatten", (), {}, (2, 3, 4, 5)),
    (nn.Flatten, "Flatten", (0, 1), {}, (2, 3, 4)),
    (nn.Unflatten, "Unflatten", (1, (2, 3)), {}, (4, 6, 5)),
    (nn.Identity, "Identity", (), {}, (3, 4)),
    (nn.ReLU, "ReLU", (), {}, (3, 4)),
    (nn.LeakyReLU, "LeakyReLU", (0.2,), {}, (3, 4)),
    (nn.ELU, "ELU", (0.7,), {}, (3, 4)),
    (nn.GELU, "GELU", (), {}, (3, 4)),
    (nn.GELU, "GELU", (), {"approximate": "tanh"}, (3, 4)),
    (nn.SiLU, "SiLU", (), {}, (3, 4)),
    (nn.Sigmoid, "Sigmoid", (), {}, (3, 4)),
    (nn.Tanh, "Tanh", (), {}, (3, 4)),
    (nn.Softplus, "Softplus", (), {"beta": 2.0, "threshold": 3.0}, (3, 4)),
    (nn.Softmax, "Softmax", (), {"dim": 1}, (2, 3, 4)),
    (nn.LogSoftmax, "LogSoftmax", (), {"dim": -1}, (2, 3, 4)),
]


def _ids():
    return [f"{t}{a}{k}" for _, t, a, k, _ in LAYERS]


def _twins(torch, ctor, tname, args, kwargs, train):
    ours = ctor(*args, **kwargs).to(dtype="float64").train(train)
    theirs = getattr(torch.nn, tname)(*args, **kwargs).double().train(train)
    state = theirs.state_dict()
    assert list(ours.state_dict()) == list(state) or set(ours.state_dict()) == set(state), \
        f"state_dict names differ: {list(ours.state_dict())} vs {list(state)}"
    for k, v in state.items():
        assert tuple(ours.state_dict()[k].shape) == tuple(v.shape), k
    if any(v.dtype.is_floating_point for v in state.values()):
        with torch.no_grad():  # make every parameter and buffer non-trivial, then copy them over
            for k, v in state.items():
                if v.dtype.is_floating_point:
                    v.copy_(torch.rand_like(v) + 0.5 if "var" in k else torch.randn_like(v))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _compare(torch, ours, theirs, x, atol=1e-10):
    rng = np.random.default_rng(5)
    xm = mg.tensor(x, dtype="float64", requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(xm), theirs(xt)
    assert y.shape == tuple(yt.shape) and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), atol=atol, rtol=1e-7)
    gy = rng.standard_normal(y.shape)
    (y * mg.tensor(gy, dtype="float64")).sum().backward()
    (yt * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=atol, rtol=1e-7)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), atol=atol, rtol=1e-7,
                                   err_msg=f"gradient of {name}")
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k].numpy(), v.numpy(), atol=atol, rtol=1e-7,
                                   err_msg=f"state {k} after a forward")


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("ctor,tname,args,kwargs,shape", LAYERS, ids=_ids())
def test_layer_matches_torch(ctor, tname, args, kwargs, shape):
    torch = torch_or_skip()
    for train in (True, False):
        if tname == "Dropout" and train:
            continue  # random masks differ; train mode is tested against its own definition
        ours, theirs = _twins(torch, ctor, tname, args, kwargs, train)
        x = np.random.default_rng(0).standard_normal(shape)
        _compare(torch, ours, theirs, x)
        if tname.startswith("BatchNorm"):  # a second step moves the running statistics further
            _compare(torch, ours, theirs, x * 2 + 1)


def test_embedding_matches_torch_with_padding_idx():
    torch = torch_or_skip()
    ours = nn.Embedding(10, 4, padding_idx=-1).to(dtype="float64")
    theirs = torch.nn.Embedding(10, 4, padding_idx=-1).double()
    assert ours.padding_idx == theirs.padding_idx == 9
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    idx = np.array([[1, 9, 3], [3, 3, 9]])
    y, yt = ours(mg.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy())
    gy = np.random.default_rng(0).standard_normal(y.shape)
    (y * mg.tensor(gy, dtype="float64")).sum().backward()
    (yt * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), atol=1e-12)


def test_small_cnn_matches_torch_in_float32():
    """A whole conv net (float32, PyTorch's layout), one loss and every parameter gradient."""
    torch = torch_or_skip()

    def build(m):
        return m.Sequential(m.Conv2d(1, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2),
                            m.Conv2d(4, 6, 3, stride=2), m.Tanh(), m.AdaptiveAvgPool2d(1), m.Flatten(),
                            m.Dropout(0.5), m.Linear(6, 3))
    ours, theirs = build(nn), build(torch.nn)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(0).random((5, 1, 12, 12), dtype=np.float32)
    y, yt = ours(mg.tensor(x)), theirs(torch.tensor(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), atol=1e-5)
    target = np.array([0, 1, 2, 1, 0])
    mg.cross_entropy(y, mg.tensor(target)).backward()
    torch.nn.functional.cross_entropy(yt, torch.tensor(target)).backward()
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), atol=1e-5, err_msg=name)
