"""Learning-rate schedules: values against PyTorch's schedulers and closed forms, warm-up, saving."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.testing import torch_or_skip
from minigrad import nn, optim
from minigrad.optim import lr_scheduler as sched


def _opt(lrs=(0.1, 0.02)):
    return optim.SGD([{"params": [nn.Parameter(mg.zeros(1))], "lr": lr} for lr in lrs], lr=lrs[0], momentum=0.9)


def _torch_opt(torch, lrs=(0.1, 0.02)):
    return torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0],
                           momentum=0.9)


def _trace(s, n):
    out = [s.get_last_lr()]
    for _ in range(n):
        s.optimizer.step()
        s.step()
        out.append(s.get_last_lr())
    return np.array(out)


CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.9, total_iters=6)),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(name, kw):
    torch = torch_or_skip()
    ours = _trace(getattr(sched, name)(_opt(), **kw), 20)
    theirs = _trace(getattr(torch.optim.lr_scheduler, name)(_torch_opt(torch), **kw), 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_lambda_lr_matches_torch_and_sets_group_lr():
    torch = torch_or_skip()
    fns = [lambda t: 0.5 ** t, lambda t: 1.0 / (1 + t)]
    s = sched.LambdaLR(_opt(), fns)
    np.testing.assert_allclose(_trace(s, 6),
                               _trace(torch.optim.lr_scheduler.LambdaLR(_torch_opt(torch), fns), 6), rtol=1e-12)
    assert [g["lr"] for g in s.optimizer.param_groups] == s.get_last_lr()
    with pytest.raises(ValueError, match="lr_lambdas"):
        sched.LambdaLR(_opt(), [fns[0]])


def test_cosine_closed_form():
    s = sched.CosineAnnealingLR(_opt((1.0,)), T_max=4)
    got = _trace(s, 8)[:, 0]
    want = [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(9)]
    np.testing.assert_allclose(got, want, atol=1e-15)


def test_linear_warmup_then_constant():
    s = sched.LinearWarmup(_opt((0.4,)), warmup_steps=4)
    np.testing.assert_allclose(_trace(s, 6)[:, 0], [0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    s = sched.LinearWarmup(_opt((0.4,)), warmup_steps=2, start_factor=0.5)
    np.testing.assert_allclose(_trace(s, 3)[:, 0], [0.2, 0.3, 0.4, 0.4])


def test_linear_warmup_wrapping_cosine_matches_torch_sequential():
    torch = torch_or_skip()
    opt = _opt()
    s = sched.LinearWarmup(opt, warmup_steps=3, start_factor=0.1, after=sched.CosineAnnealingLR(opt, T_max=5))
    topt = _torch_opt(torch)
    ts = torch.optim.lr_scheduler.SequentialLR(
        topt, [torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.1, total_iters=3),
               torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=5)], milestones=[3])
    np.testing.assert_allclose(_trace(s, 10), _trace(ts, 10), rtol=1e-9, atol=1e-12)
    assert s.after.last_epoch == 7 and s.after.get_last_lr() == s.get_last_lr()
    with pytest.raises(ValueError, match="same optimizer"):
        sched.LinearWarmup(_opt(), 3, after=sched.StepLR(_opt(), 2))


def test_state_dict_round_trip_and_resume(tmp_path):
    opt = _opt()
    s = sched.LinearWarmup(opt, 2, after=sched.StepLR(opt, step_size=2, gamma=0.5))
    _trace(s, 3)
    sd = s.state_dict()
    assert sd["last_epoch"] == 3 and sd["after"]["last_epoch"] == 1
    mg.save(sd, tmp_path / "sched.mg")
    sd = mg.load(tmp_path / "sched.mg")
    rest = _trace(s, 4)
    opt2 = _opt()
    s2 = sched.LinearWarmup(opt2, 2, after=sched.StepLR(opt2, step_size=2, gamma=0.5))
    s2.load_state_dict(sd)
    assert s2.last_epoch == 3
    np.testing.assert_allclose(_trace(s2, 4)[1:], rest[1:])
    # resuming by last_epoch needs the initial_lr written by a first construction
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(_opt(), 2, last_epoch=4)
    resumed = sched.StepLR(opt2, 2, last_epoch=4)
    assert resumed.last_epoch == 5 and resumed.get_last_lr() == pytest.approx([0.1 * 0.01, 0.02 * 0.01])


def test_step_with_explicit_epoch_and_bad_arguments():
    s = sched.StepLR(_opt((1.0,)), step_size=2, gamma=0.1)
    s.step(5)
    assert s.get_last_lr() == pytest.approx([0.01])
    with pytest.raises(ValueError, match="step_size"):
        sched.StepLR(_opt(), step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        sched.CosineAnnealingLR(_opt(), T_max=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        sched.LinearWarmup(_opt(), -1)
