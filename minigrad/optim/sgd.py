"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay."""
from minigrad.optim.optimizer import Optimizer, check_range


class SGD(Optimizer):
    """PyTorch's SGD. With d = g + λθ (λ = ``weight_decay``):

    b ← μ b + (1 − τ) d  (b = d on the first step),  d ← d + μ b (Nesterov) or b,  θ ← θ − η d.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            check_range(name, v, cls="SGD")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _step_group(self, group):
        lr, mu, nesterov = float(group["lr"]), float(group["momentum"]), group["nesterov"]
        damp = 1.0 - float(group["dampening"])
        for _, x, g, state in self._updates(group, (lambda _: {}) if mu else None):
            if mu:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    buf *= mu
                    buf += damp * g if damp != 1.0 else g
                g = g + mu * buf if nesterov else buf
            x -= lr * g
