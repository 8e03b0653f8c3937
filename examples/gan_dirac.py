"""GAN training as a dynamical system, on the Dirac-GAN.

Real data is a point mass at 0, the generator a point mass at θ, the discriminator D(x) = ψ·x. Each player
descends its own loss (models/gan.py), so (θ, ψ) follows the vector field v = (−∂L_G/∂θ, −∂L_D/∂ψ), computed here
by the engine (float64 tensors, ``mg.grad``; the penalties by double backprop). The unique equilibrium is (0, 0).

Simulated three ways: the ODE itself (scipy's ``solve_ivp``), simultaneous gradient steps (both players step from
the same point) and alternating steps (D first, then G against the new D), with optim.SGD; and with an
exponential moving average of the weights (optim.EMA in the discrete runs, dw̄/dt = (w − w̄)/τ in the ODE).

Settings: vanilla (minimax G loss), vanilla_ns (non-saturating G loss), wgan, wgan_gp_c1 / wgan_gp_c0
(λ(‖∇D‖ − c)² on interpolates, λ = 1; wgan_gp_c1_weak has λ = 0.1), r1 (vanilla + γ/2·‖∇D(real)‖², γ = 1), and
vanilla / wgan with weight EMA.
"""
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from minigrad.models.gan import discriminator_loss, generator_loss, r1_penalty, wgan_gp_penalty
from examples.common import output_dir, parser, pyplot, save_figure, save_results

NAME = "gan_dirac"
DESCRIPTION = "Dirac-GAN dynamics: ODE vs simultaneous/alternating steps for vanilla, WGAN, WGAN-GP, R1, EMA"
HEADLINE = "the vanilla GAN circles the equilibrium, a zero-centred gradient penalty converges"
QUICK_SHOWS_HEADLINE = True


def headline(m):
    """(shown, numbers) for the demo table: distance to (0, 0) at the end of the ODE."""
    s = m["settings"]
    return (s["wgan_gp_c0"]["ode"] < 0.5 * s["vanilla"]["ode"],
            f"distance to equilibrium at T={m['T']:g}: vanilla {s['vanilla']['ode']:.3f}, "
            f"WGAN-GP (c=0) {s['wgan_gp_c0']['ode']:.3f}, R1 {s['r1']['ode']:.3f}")

SETTINGS = {  # name: (loss kind, extra terms of D's loss, EMA)
    "vanilla": ("minimax", {}, False),
    "vanilla_ns": ("non_saturating", {}, False),
    "wgan": ("wasserstein", {}, False),
    "wgan_gp_c1": ("wasserstein", {"gp": 1.0}, False),
    "wgan_gp_c1_weak": ("wasserstein", {"gp": 0.1}, False),
    "wgan_gp_c0": ("wasserstein", {"gp0": 1.0}, False),
    "r1": ("minimax", {"r1": 1.0}, False),
    "vanilla_ema": ("minimax", {}, True),
    "wgan_ema": ("wasserstein", {}, True),
}
START = (1.0, 1.0)  # (θ, ψ) at t = 0


class DiracGAN(nn.Module):
    """The two players' parameters: θ (where the generator puts its point) and ψ (D's slope)."""

    def __init__(self, theta, psi, device="cpu"):
        super().__init__()
        self.theta = nn.Parameter(mg.tensor([[theta]], dtype="float64", device=device))
        self.psi = nn.Parameter(mg.tensor(psi, dtype="float64", device=device))

    def discriminator(self, x):
        return x * self.psi


def losses(model, kind, extra):
    """(L_D, L_G): the adversarial losses plus D's penalties. ∇ₓD = ψ everywhere, so R1 = ψ² and the
    interpolates' penalty is (|ψ| − c)²."""
    D, real, fake = model.discriminator, mg.zeros(1, 1, dtype="float64", device=model.psi.device), model.theta
    loss_d = discriminator_loss(D(real), D(fake.detach()), kind)
    if "gp" in extra:
        loss_d = loss_d + wgan_gp_penalty(D, real, fake.detach(), alpha=0.5, center=1.0) * extra["gp"]
    if "gp0" in extra:
        loss_d = loss_d + wgan_gp_penalty(D, real, fake.detach(), alpha=0.5, center=0.0) * extra["gp0"]
    if "r1" in extra:
        loss_d = loss_d + r1_penalty(D, real) * (0.5 * extra["r1"])
    return loss_d, generator_loss(D(fake), kind)


