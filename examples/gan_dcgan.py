"""A small DCGAN on MNIST, trained on the CPU in a few minutes; saves a grid of generated digits.

Generator: z (64) → linear → 2c×7×7 → two stride-2 transposed convolutions with BatchNorm/ReLU → 28×28 tanh;
discriminator: two stride-2 convolutions with LeakyReLU, BatchNorm after the second → linear score
(models/gan.py, c = ``channels``); images scaled to [−1, 1]. Non-saturating loss, Adam(lr, β₁ = 0.5), an EMA of the
generator's weights. To stay within minutes on a CPU it trains on a subset (``n_train`` images) for a few epochs;
both are printed and saved.

How recognisable are the digits? A small MLP classifier (trained here on the MNIST training split, its test accuracy
printed) labels 1000 generated digits: we report how many it labels with confidence > 0.9 and how the labels
spread over the 10 classes. Without MNIST installed the 8×8 digits are used instead, with a notice.
"""
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from minigrad.models.gan import DCGANDiscriminator, DCGANGenerator, train_step
from examples.common import load_or_digits, output_dir, parser, pyplot, save_figure, save_results

NAME = "gan_dcgan"
DESCRIPTION = "DCGAN on MNIST (digits as fallback): a grid of generated digits, scored by a small classifier"
HEADLINE = "generated digits that a classifier recognises"
QUICK_SHOWS_HEADLINE = False


def headline(m):
    """(shown, numbers) for the demo table."""
    return (m["confident_share"] > 0.5 and m["classes_with_5pct"] >= 8,
            f"confidently classified samples {m['confident_share']:.3f}, classes with ≥5%: "
            f"{m['classes_with_5pct']}/10")


