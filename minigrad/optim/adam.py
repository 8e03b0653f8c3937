"""Adam and AdamW: bias-corrected running moments of the gradient, optionally AMSGrad."""
import math

from minigrad.optim.optimizer import Optimizer, check_range, zeros_like_array


class Adam(Optimizer):
    """PyTorch's Adam. With g = ∇ + λθ (L2 ``weight_decay``, coupled to the gradient):

    m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  θ ← θ − η/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)

    (``amsgrad`` uses the running maximum of v instead of v).
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        cls = type(self).__name__
        if len(betas) != 2:
            raise ValueError(f"{cls}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_range("lr", lr, cls=cls)
        check_range("eps", eps, cls=cls)
        check_range("betas[0]", betas[0], 0.0, 1.0, cls=cls)
        check_range("betas[1]", betas[1], 0.0, 1.0, cls=cls)
        check_range("weight_decay", weight_decay, cls=cls)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _step_group(self, group):
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        b1, b2 = float(group["betas"][0]), float(group["betas"][1])
        amsgrad = group["amsgrad"]

        def new_state(x):
            state = {"step": 0, "exp_avg": zeros_like_array(x), "exp_avg_sq": zeros_like_array(x)}
            if amsgrad:
                state["max_exp_avg_sq"] = zeros_like_array(x)
            return state

        for xp, x, g, state in self._updates(group, new_state, l2=not self.decoupled):
            state["step"] = t = state["step"] + 1
            m, v = state["exp_avg"], state["exp_avg_sq"]
            if wd and self.decoupled:
                x *= 1.0 - lr * wd
            tmp = g * (1.0 - b1)  # the one scratch array of the step
            m *= b1
            m += tmp
            xp.multiply(g, g, out=tmp)
            tmp *= 1.0 - b2
            v *= b2
            v += tmp
            if amsgrad:
                v = xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            denom = xp.sqrt(v, out=tmp)
            denom *= 1.0 / math.sqrt(1.0 - b2 ** t)
            denom += eps
            step = xp.divide(m, denom, out=denom)
            step *= lr / (1.0 - b1 ** t)
            x -= step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ(1 − ηλ) before the Adam step."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