def field(model, kind, extra):
    """v(θ, ψ) = (−∂L_G/∂θ, −∂L_D/∂ψ) by the engine."""
    loss_d, loss_g = losses(model, kind, extra)
    (g_psi,) = mg.grad(loss_d, model.psi)
    (g_theta,) = mg.grad(loss_g, model.theta)
    return -g_theta.item(), -g_psi.item()


def solve_ode(kind, extra, ema_tau, T, n_points, device="cpu"):
    """The ODE by RK45 (tight tolerances); with ``ema_tau`` also the averages w̄ (dw̄/dt = (w − w̄)/τ)."""
    from scipy.integrate import solve_ivp
    model = DiracGAN(*START, device=device)

    def rhs(t, y):
        with mg.no_grad():
            model.theta.fill_(float(y[0]))
            model.psi.fill_(float(y[1]))
        vt, vp = field(model, kind, extra)
        dy = [vt, vp]
        if ema_tau:
            dy += [(y[0] - y[2]) / ema_tau, (y[1] - y[3]) / ema_tau]
        return dy

    y0 = list(START) + (list(START) if ema_tau else [])
    t_eval = np.linspace(0.0, T, n_points)
    sol = solve_ivp(rhs, (0.0, T), y0, method="RK45", rtol=1e-8, atol=1e-10, t_eval=t_eval)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    path = sol.y[:2].T
    return path, (sol.y[2:].T if ema_tau else None), sol.nfev


def discrete(kind, extra, mode, lr, steps, ema_decay, device="cpu"):
    """SGD on both players: ``simultaneous`` (both gradients at the same point) or ``alternating`` (D steps, then G
    against the new D). Returns the path (steps + 1, 2) and, with ``ema_decay``, the EMA's path."""
    model = DiracGAN(*START, device=device)
    opt_d, opt_g = optim.SGD([model.psi], lr=lr), optim.SGD([model.theta], lr=lr)
    ema = optim.EMA(model, ema_decay) if ema_decay else None
    path, avg = [START], [START]
    for _ in range(steps):
        loss_d, loss_g = losses(model, kind, extra)
        (model.psi.grad,) = mg.grad(loss_d, model.psi)
        if mode == "alternating":
            opt_d.step()
            loss_g = losses(model, kind, extra)[1]
        (model.theta.grad,) = mg.grad(loss_g, model.theta)
        if mode == "simultaneous":
            opt_d.step()
        opt_g.step()
        path.append((model.theta.item(), model.psi.item()))
        if ema is not None:
            ema.update()
            avg.append((float(ema.shadow["theta"].reshape(())), float(ema.shadow["psi"])))
    return np.array(path), (np.array(avg) if ema is not None else None)


def _radius(p):
    return np.sqrt((p ** 2).sum(-1))


