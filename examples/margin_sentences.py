"""Sentence similarity with a character GRU trained as a classifier over groups of same-meaning sentences.

Each group of paraphrases is one class. A character-level encoder (Embedding → GRU, last hidden state) is
trained with a cosine-softmax head under four losses from ``minigrad.models.margin``: plain normalised softmax,
AM-Softmax, A-Softmax (ψ = min(cos 4θ, cos θ)) and ArcFace. At test time the class weights are thrown away:
sentences are compared by the cosine of their embeddings, and retrieval is scored on groups NEVER seen in
training (open set). Two protocols, both over the held-out groups only:

* ``sentence``: every held-out sentence queries all other held-out sentences (itself excluded); top-k is a
  hit when one of the k most similar sentences belongs to its group.
* ``group``: the first sentence of each held-out group queries the group centroids (the normalised mean
  embedding of each group's remaining sentences); top-k is a hit when its own group is among the k best.

Data: by default the SYNTHETIC paraphrase generator of ``models/margin_data.py`` (≈1,080 groups of template-
made Chinese questions). ``--pairs PATH`` reads a real LCQMC/BQ/PAWS-X style TSV (``s1 \\t s2 \\t label``) and
groups sentences by connected components of the positive pairs. A bag-of-characters cosine baseline (no
training) is reported alongside. Results and derivations: docs/derivations/margin.md.
"""
import time

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.data import pad_sequences
from minigrad.models import margin_data
from minigrad.models.margin import MarginHead
from examples.common import output_dir, parser, save_results

NAME = "margin_sentences"
DESCRIPTION = "char GRU + softmax / AM-Softmax / A-Softmax / ArcFace; top-k retrieval of unseen paraphrase groups"
HEADLINE = "AM-Softmax beats softmax on unseen paraphrase groups"
QUICK_SHOWS_HEADLINE = False


def headline(m):
    """(shown, numbers) for the demo table: sentence top-1 retrieval."""
    top1 = {k: r["sentence"]["top1"] for k, r in m["losses"].items()}
    return (top1.get("am", 0.0) > top1.get("softmax", 1.0),
            ", ".join(f"{k} {v:.3f}" for k, v in top1.items()))
LOSS_ARGS = {"softmax": {}, "am": {"m": 0.35}, "a": {"m": 4}, "arcface": {"m": 0.5}}
LOSS_NAMES = {"softmax": "softmax (cosine)", "am": "AM-Softmax", "a": "A-Softmax", "arcface": "ArcFace"}


class Encoder(nn.Module):
    """Characters → Embedding → GRU; the last valid hidden state is the sentence embedding (B, hidden)."""

    def __init__(self, vocab_size, emb=128, hidden=128, device="cpu"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb, padding_idx=0)
        self.gru = nn.GRU(emb, hidden, batch_first=True)
        self.to(device)

    def forward(self, ids, lengths):
        _, h = self.gru(self.embed(ids), lengths=lengths)
        return h[0]


def _batch(vocab, sentences, device, max_len):
    ids, mask = pad_sequences([vocab.encode(s, max_len) or [1] for s in sentences])
    return mg.tensor(ids, device=device), mask.sum(1)


def embed_all(encoder, vocab, sentences, device, max_len, batch_size=256):
    """Unit-length embeddings (N, hidden) as a host array."""
    encoder.eval()
    out = []
    with mg.no_grad():
        for i in range(0, len(sentences), batch_size):
            ids, lengths = _batch(vocab, sentences[i:i + batch_size], device, max_len)
            out.append(encoder(ids, lengths).numpy())
    encoder.train()
    e = np.concatenate(out).astype(np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def retrieval_scores(emb, group_ids, ks=(1, 5, 10)):
    """Both protocols of the module docstring on unit embeddings ``emb`` (N, d) with group ids (N,)."""
    group_ids = np.asarray(group_ids)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1)[:, :max(ks)]
    same = group_ids[order] == group_ids[:, None]
    sentence = {f"top{k}": float(same[:, :k].any(1).mean()) for k in ks}
    groups = np.unique(group_ids)
    first = np.array([np.flatnonzero(group_ids == g)[0] for g in groups])
    rest = np.ones(len(group_ids), bool)
    rest[first] = False
    cent = np.stack([emb[rest & (group_ids == g)].mean(0) for g in groups])
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    rank = np.argsort(-(emb[first] @ cent.T), axis=1)[:, :max(ks)]
    hit = rank == np.arange(len(groups))[:, None]
    group = {f"top{k}": float(hit[:, :k].any(1).mean()) for k in ks}
    return {"sentence": sentence, "group": group}


def char_bag_embeddings(sentences, vocab_chars):
    """The no-training baseline: character counts (ignoring punctuation), normalised."""
    index = {c: i for i, c in enumerate(vocab_chars)}
    x = np.zeros((len(sentences), len(index)))
    for r, s in enumerate(sentences):
        for ch in s:
            if ch in index:
                x[r, index[ch]] += 1
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _flatten(groups):
    sents = [s for g in groups for s in g]
    labels = np.array([i for i, g in enumerate(groups) for _ in g], dtype=np.int64)
    return sents, labels


