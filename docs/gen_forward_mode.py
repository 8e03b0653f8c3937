"""Figures and tables of forward mode, from runs: ``python -m docs.gen_forward_mode [jac] [gan]``.

jac: the cost of a full Jacobian by jacfwd vs jacrev as the number of inputs n and outputs m vary (the tour's
     chapter 8); gan: the eigenvalues of the Dirac-GAN's gradient vector field at its equilibrium, by jacfwd
     (docs/derivations/gan.md). Each writes a figure in docs/img/ and its numbers between markers in its page.
"""
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad.func import grad, jacfwd, jacrev

from benchmarks.common import splice

ROOT = Path(__file__).resolve().parent.parent

IMG = ROOT / "docs" / "img"


def _machine():
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores visible (shared with other jobs; load average {load:.1f}), "
            f"Python {platform.python_version()}, NumPy {np.__version__}, {datetime.date.today().isoformat()}")


# ---- jacfwd vs jacrev ------------------------------------------------------------------------------------------
def _net(n, m, hidden=64, seed=0):
    """f: Rⁿ → Rᵐ, f(x) = W₂ tanh(W₁ x): one pass costs about the same whatever n and m (hidden dominates)."""
    rng = np.random.default_rng(seed)
    w1 = mg.tensor(rng.standard_normal((hidden, n)) / np.sqrt(n))
    w2 = mg.tensor(rng.standard_normal((m, hidden)) / np.sqrt(hidden))
    return lambda x: w2 @ mg.tanh(w1 @ x)


def _time(fn, x, repeat=7):
    """Median process CPU time: on a shared machine wall time also counts the waits for a core."""
    fn(x)
    runs = []
    for _ in range(repeat):
        t = time.process_time()
        fn(x)
        runs.append(time.process_time() - t)
    return float(np.median(runs))


def jac():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = [1, 2, 4, 8, 16, 32, 64, 128]
    fixed = 32
    rows, series = [], {}
    for label, dims in (("n varies, m = 32", [(n, fixed) for n in sizes]),
                        ("m varies, n = 32", [(fixed, m) for m in sizes])):
        fw, rv = [], []
        for n, m in dims:
            f, x = _net(n, m), mg.tensor(np.random.default_rng(1).standard_normal(n))
            a, b = jacfwd(f)(x), jacrev(f)(x)
            assert np.allclose(a.numpy(), b.numpy(), atol=1e-12)
            fw.append(_time(jacfwd(f), x))
            rv.append(_time(jacrev(f), x))
            rows.append(f"| {n} | {m} | {fw[-1] * 1e3:.2f} | {rv[-1] * 1e3:.2f} | {fw[-1] / rv[-1]:.2f} |")
        series[label] = (fw, rv)
    crossings = {}
    for label, (fw, rv) in series.items():
        r = np.log(np.array(fw) / np.array(rv))
        k = next((i for i in range(len(r) - 1) if np.sign(r[i]) != np.sign(r[i + 1])), None)
        if k is not None:  # log-linear interpolation of the size where the two costs meet
            t = r[k] / (r[k] - r[k + 1])
            crossings[label] = float(np.exp(np.log(sizes[k]) + t * (np.log(sizes[k + 1]) - np.log(sizes[k]))))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, (label, (fw, rv)) in zip(axes, series.items()):
        ax.loglog(sizes, np.array(fw) * 1e3, "o-", label="jacfwd (one jvp per input)")
        ax.loglog(sizes, np.array(rv) * 1e3, "s-", label="jacrev (one vjp per output)")
        if label in crossings:
            ax.axvline(crossings[label], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(label.split(",")[0].split()[0] + f"   ({label.split(', ')[1]})")
        ax.set_title(label)
    axes[0].set_ylabel("CPU ms for the full Jacobian")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / "tour-jac-cost.svg")
    print(f"wrote {IMG / 'tour-jac-cost.svg'}")
    cross = "; ".join(f"{k}: the costs meet at {'n' if k.startswith('n') else 'm'} ≈ {v:.0f}"
                      for k, v in crossings.items())
    text = "\n".join([
        "| n (inputs) | m (outputs) | jacfwd CPU ms | jacrev CPU ms | jacfwd / jacrev |",
        "|---|---|---|---|---|", *rows,
        "", f"Crossing points (interpolated): {cross or 'none in the range'}.",
        "", f"Measured on {_machine()}; f(x) = W₂ tanh(W₁ x) with 64 hidden units, float64, median process CPU "
            "time of 7 runs by `python -m docs.gen_forward_mode jac`."])
    splice(ROOT / "docs/tour/8-forward-mode.md", "jaccost", text)