def _plot(curves, radii_t, out_dir, T):
    plt = pyplot()
    names = list(curves)
    fig, axes = plt.subplots(3, 3, figsize=(13, 13.5))
    styles = {"ODE": dict(color="k", lw=1.6), "simultaneous": dict(color="tab:red", lw=0.8, alpha=0.8),
              "alternating": dict(color="tab:blue", lw=0.8, alpha=0.8),
              "ODE + EMA": dict(color="tab:green", lw=2.0), "alternating + EMA": dict(color="tab:purple", lw=1.4)}
    for ax, name in zip(axes.flat, names):
        for label, p in curves[name].items():
            ax.plot(p[:, 0], p[:, 1], label=label, **styles[label])
        ax.plot(*START, "o", color="k", ms=4)
        ax.plot(0, 0, "*", color="gold", ms=12, mec="k")
        lim = 2.2
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.set_xlabel("θ (generator)")
        ax.set_ylabel("ψ (discriminator)")
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=5)
    fig.suptitle("Dirac-GAN: (θ, ψ) from (1, 1) to t = %g; the star is the equilibrium\n"
                 "(simultaneous steps that leave the frame diverge)" % T)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    phase = save_figure(fig, out_dir / "dirac_phase.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, (t, r) in radii_t.items():
        ax.plot(t, r, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("time t")
    ax.set_ylabel("‖(θ, ψ)‖ along the ODE (the averages for *_ema)")
    ax.set_xlim(0, T)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return [phase, save_figure(fig, out_dir / "dirac_radius.png")]


def run(device="cpu", quick=False, out_dir=None, seed=0, T=None, lr=0.1, ema_tau=10.0, plot=True):
    """Simulate every setting; return final distances to the equilibrium (0, 0) for each method.
    (``seed`` is accepted for the common interface: the Dirac-GAN is deterministic.)"""
    out_dir = output_dir(out_dir, NAME)
    T = T or (5.0 if quick else 100.0)
    steps = int(round(T / lr))
    start = time.perf_counter()
    results, curves, radii_t = {}, {}, {}
    print(f"[{NAME}] start (θ, ψ) = {START}, T = {T}, SGD lr = {lr} ({steps} steps), EMA τ = {ema_tau} "
          f"(decay {1 - lr / ema_tau:.4f} per step)")
    print(f"{'setting':<16} {'ODE':>9} {'ODE r range (last 20%)':>24} {'simult.':>10} {'altern.':>9} {'EMA(ODE)':>9} "
          f"{'EMA(alt)':>9}")
    for name, (kind, extra, use_ema) in SETTINGS.items():
        tau = ema_tau if use_ema else None
        path, avg, nfev = solve_ode(kind, extra, tau, T, max(steps + 1, 200), device)
        sim, _ = discrete(kind, extra, "simultaneous", lr, steps, None, device)
        alt, alt_avg = discrete(kind, extra, "alternating", lr, steps, 1 - lr / ema_tau if use_ema else None,
                                device)
        r = _radius(path)
        tail = r[int(0.8 * len(r)):]
        res = {"ode": float(r[-1]), "ode_tail_min": float(tail.min()), "ode_tail_max": float(tail.max()),
               "simultaneous": float(_radius(sim[-1])), "alternating": float(_radius(alt[-1])), "ode_evals": nfev}
        curves[name] = {"ODE": path, "simultaneous": sim, "alternating": alt}
        t = np.linspace(0, T, len(r))
        radii_t[name] = (t, r)
        if use_ema:
            res["ode_ema"], res["alternating_ema"] = float(_radius(avg[-1])), float(_radius(alt_avg[-1]))
            curves[name].update({"ODE + EMA": avg, "alternating + EMA": alt_avg})
            radii_t[name] = (t, _radius(avg))
        results[name] = res
        e1 = f"{res['ode_ema']:9.4f}" if use_ema else f"{'':9}"
        e2 = f"{res['alternating_ema']:9.4f}" if use_ema else f"{'':9}"
        print(f"{name:<16} {res['ode']:9.4f} {res['ode_tail_min']:11.4f} .. {res['ode_tail_max']:<10.4f} "
              f"{res['simultaneous']:10.4g} {res['alternating']:9.4f} {e1} {e2}")
    metrics = {"T": T, "lr": lr, "steps": steps, "ema_tau": ema_tau, "start": list(START), "settings": results,
               "seconds": round(time.perf_counter() - start, 1)}
    if plot:
        metrics["figures"] = _plot(curves, radii_t, out_dir, T)
    save_results(out_dir, metrics)
    print(f"[{NAME}] final ‖(θ, ψ)‖ (ODE): " + ", ".join(f"{k} {v['ode']:.3g}" for k, v in results.items()) +
          f"  ({metrics['seconds']} s)")
    return metrics


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    a = parser(DESCRIPTION).parse_args(argv)
    return run(a.device, a.quick, a.out, a.seed)


if __name__ == "__main__":
    main()
