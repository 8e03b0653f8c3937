"""RMSprop: divide the gradient by a running root mean square of past gradients."""
from minigrad.optim.optimizer import Optimizer, check_range, zeros_like_array


class RMSprop(Optimizer):
    """PyTorch's RMSprop. With g = ∇ + λθ:

    s ← αs + (1−α)g²;  centered: ḡ ← αḡ + (1−α)g, s̃ = s − ḡ²;  d = g / (√s̃ + ε);
    momentum: b ← μb + d, θ ← θ − ηb;  else θ ← θ − ηd.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        for name, v in (("lr", lr), ("alpha", alpha), ("eps", eps), ("weight_decay", weight_decay),
                        ("momentum", momentum)):
            check_range(name, v, cls="RMSprop")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _step_group(self, group):
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        mu, centered = float(group["momentum"]), group["centered"]

        def new_state(x):
            state = {"step": 0, "square_avg": zeros_like_array(x)}
            if mu > 0:
                state["momentum_buffer"] = zeros_like_array(x)
            if centered:
                state["grad_avg"] = zeros_like_array(x)
            return state

        for xp, x, g, state in self._updates(group, new_state):
            state["step"] += 1
            s = state["square_avg"]
            s *= alpha
            s += (1.0 - alpha) * (g * g)
            if centered:
                ga = state["grad_avg"]
                ga *= alpha
                ga += (1.0 - alpha) * g
                avg = s - ga * ga
                avg = xp.sqrt(avg, out=avg)
            else:
                avg = xp.sqrt(s)
            avg += eps
            d = xp.divide(g, avg, out=avg)
            if mu > 0:
                buf = state["momentum_buffer"]
                buf *= mu
                buf += d
                d = buf
            x -= lr * d
