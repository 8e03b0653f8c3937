"""PyTorch's spellings dim= / keepdim= work wherever axis= / keepdims= do, with the same result."""
import inspect

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad.models import capsule


def _public_axis_functions():
    """Every public function of minigrad, minigrad.functional and the models that takes axis or keepdims."""
    from minigrad.models import attention, crf, margin, vae  # the models with ops
    seen = {}
    for mod in (mg, F, capsule, attention, crf, margin, vae):
        for name, fn in vars(mod).items():
            if name.startswith("_") or not inspect.isfunction(fn):
                continue
            params = inspect.signature(fn).parameters
            if "axis" in params or "keepdims" in params:
                seen[f"{fn.__module__}.{fn.__qualname__}"] = fn
    return seen


FUNCTIONS = _public_axis_functions()


@pytest.mark.parametrize("qualname", sorted(FUNCTIONS))
def test_every_axis_function_takes_the_pytorch_spelling(qualname):
    fn = FUNCTIONS[qualname]
    assert hasattr(fn, "__wrapped__"), f"{qualname} takes axis/keepdims but not dim/keepdim (use @torch_names)"
    params = inspect.signature(fn).parameters
    with pytest.raises(TypeError, match=r"got both (axis= and dim=|keepdims= and keepdim=)"):
        fn(mg.ones(2, 3), **({"axis": 0, "dim": 0} if "axis" in params else {"keepdims": True, "keepdim": True}))


X = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7.0

CASES = [
    ("sum", lambda **k: mg.sum(mg.tensor(X), **k), dict(axis=1, keepdims=True)),
    ("mean", lambda **k: mg.tensor(X).mean(**k), dict(axis=-1, keepdims=True)),
    ("max", lambda **k: mg.max(mg.tensor(X), **k), dict(axis=2)),
    ("min", lambda **k: mg.tensor(X).min(**k), dict(axis=0, keepdims=True)),
    ("var", lambda **k: mg.var(mg.tensor(X), ddof=1, **k), dict(axis=1)),
    ("std", lambda **k: mg.std(mg.tensor(X), **k), dict(axis=(0, 2), keepdims=True)),
    ("logsumexp", lambda **k: mg.logsumexp(mg.tensor(X), **k), dict(axis=1)),
    ("argmax", lambda **k: mg.argmax(mg.tensor(X), **k), dict(axis=1, keepdims=True)),
    ("argmin", lambda **k: mg.tensor(X).argmin(**k), dict(axis=2)),
    ("norm", lambda **k: mg.norm(mg.tensor(X), **k), dict(axis=-1, keepdims=True)),
    ("softmax", lambda **k: F.softmax(mg.tensor(X), **k), dict(axis=0)),
    ("log_softmax", lambda **k: mg.tensor(X).log_softmax(**k), dict(axis=1)),
    ("squeeze", lambda **k: mg.squeeze(mg.tensor(X[:, :1]), **k), dict(axis=1)),
    ("unsqueeze", lambda **k: mg.tensor(X).unsqueeze(**k), dict(axis=1)),
    ("cat", lambda **k: mg.cat([mg.tensor(X), mg.tensor(X)], **k), dict(axis=2)),
    ("stack", lambda **k: mg.stack([mg.tensor(X), mg.tensor(X)], **k), dict(axis=1)),
    ("split", lambda **k: mg.split(mg.tensor(X), 2, **k)[1], dict(axis=2)),
    ("squash", lambda **k: capsule.squash(mg.tensor(X), **k), dict(axis=1)),
]


@pytest.mark.parametrize("name,call,kw", CASES, ids=[c[0] for c in CASES])
def test_dim_and_keepdim_give_what_axis_and_keepdims_give(name, call, kw):
    torch_kw = {{"axis": "dim", "keepdims": "keepdim"}[k]: v for k, v in kw.items()}
    ours, theirs = call(**kw), call(**torch_kw)
    assert ours.shape == theirs.shape and np.array_equal(ours.numpy(), theirs.numpy())