def train_one(loss, train_sents, train_labels, n_classes, vocab, args, device, seed):
    """Train an encoder + margin head with ``loss``; returns the encoder and the loss curve."""
    mg.manual_seed(seed)
    encoder = Encoder(len(vocab), args["emb"], args["hidden"], device)
    head = MarginHead(args["hidden"], n_classes, loss=loss, device=device, s=args["s"], **LOSS_ARGS[loss])
    params = list(encoder.parameters()) + list(head.parameters())
    opt = mg.optim.Adam(params, lr=args["lr"])
    rng = np.random.default_rng(seed)
    curve, n = [], len(train_sents)
    for epoch in range(args["epochs"]):
        order = rng.permutation(n)
        total, batches = 0.0, 0
        for b in range(0, n, args["batch_size"]):
            idx = order[b:b + args["batch_size"]]
            ids, lengths = _batch(vocab, [train_sents[i] for i in idx], device, args["max_len"])
            value = head(encoder(ids, lengths), mg.tensor(train_labels[idx], device=device))
            opt.zero_grad()
            value.backward()
            opt.step()
            total, batches = total + value.item(), batches + 1
        curve.append(total / batches)
        print(f"  [{loss}] epoch {epoch + 1}/{args['epochs']}  loss {curve[-1]:.3f}", flush=True)
    return encoder, curve


def load_groups(pairs, quick, seed):
    if pairs:
        groups = margin_data.groups_from_pairs(pairs)
        source = f"pairs file {pairs} (connected components of positive pairs)"
        if len(groups) < 10:
            raise ValueError(f"{pairs}: only {len(groups)} groups of ≥2 sentences; need at least 10")
    else:
        groups = margin_data.synthetic_paraphrase_groups(seed=seed)
        source = "SYNTHETIC template paraphrases (models/margin_data.py)"
    if quick:
        rng = np.random.default_rng(seed)
        groups = [groups[i] for i in sorted(rng.choice(len(groups), min(120, len(groups)), replace=False))]
    return groups, source


def run(device="cpu", quick=False, out_dir=None, seed=0, pairs=None, losses=None, epochs=None, **kw):
    out = output_dir(out_dir, NAME)
    args = dict(emb=128, hidden=128, s=30.0, lr=3e-3, batch_size=128, epochs=20, max_len=32)
    if quick:
        args.update(emb=32, hidden=32, epochs=1, batch_size=64)
    if epochs is not None:
        args["epochs"] = int(epochs)
    args.update({k: v for k, v in kw.items() if k in args})
    losses = list(losses or LOSS_ARGS)
    groups, source = load_groups(pairs, quick, seed)
    train_groups, test_groups = margin_data.split_groups(groups, test_fraction=0.2, seed=seed)
    train_sents, train_labels = _flatten(train_groups)
    test_sents, test_labels = _flatten(test_groups)
    vocab = margin_data.CharVocab(train_sents)
    print(f"{NAME}: {source}\n  {len(train_groups)} training groups ({len(train_sents)} sentences), "
          f"{len(test_groups)} held-out groups ({len(test_sents)} sentences), {len(vocab)} characters")
    results = {"data": source, "seed": seed, "train_groups": len(train_groups), "test_groups": len(test_groups),
               "test_sentences": len(test_sents), "config": args, "losses": {}}
    punct = set("，。？?!！、 ")
    base = retrieval_scores(char_bag_embeddings(test_sents, [c for c in vocab.itos[2:] if c not in punct]),
                            test_labels)
    results["losses"]["char_bag_baseline"] = base
    for loss in losses:
        if loss not in LOSS_ARGS:
            raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSS_ARGS)}")
        start = time.perf_counter()
        encoder, curve = train_one(loss, train_sents, train_labels, len(train_groups), vocab, args, device, seed)
        scores = retrieval_scores(embed_all(encoder, vocab, test_sents, device, args["max_len"]), test_labels)
        scores.update(train_seconds=round(time.perf_counter() - start, 1), loss_curve=curve)
        results["losses"][loss] = scores
    table = ["| model | sentence top-1 | top-5 | top-10 | group top-1 | top-5 | top-10 |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results["losses"].items():
        s, g = r["sentence"], r["group"]
        table.append(f"| {LOSS_NAMES.get(name, name)} | {s['top1']:.3f} | {s['top5']:.3f} | {s['top10']:.3f} | "
                     f"{g['top1']:.3f} | {g['top5']:.3f} | {g['top10']:.3f} |")
    print("\n".join(table))
    (out / "table.md").write_text("\n".join(table) + "\n")
    save_results(out, results)
    best = max(losses, key=lambda k: results["losses"][k]["sentence"]["top1"]) if losses else None
    results["best_loss"] = best
    if best:
        results["top1"] = results["losses"][best]["sentence"]["top1"]
    return results


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(DESCRIPTION)
    p.add_argument("--pairs", default=None, help="TSV of 's1<TAB>s2<TAB>label' pairs (LCQMC/BQ/PAWS-X style)")
    p.add_argument("--losses", nargs="+", default=None, choices=list(LOSS_ARGS))
    p.add_argument("--epochs", type=int, default=None)
    a = p.parse_args(argv)
    return run(device=a.device, quick=a.quick, out_dir=a.out, seed=a.seed, pairs=a.pairs, losses=a.losses,
               epochs=a.epochs)


if __name__ == "__main__":
    main()
