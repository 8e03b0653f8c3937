"""An MLP GAN on a ring of 8 Gaussians: mode coverage with and without R1, weight EMA and cascading rejection.

Data: 8 Gaussians of standard deviation ``std`` on a circle of radius 2. A generated sample is *high quality* when it
lies within 3σ of its nearest mode; a mode is *covered* when at least ``cover_share`` of all samples are
high-quality samples of that mode. Every variant (models/gan.py: non-saturating loss; +R1 with γ; +EMA of the
generator's weights; +a cascading-rejection head with K scores; everything at once) is trained with the same
budget over several seeds; the table reports the mean ± std of covered modes and of the high-quality share.
"""
import time

import numpy as np

import minigrad as mg
from minigrad import optim
from minigrad.models.gan import MLPDiscriminator, MLPGenerator, train_step
from examples.common import blas_threads, output_dir, parser, pyplot, save_figure, save_results

NAME = "gan_ring"
DESCRIPTION = "MLP GAN on a ring of 8 Gaussians: mode coverage and sample quality with R1 / EMA / cascading rejection"
HEADLINE = "R1 covers more ring modes than the baseline"
QUICK_SHOWS_HEADLINE = True


def headline(m):
    """(shown, numbers) for the demo table."""
    base, r1 = m.get("modes_baseline"), m.get("modes_r1")
    shown = base is not None and r1 is not None and r1 > base
    return shown, ", ".join(f"{k[6:]} {v:g}/8" for k, v in m.items() if k.startswith("modes_")) + " modes covered"

VARIANTS = {  # name: (R1 γ, EMA, number of cascaded scores K)
    "baseline": (0.0, False, 1),
    "r1": (None, False, 1),
    "ema": (0.0, True, 1),
    "cascade": (0.0, False, None),
    "r1+cascade": (None, False, None),
    "r1+ema+cascade": (None, True, None),
}


def ring_modes(n_modes=8, radius=2.0):
    a = 2 * np.pi * np.arange(n_modes) / n_modes
    return radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def sample_ring(rng, n, std, modes):
    return (modes[rng.integers(len(modes), size=n)] + std * rng.standard_normal((n, 2))).astype(np.float32)


def evaluate(x, modes, std, cover_share):
    """High-quality share (within 3σ of the nearest mode) and the number of modes with ≥ cover_share of all samples
    as high-quality samples."""
    d = np.sqrt(((x[:, None, :] - modes[None]) ** 2).sum(-1))
    nearest, dist = d.argmin(1), d.min(1)
    hq = dist < 3 * std
    counts = np.bincount(nearest[hq], minlength=len(modes))
    return {"modes": int((counts >= cover_share * len(x)).sum()), "hq_share": float(hq.mean()),
            "per_mode": counts.tolist()}


def train_one(variant, seed, steps, std, r1_gamma, num_scores, batch, lr, n_eval, cover_share, device):
    gamma, use_ema, k = VARIANTS[variant]
    gamma = r1_gamma if gamma is None else gamma
    k = num_scores if k is None else k
    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    modes = ring_modes()
    G = MLPGenerator(latent_dim=16, out_features=2, hidden=128, depth=3).to(device)
    D = MLPDiscriminator(in_features=2, hidden=128, depth=3, num_scores=k).to(device)
    opt_g = optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    ema = optim.EMA(G, decay=0.999, warmup=True) if use_ema else None
    for step in range(steps):
        real = mg.tensor(sample_ring(rng, batch, std, modes), device=device)
        train_step(G, D, opt_g, opt_d, real, "non_saturating", r1_gamma=gamma, ema=ema)
    with mg.no_grad():
        z = mg.randn(n_eval, G.latent_dim, device=device)
        if ema is not None:
            with ema.average_parameters():
                x = G(z).numpy()
        else:
            x = G(z).numpy()
    return evaluate(x, modes, std, cover_share), x


