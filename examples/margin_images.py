"""Open-set image retrieval with margin losses: train on some classes, retrieve among classes never seen.

An MLP embeds images; a cosine-softmax head over the SEEN classes (default 0-6) is trained with each loss of
``minigrad.models.margin`` (softmax, AM-Softmax, A-Softmax, ArcFace). Evaluation throws the head away and ranks the
test images of the UNSEEN classes (default 7-9) by cosine similarity: every such image queries all the others
(itself excluded). Reported: top-1 (nearest neighbour of the same class), P@10 (share of the 10 nearest of
the same class) and mAP, next to raw-pixel cosine as a baseline, plus the closed-set accuracy on the seen
classes. A second run per loss with a 2-D embedding draws ``embedding_2d.png``: the features of the seen
classes spread into angular sectors around their class directions, and the margin shows as empty wedges
between them. Data: MNIST (``--dataset fashion`` for Fashion-MNIST), else the 8x8 digits (with a printed notice).
Results: docs/derivations/margin.md.
"""
import time

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.data import DatasetNotFound, load_digits, load_fashion_mnist, load_mnist
from minigrad.models.margin import MarginHead
from examples.common import output_dir, parser, predict, pyplot, save_figure, save_results

NAME = "margin_images"
DESCRIPTION = "MLP + softmax / AM-Softmax / A-Softmax / ArcFace on seen classes; retrieval among unseen classes"
HEADLINE = "a margin loss beats softmax at retrieving unseen classes"
QUICK_SHOWS_HEADLINE = True


def headline(m):
    """(shown, numbers) for the demo table: top-1 retrieval among classes never trained on."""
    top1 = {k: r["top1"] for k, r in m["losses"].items()}
    margin = max((v for k, v in top1.items() if k != "softmax"), default=0.0)
    return (margin > top1.get("softmax", 1.0),
            ", ".join(f"{k} {v:.3f}" for k, v in top1.items()) + f" (pixels {m['pixel_baseline']['top1']:.3f}; "
                                                                   f"{m['dataset']})")
LOSS_ARGS = {"softmax": {}, "am": {"m": 0.35}, "a": {"m": 4}, "arcface": {"m": 0.5}}
LOSS_NAMES = {"softmax": "softmax (cosine)", "am": "AM-Softmax", "a": "A-Softmax", "arcface": "ArcFace"}
LOADERS = {"fashion": load_fashion_mnist, "mnist": load_mnist, "digits": lambda download: load_digits()}


def load_images(dataset):
    """(name, train (X, y), test (X, y)) with X flattened to (N, pixels); falls back to digits."""
    order = [dataset] if dataset != "auto" else ["mnist", "fashion"]
    for name in order:
        try:
            d = LOADERS[name](download=True)
            break
        except DatasetNotFound as e:
            print(f"{NAME}: {name} is not available ({e}); trying the next dataset")
    else:
        name, d = "digits", load_digits()
        print(f"{NAME}: NOTICE: falling back to the small 8x8 digits dataset")
    flat = {k: (x.reshape(len(x), -1), y) for k, (x, y) in d.items()}
    return name, flat["train"], flat["test"]


class Embedder(nn.Module):
    """Pixels → 256 → 128 → dim (ReLU MLP)."""

    def __init__(self, n_in, dim, device="cpu"):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                 nn.Linear(128, dim))
        self.to(device)

    def forward(self, x):
        return self.net(x)


def embed(model, X, device):
    return predict(model, X, device, batch_size=2048).astype(np.float64)


def _unit(e):
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def retrieval(emb, y):
    """Leave-one-out cosine retrieval: top-1, P@10 and mAP over all queries."""
    e = _unit(emb)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1)[:, :-1]  # the query itself sorts last
    rel = y[order] == y[:, None]
    hits = np.cumsum(rel, axis=1)
    ap = (rel * hits / np.arange(1, rel.shape[1] + 1)).sum(1) / np.maximum(rel.sum(1), 1)
    return {"top1": float(rel[:, 0].mean()), "p@10": float(rel[:, :10].mean()), "mAP": float(ap.mean())}


def train(loss, Xtr, ytr, n_classes, dim, args, device, seed, s):
    mg.manual_seed(seed)
    model = Embedder(Xtr.shape[1], dim, device)
    head = MarginHead(dim, n_classes, loss=loss, device=device, s=s, **LOSS_ARGS[loss])
    opt = mg.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=args["lr"])
    rng = np.random.default_rng(seed)
    for epoch in range(args["epochs"]):
        order, total, n = rng.permutation(len(Xtr)), 0.0, 0
        for b in range(0, len(Xtr), args["batch_size"]):
            idx = order[b:b + args["batch_size"]]
            value = head(model(mg.tensor(Xtr[idx], device=device)), mg.tensor(ytr[idx], device=device))
            opt.zero_grad()
            value.backward()
            opt.step()
            total, n = total + value.item(), n + 1
        print(f"  [{loss}, d={dim}] epoch {epoch + 1}/{args['epochs']}  loss {total / n:.3f}", flush=True)
    return model, head


