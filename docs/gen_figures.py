"""The pictures of the docs.

    python docs/gen_figures.py                 the tour's graph pictures, drawn with mg.viz (needs Graphviz)
    python docs/gen_figures.py --runs runs     the derivation pages' figures, from full runs of the examples

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
    a = ap.parse_args()
    if a.runs:
        left = derivation_figures(a.runs)
        for line in left:
            print(f"missing {line}")
        sys.exit(1 if left else 0)
    main()