def _plot(samples, modes, std, out_dir, seed):
    plt = pyplot()
    from matplotlib.colors import LogNorm
    fig, axes = plt.subplots(1, len(samples), figsize=(3.3 * len(samples), 3.6))
    for ax, (name, (x, m)) in zip(np.atleast_1d(axes), samples.items()):
        ax.hist2d(x[:, 0], x[:, 1], bins=150, range=[[-3, 3], [-3, 3]], norm=LogNorm(), cmap="Blues")
        for c in modes:
            ax.add_patch(plt.Circle(c, 3 * std, fill=False, color="tab:red", lw=0.8))
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        ax.set_title(f"{name}\n{m['modes']}/8 modes, {100 * m['hq_share']:.0f}% within 3σ", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"density of {len(x)} generated samples (log colour scale, seed {seed}); red circles: 3σ around the "
                 "modes", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return save_figure(fig, out_dir / "ring_samples.png")


def run(device="cpu", quick=False, out_dir=None, seed=0, seeds=3, steps=None, std=0.05, r1_gamma=0.1,
        num_scores=4, batch=256, lr=1e-3, n_eval=2500, cover_share=0.025, variants=None, plot=True):
    """Train every variant for ``seeds`` seeds (seed, seed + 1, ...) and tabulate coverage and quality."""
    out_dir = output_dir(out_dir, NAME)
    steps = steps or (600 if quick else 3000)  # 600 steps: R1 already covers modes the baseline misses
    seeds = 1 if quick else seeds
    batch, n_eval = (64, 500) if quick else (batch, n_eval)
    variants = variants or list(VARIANTS)
    modes = ring_modes()
    print(f"[{NAME}] 8 modes on a radius-2 ring, std {std}; {steps} steps of batch {batch}, Adam lr {lr}; "
          f"R1 γ = {r1_gamma}, cascade K = {num_scores}, EMA decay 0.999; a mode counts when ≥ {100 * cover_share:g}% "
          f"of {n_eval} samples are within 3σ of it")
    start = time.perf_counter()
    table, first = {}, {}
    for v in variants:
        rows = []
        for s in range(seed, seed + seeds):
            t0 = time.perf_counter()
            with blas_threads(1):  # 256×128 matrices: more BLAS threads only contend (≈10× slower on 2 cores)
                m, x = train_one(v, s, steps, std, r1_gamma, num_scores, batch, lr, n_eval, cover_share, device)
            m["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(m)
            if s == seed:
                first[v] = (x, m)
            print(f"  {v:<16} seed {s}: {m['modes']}/8 modes, {100 * m['hq_share']:5.1f}% high quality, "
                  f"per mode {m['per_mode']}  ({m['seconds']} s)")
        modes_ = np.array([r["modes"] for r in rows], dtype=float)
        hq = np.array([r["hq_share"] for r in rows])
        table[v] = {"modes_mean": float(modes_.mean()), "modes_std": float(modes_.std()),
                    "hq_mean": float(hq.mean()), "hq_std": float(hq.std()), "runs": rows}
    print(f"\n{'variant':<16} {'modes (of 8)':>14} {'high-quality %':>16}")
    for v, r in table.items():
        print(f"{v:<16} {r['modes_mean']:6.2f} ± {r['modes_std']:<5.2f} {100 * r['hq_mean']:8.1f} ± "
              f"{100 * r['hq_std']:<5.1f}")
    metrics = {"modes_" + k: r["modes_mean"] for k, r in table.items()}
    metrics.update({"hq_" + k: r["hq_mean"] for k, r in table.items()})
    metrics.update({"table": table, "steps": steps, "seeds": seeds, "std": std, "r1_gamma": r1_gamma,
                    "num_scores": num_scores, "batch": batch, "lr": lr, "cover_share": cover_share,
                    "seconds": round(time.perf_counter() - start, 1)})
    np.savez(out_dir / "ring_samples.npz", **{k: x for k, (x, _) in first.items()})
    if plot:
        metrics["figure"] = _plot(first, modes, std, out_dir, seed)
    save_results(out_dir, metrics)
    print(f"[{NAME}] done in {metrics['seconds']} s")
    return metrics


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(DESCRIPTION)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None)
    a = p.parse_args(argv)
    return run(a.device, a.quick, a.out, a.seed, seeds=a.seeds, steps=a.steps)


if __name__ == "__main__":
    main()
