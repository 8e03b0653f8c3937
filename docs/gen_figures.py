"""The pictures of the docs.

    python docs/gen_figures.py                 the tour's graph pictures, drawn with mg.viz (needs Graphviz)
    python docs/gen_figures.py --runs runs     the derivation pages' figures, from full runs of the examples
    python docs/gen_figures.py --curves        the learning curves of the committed runs (docs/runs/)

The second form copies each figure a derivation page discusses from ``RUNS/<example>/`` into ``docs/img/``, shrunk
to at most 900 px and palette-coded so the committed PNG stays small. It takes only figures of full runs (a
results.json that is neither quick nor a smoke run) and says which example to run for each one missing.
"""
import argparse
import json
import sys
from pathlib import Path

import minigrad as mg
from minigrad import nn

IMG = Path(__file__).resolve().parent / "img"


# docs/img/<name>: (example, file its full run writes)
DERIVATION_FIGURES = {
    "gan-dirac-phase.png": ("gan_dirac", "dirac_phase.png"),
    "gan-dirac-radius.png": ("gan_dirac", "dirac_radius.png"),
    "gan-ring-samples.png": ("gan_ring", "ring_samples.png"),
    "gan-dcgan-samples.png": ("gan_dcgan", "dcgan_samples.png"),
    "margin-embedding-2d.png": ("margin_images", "embedding_2d.png"),
    "vae-samples-mnist.png": ("vae_cluster", "samples_mnist.png"),
    "vae-samples-fashion.png": ("vae_cluster", "samples_fashion_mnist.png"),
}


def derivation_figures(runs, max_side=900):
    """Copy the derivation pages' figures from full runs under ``runs``; returns the names still missing."""
    from PIL import Image
    missing = []
    for name, (example, fig) in DERIVATION_FIGURES.items():
        src, results = Path(runs) / example / fig, Path(runs) / example / "results.json"
        meta = json.loads(results.read_text()) if results.is_file() else {}
        if not src.is_file() or meta.get("quick") or meta.get("smoke_run"):
            missing.append(f"{name}: run `python -m examples run {example} --out {runs}` (a full run)")
            continue
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            im.quantize(colors=128).save(IMG / name, optimize=True)
        print(f"wrote {IMG / name} from {src}")
    return missing


def learning_curves(runs_dir=None, out=IMG):
    """``out``/curves-<example>.svg (default docs/img): the per-epoch curves of every committed run of the
    capsule, ClusterVAE and DCGAN experiments (docs/runs/*/results.json, or progress.json for a stopped run),
    with the seed's or the asked number as a dashed line. Returns the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    try:
        from docs.gen_results import RUNS, example_of, load_runs   # python -m docs.gen_figures
    except ImportError:
        from gen_results import RUNS, example_of, load_runs        # python docs/gen_figures.py
    runs = load_runs(runs_dir or RUNS)
    plt.rcParams["svg.hashsalt"] = "minigrad"  # stable ids: the same runs give the same file
    written = []

    def figure(name, title, ylabel, target, target_label, series):
        series = [s for s in series if s[1]]
        if not series:
            return
        fig, ax = plt.subplots(figsize=(6, 3.4))
        for label, xs, ys in series:
            ax.plot(xs, ys, marker="o", ms=3, label=label)
        ax.axhline(target, ls="--", color="grey", lw=1, label=target_label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out) / f"curves-{name}.svg"
        fig.savefig(path, metadata={"Date": None})
        plt.close(fig)
        written.append(path)

    capsule, vae, dcgan = [], {"mnist": [], "fashion_mnist": []}, []
    for run_id, res in runs.items():
        ex = example_of(run_id)
        if ex == "capsule_two_digits" and res.get("config", {}).get("n_train") == res.get("config", {}).get("of"):
            for r in res.get("runs", []) + ([res["in_progress"]] if res.get("in_progress") else []):
                c = r.get("curve", [])
                capsule.append((f"{run_id} seed {r['seed']} {r['head']}: top-2",
                                [p["epoch"] for p in c], [p["top2"] for p in c]))
                capsule.append((f"{run_id} seed {r['seed']} {r['head']}: single digit",
                                [p["epoch"] for p in c], [p["single_acc"] for p in c]))
        elif ex == "vae_cluster":
            rows = [(r["seed"], ds, r.get("curve", [])) for ds in ("mnist", "fashion_mnist") if ds in res
                    for r in res[ds]["runs"]]
            if res.get("in_progress"):
                ip = res["in_progress"]
                rows.append((ip["seed"], ip["dataset"], ip["curve"]))
            for seed, ds, c in rows:
                vae.setdefault(ds, []).append((f"{run_id}: {ds}, seed {seed}", [p["epoch"] for p in c],
                                               [p["acc_majority"] for p in c]))
        elif ex == "gan_dcgan":
            c = [p for p in res.get("log", res.get("progress", [])) if "confident_share" in p]
            dcgan.append((run_id, [p["epoch"] for p in c], [p["confident_share"] for p in c]))
    figure("capsule", "Capsules, seed protocol: two-digit top-2 and single-digit accuracy (first test images)",
           "accuracy", 0.95, "Su: ≈ 0.95 top-2 (k-means routing)", capsule)
    figure("vae", "ClusterVAE (conv), MNIST: test majority-label accuracy", "accuracy", 0.83, "Su: ≈ 0.83",
           vae["mnist"])
    figure("vae-fashion", "ClusterVAE (conv), Fashion-MNIST: test majority-label accuracy", "accuracy", 0.585,
           "Su: ≈ 0.585", vae["fashion_mnist"])
    figure("dcgan", "DCGAN: generated digits the judge labels with confidence > 0.9", "share", 0.70,
           "asked: 70 %", dcgan)
    return written


def main():
    IMG.mkdir(exist_ok=True)
    x = mg.tensor(2.0, requires_grad=True)
    x.name = "x"
    a = x * x
    mg.viz.render(a + mg.exp(a), IMG / "tour-graph.svg", format="svg")

    mg.manual_seed(0)
    layer = nn.Linear(3, 2)
    inp = mg.randn(4, 3)
    inp.name = "input"
    loss = mg.cross_entropy(layer(inp), [0, 1, 1, 0])
    loss.backward(retain_graph=True)
    mg.viz.render(loss, IMG / "tour-linear.svg", format="svg", show_grad_norms=True,
                  params=dict(layer.named_parameters()))
    print(f"wrote {IMG}/tour-graph.svg and tour-linear.svg")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", help="folder of full example runs: copy the derivation figures from there")
    ap.add_argument("--curves", action="store_true", help="draw the learning curves of the committed runs")
    a = ap.parse_args()
    if a.curves:
        for path in learning_curves():
            print(f"wrote {path}")
        sys.exit(0)
    if a.runs:
        left = derivation_figures(a.runs)
        for line in left:
            print(f"missing {line}")
        sys.exit(1 if left else 0)
    main()