def plot_2d(panels, seen, path, per_class=400):
    """One panel per loss: seen test classes on the outer ring, unseen ones on the inner ring, both placed by
    the direction x/|x| of their 2-D embedding; lines are the directions of the class weights."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6))
    axes = np.atleast_1d(axes)
    colors = plt.get_cmap("tab10")
    rng = np.random.default_rng(0)
    for ax, (title, feats, y, weights) in zip(axes, panels):
        u = _unit(feats)
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))[:per_class]
            radius = (1.0 if c in seen else 0.62) + 0.12 * rng.random(len(idx))
            ax.scatter(*(u[idx] * radius[:, None]).T, s=3, alpha=0.6, color=colors(int(c) % 10),
                       marker="o" if c in seen else "x", label=f"{c}" if c in seen else f"{c} (unseen)")
        for c, w in zip(seen, _unit(weights)):
            ax.plot([0, 1.3 * w[0]], [0, 1.3 * w[1]], color=colors(c % 10), lw=1.2)
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlim(-1.4, 1.4)
        ax.set_ylim(-1.4, 1.4)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=3)
    fig.suptitle("2-D embeddings by direction: seen classes (outer ring, lines = class weights), "
                 "unseen classes (inner ring)")
    fig.tight_layout()
    save_figure(fig, path)


def run(device="cpu", quick=False, out_dir=None, seed=0, dataset="auto", n_seen=7, losses=None, epochs=None, **kw):
    out = output_dir(out_dir, NAME)
    args = dict(lr=1e-3, batch_size=256, epochs=6, dim=64, s=30.0, s_2d=10.0)
    if quick:
        args.update(epochs=1)
    if epochs is not None:
        args["epochs"] = int(epochs)
    args.update({k: v for k, v in kw.items() if k in args})
    losses = list(losses or LOSS_ARGS)
    name, (Xtr, ytr), (Xte, yte) = load_images("digits" if quick and dataset == "auto" else dataset)
    seen = list(range(n_seen))
    tr = np.isin(ytr, seen)
    Xtr, ytr = Xtr[tr], ytr[tr]
    if quick:
        Xtr, ytr = Xtr[:1500], ytr[:1500]
    te_seen, te_unseen = np.isin(yte, seen), ~np.isin(yte, seen)
    print(f"{NAME}: {name}; train on classes {seen} ({len(Xtr)} images), retrieve among classes "
          f"{sorted(set(yte[te_unseen].tolist()))} ({int(te_unseen.sum())} test images)")
    results = {"dataset": name, "seed": seed, "seen_classes": seen, "config": args, "losses": {},
               "pixel_baseline": retrieval(Xte[te_unseen].astype(np.float64), yte[te_unseen])}
    panels = []
    for loss in losses:
        if loss not in LOSS_ARGS:
            raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSS_ARGS)}")
        start = time.perf_counter()
        model, head = train(loss, Xtr, ytr, n_seen, args["dim"], args, device, seed, args["s"])
        emb = embed(model, Xte, device)
        closed = (_unit(emb[te_seen]) @ _unit(head.weight.numpy().astype(np.float64)).T).argmax(1)
        r = retrieval(emb[te_unseen], yte[te_unseen])
        r["closed_set_acc"] = float((closed == yte[te_seen]).mean())
        model2, head2 = train(loss, Xtr, ytr, n_seen, 2, args, device, seed, args["s_2d"])
        emb2 = embed(model2, Xte, device)
        r["retrieval_2d"] = retrieval(emb2[te_unseen], yte[te_unseen])
        r["seconds"] = round(time.perf_counter() - start, 1)
        results["losses"][loss] = r
        panels.append((LOSS_NAMES[loss], emb2, yte, head2.weight.numpy()))
    plot_2d(panels, seen, out / "embedding_2d.png")
    table = ["| model | unseen top-1 | P@10 | mAP | 2-D top-1 | seen closed-set acc |",
             "|---|---|---|---|---|---|"]
    b = results["pixel_baseline"]
    table.append(f"| raw pixels (cosine) | {b['top1']:.3f} | {b['p@10']:.3f} | {b['mAP']:.3f} | – | – |")
    for loss, r in results["losses"].items():
        table.append(f"| {LOSS_NAMES[loss]} | {r['top1']:.3f} | {r['p@10']:.3f} | {r['mAP']:.3f} | "
                     f"{r['retrieval_2d']['top1']:.3f} | {r['closed_set_acc']:.3f} |")
    print("\n".join(table))
    (out / "table.md").write_text("\n".join(table) + "\n")
    save_results(out, results)
    if losses:
        best = max(losses, key=lambda k: results["losses"][k]["mAP"])
        results.update(best_loss=best, mAP=results["losses"][best]["mAP"], top1=results["losses"][best]["top1"])
    return results


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(DESCRIPTION)
    p.add_argument("--dataset", default="auto", choices=["auto", "fashion", "mnist", "digits"])
    p.add_argument("--seen", type=int, default=7, help="classes 0..seen-1 are trained on, the rest held out")
    p.add_argument("--losses", nargs="+", default=None, choices=list(LOSS_ARGS))
    p.add_argument("--epochs", type=int, default=None)
    a = p.parse_args(argv)
    return run(device=a.device, quick=a.quick, out_dir=a.out, seed=a.seed, dataset=a.dataset, n_seen=a.seen,
               losses=a.losses, epochs=a.epochs)


if __name__ == "__main__":
    main()
