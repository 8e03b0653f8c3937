"""Adagrad: per-coordinate steps shrinking with the sum of squared past gradients."""
from minigrad import backend
from minigrad.optim.optimizer import Optimizer, check_range


class Adagrad(Optimizer):
    """PyTorch's Adagrad. With g = ∇ + λθ and step count t:

    s ← s + g²,  θ ← θ − η / (1 + (t−1)·lr_decay) · g / (√s + ε),  s starts at ``initial_accumulator_value``.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 maximize=False):
        for name, v in (("lr", lr), ("lr_decay", lr_decay), ("weight_decay", weight_decay),
                        ("initial_accumulator_value", initial_accumulator_value), ("eps", eps)):
            check_range(name, v, cls="Adagrad")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))

    def _step_group(self, group):
        lr, decay, eps = (float(group[k]) for k in ("lr", "lr_decay", "eps"))
        init = float(group["initial_accumulator_value"])

        def new_state(x):
            return {"step": 0, "sum": backend.get_array_module(x).full_like(x, init)}

        for xp, x, g, state in self._updates(group, new_state):
            state["step"] = t = state["step"] + 1
            s = state["sum"]
            s += g * g
            std = xp.sqrt(s)
            std += eps
            d = xp.divide(g, std, out=std)
            d *= lr / (1.0 + (t - 1) * decay)
            x -= d