def train_classifier(X, y, Xte, yte, seed, epochs=2):
    """A 2-layer MLP on pixels (host-side judge of the samples); returns it and its test accuracy."""
    mg.manual_seed(seed)
    n_pix = int(np.prod(X.shape[1:]))
    clf = nn.Sequential(nn.Flatten(), nn.Linear(n_pix, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = optim.Adam(clf.parameters(), lr=1e-3)
    loader = mg.data.DataLoader((X, y), batch_size=128, shuffle=True, seed=seed)
    for _ in range(epochs):
        for xb, yb in loader:
            loss = mg.cross_entropy(clf(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with mg.no_grad():
        acc = float((clf(mg.tensor(Xte)).numpy().argmax(1) == yte).mean())
    return clf, acc


def judge(clf, images):
    with mg.no_grad():
        p = mg.softmax(clf(mg.tensor(images)), axis=1).numpy()
    labels = p.argmax(1)
    return {"confident_share": float((p.max(1) > 0.9).mean()),
            "class_counts": np.bincount(labels, minlength=10).tolist(),
            "classes_with_5pct": int((np.bincount(labels, minlength=10) >= 0.05 * len(labels)).sum())}


def judge_features(clf, images, batch_size=500):
    """The judge's last hidden layer (ReLU units) for each image: the feature space of the FID below."""
    body = clf[:-1]
    with mg.no_grad():
        return np.concatenate([body(mg.tensor(images[i:i + batch_size])).numpy().astype(np.float64)
                               for i in range(0, len(images), batch_size)])


def frechet_distance(fa, fb):
    """FID between two feature samples (N, d): ‖μa − μb‖² + tr(Σa + Σb − 2(Σa Σb)^½), host-side float64."""
    from scipy import linalg
    ma, mb = fa.mean(0), fb.mean(0)
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    root = linalg.sqrtm(ca @ cb)
    root = root.real if np.iscomplexobj(root) else root
    return float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * root))


def save_grid(images, path, title):
    plt = pyplot()
    n, _, h, w = images.shape
    k = int(np.ceil(np.sqrt(n)))
    grid = np.ones((k * (h + 2), k * (w + 2)), dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, k)
        grid[r * (h + 2) + 1:r * (h + 2) + 1 + h, c * (w + 2) + 1:c * (w + 2) + 1 + w] = img[0]
    fig, ax = plt.subplots(figsize=(6, 6.4))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def run(device="cpu", quick=False, out_dir=None, seed=0, n_train=None, epochs=None, batch=64, channels=32,
        latent_dim=64, lr=2e-4, ema_decay=0.995):
    out_dir = output_dir(out_dir, NAME)
    Xall, yall, Xte, yte, dataset = load_or_digits("mnist")
    n_train = min(n_train or (256 if quick else 25600), len(Xall))
    epochs = epochs or (1 if quick else 4)
    channels = 8 if quick else channels
    idx = np.random.default_rng(seed).permutation(len(Xall))[:n_train]
    X = Xall[idx] * np.float32(2) - np.float32(1)  # [0, 1] -> [-1, 1], the range of tanh
    size = X.shape[-1]
    print(f"[{NAME}] {dataset}: {n_train} training images of {size}×{size}, {epochs} epochs of batch {batch} "
          f"({epochs * (n_train // batch)} steps); channels {channels}, latent {latent_dim}, Adam lr {lr}, "
          f"EMA {ema_decay}")
    start = time.perf_counter()
    clf, clf_acc = train_classifier(Xall[:2000] if quick else Xall, yall[:2000] if quick else yall, Xte[:2000],
                                    yte[:2000], seed, epochs=1 if quick else 2)
    print(f"[{NAME}] judge classifier: test accuracy {100 * clf_acc:.1f}% ({time.perf_counter() - start:.0f} s)")

    mg.manual_seed(seed)
    G = DCGANGenerator(latent_dim, channels, image_size=size).to(device)
    D = DCGANDiscriminator(channels, image_size=size, batch_norm=True).to(device)
    opt_g = optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    ema = optim.EMA(G, decay=ema_decay, warmup=True)
    loader = mg.data.DataLoader((X,), batch_size=batch, shuffle=True, drop_last=True, seed=seed, device=device)
    z_fixed = mg.randn(64, latent_dim, device=device)
    t0, log = time.perf_counter(), []
    for epoch in range(epochs):
        sums, n = {"loss_d": 0.0, "loss_g": 0.0}, 0
        for (xb,) in loader:
            out = train_step(G, D, opt_g, opt_d, xb, "non_saturating", ema=ema)
            sums["loss_d"] += out["loss_d"]
            sums["loss_g"] += out["loss_g"]
            n += 1
        log.append({k: v / max(n, 1) for k, v in sums.items()})
        print(f"  epoch {epoch + 1}/{epochs}: loss_d {log[-1]['loss_d']:.3f}, loss_g {log[-1]['loss_g']:.3f} "
              f"({time.perf_counter() - t0:.0f} s)")
    train_seconds = time.perf_counter() - t0

    G.eval()
    z_eval = mg.randn(1000, latent_dim, device=device)
    to_unit = lambda t: (t.numpy() + 1) / 2  # back to [0, 1]
    with mg.no_grad():
        live = to_unit(G(z_eval))
        with ema.average_parameters():
            grid, samples = to_unit(G(z_fixed)), to_unit(G(z_eval))
    G.train()
    scores, live_scores = judge(clf, samples), judge(clf, live)
    real_scores = judge(clf, Xte[:1000])
    # FID in the judge's features: generated vs real test digits, and real vs other real digits (the floor a
    # perfect generator would reach with samples of this size)
    real_a, real_b = Xte[:len(samples)], Xte[len(samples):2 * len(samples)]
    f_real = judge_features(clf, real_a)
    fid = frechet_distance(judge_features(clf, samples), f_real)
    fid_real = frechet_distance(judge_features(clf, real_b), f_real) if len(real_b) == len(samples) else None
    figure = save_grid(grid, out_dir / "dcgan_samples.png",
                       f"DCGAN ({dataset}, {n_train} images, {epochs} epochs, EMA weights): "
                       f"{100 * scores['confident_share']:.0f}% confidently classified")
    metrics = {"dataset": dataset, "n_train": n_train, "epochs": epochs, "steps": epochs * (n_train // batch),
               "batch": batch, "channels": channels, "latent_dim": latent_dim, "lr": lr,
               "judge_test_accuracy": clf_acc, "confident_share": scores["confident_share"],
               "confident_share_live_weights": live_scores["confident_share"],
               "classes_with_5pct": scores["classes_with_5pct"], "class_counts": scores["class_counts"],
               "real_confident_share": real_scores["confident_share"], "fid": fid, "fid_real": fid_real,
               "fid_features": "the judge's hidden layer (256 ReLU units)", "train_seconds": round(train_seconds, 1),
               "log": log, "figure": figure, "seconds": round(time.perf_counter() - start, 1)}
    save_results(out_dir, metrics)
    print(f"[{NAME}] {100 * scores['confident_share']:.1f}% of 1000 generated digits (EMA weights; "
          f"{100 * live_scores['confident_share']:.1f}% with the live weights) classified with confidence > 0.9 "
          f"(real test digits: {100 * real_scores['confident_share']:.1f}%); classes with ≥5%: "
          f"{scores['classes_with_5pct']}/10 {scores['class_counts']}; FID in the judge's features {fid:.2f} (real "
          f"vs real: {fid_real if fid_real is None else round(fid_real, 2)}); grid: {figure} ({metrics['seconds']} s)")
    return metrics


if __name__ == "__main__":
    p = parser(DESCRIPTION)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    a = p.parse_args()
    run(a.device, a.quick, a.out, a.seed, n_train=a.n_train, epochs=a.epochs)