# ---- Dirac-GAN eigenvalues ---------------------------------------------------------------------------------------
def dirac_field(kind="minimax", r1=0.0, gp0=0.0):
    """v(θ, ψ) = (−∂L_G/∂θ, −∂L_D/∂ψ) of the Dirac-GAN as a differentiable function of z = (θ, ψ), from the
    library's composed losses and its penalties (R1 on the real point, the zero-centred GP on interpolates)."""
    from minigrad.models.gan import discriminator_loss_composed, generator_loss_composed, r1_penalty, wgan_gp_penalty
    real = mg.zeros(1, 1, dtype="float64")

    def loss_d(theta, psi):
        D = lambda x: x * psi
        loss = discriminator_loss_composed(D(real), D(theta), kind)
        if r1:
            loss = loss + r1_penalty(D, real) * (0.5 * r1)
        if gp0:
            loss = loss + wgan_gp_penalty(D, real, theta, alpha=0.5, center=0.0) * gp0
        return loss

    def loss_g(theta, psi):
        return generator_loss_composed(theta * psi, kind)

    def v(z):
        theta, psi = mg.reshape(z[0], (1, 1)), z[1]
        return mg.stack([-mg.reshape(grad(loss_g, 0)(theta, psi), ()), -grad(loss_d, 1)(theta, psi)])
    return v


GAN_SETTINGS = [
    ("vanilla (minimax)", dict(kind="minimax")),
    ("non-saturating G", dict(kind="non_saturating")),
    ("WGAN", dict(kind="wasserstein")),
    ("vanilla + R1, γ = 0.5", dict(kind="minimax", r1=0.5)),
    ("vanilla + R1, γ = 1", dict(kind="minimax", r1=1.0)),
    ("WGAN + R1, γ = 1", dict(kind="wasserstein", r1=1.0)),
    ("WGAN + zero-centred GP, λ = 1", dict(kind="wasserstein", gp0=1.0)),
]


def _fmt(ev):
    return ", ".join(f"{e.real + 0.0:+.4f} {'+' if e.imag >= 0 else '−'} {abs(e.imag):.4f}i" for e in ev)


def gan():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    z0 = mg.tensor([0.0, 0.0], dtype="float64")
    rows = []
    for name, kw in GAN_SETTINGS:
        J = jacfwd(dirac_field(**kw))(z0).numpy() + 0.0  # + 0.0: no "−0.000"
        ev = np.linalg.eigvals(J)
        rows.append(f"| {name} | {J[0, 0]:+.3f}, {J[0, 1]:+.3f}; {J[1, 0]:+.3f}, {J[1, 1]:+.3f} | {_fmt(ev)} | "
                    f"{max(ev.real) + 0.0:+.4f} |")
    gammas = np.linspace(0.0, 2.0, 21)
    locus = np.array([np.linalg.eigvals(jacfwd(dirac_field("minimax", r1=float(g)))(z0).numpy()) for g in gammas])
    locus_w = np.array([np.linalg.eigvals(jacfwd(dirac_field("wasserstein", gp0=float(g)))(z0).numpy())
                        for g in gammas])
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for arr, label, marker in ((locus, "vanilla + R1, γ ∈ [0, 2]", "o"),
                               (locus_w, "WGAN + zero-centred GP, λ ∈ [0, 2]", "s")):
        sc = ax.scatter(arr.real.ravel(), arr.imag.ravel(), c=np.repeat(gammas, 2), cmap="viridis", s=14,
                        marker=marker, label=label)
    ax.axvline(0, color="black", lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("Re μ")
    ax.set_ylabel("Im μ")
    ax.legend(fontsize=7, loc="lower left")
    fig.colorbar(sc, ax=ax, label="γ (R1) or λ (GP)")
    ax.set_title("eigenvalues of ∂v/∂(θ, ψ) at (0, 0), by jacfwd", fontsize=9)
    fig.tight_layout()
    fig.savefig(IMG / "gan-dirac-eigenvalues.svg")
    print(f"wrote {IMG / 'gan-dirac-eigenvalues.svg'}")
    text = "\n".join([
        "| setting | Jacobian rows (∂v_θ; ∂v_ψ) | eigenvalues | largest real part |", "|---|---|---|---|", *rows,
        "", f"Computed on {_machine()} by `python -m docs.gen_forward_mode gan` (float64)."])
    splice(ROOT / "docs/derivations/gan.md", "diraceig", text)


if __name__ == "__main__":
    which = sys.argv[1:] or ["jac", "gan"]
    for w in which:
        {"jac": jac, "gan": gan}[w]()
