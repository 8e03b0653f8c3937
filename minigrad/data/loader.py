"""Mini-batches: ``DataLoader``, ``pad_sequences`` and ``collate_padded`` (host code on NumPy)."""
import math

import numpy as np

from minigrad import backend
from minigrad.core import Tensor


def _is_arraylike(a):
    return isinstance(a, Tensor) or backend.is_array(a)


class DataLoader:
    """Iterate over mini-batches as Tensors on ``device``.

    ``dataset`` is either a tuple of equal-length arrays/Tensors (fast path: each batch is one fancy index per
    array; yields a tuple of Tensors), a single array (yields Tensors), or any object with ``__len__`` and
    ``__getitem__`` (a list of samples, say) whose samples ``collate_fn`` stacks (default: field by field).
    Shuffling draws from the loader's own generator, seeded by ``seed`` or else from ``mg.manual_seed``'s
    state, so runs repeat; each epoch (each ``iter``) gets a fresh permutation. A ``sampler`` (an iterable of
    indices with ``len``, e.g. ``DistributedSampler``) gives the order instead; it excludes ``shuffle``.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, collate_fn=None,
                 device="cpu", sampler=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.single = _is_arraylike(dataset)
        self.arrays = None
        if self.single:
            dataset = (dataset,)
        if isinstance(dataset, tuple) and dataset and all(_is_arraylike(a) for a in dataset):
            self.arrays = [a.data if isinstance(a, Tensor) else a for a in dataset]
            lengths = [a.shape[0] if a.ndim else None for a in self.arrays]
            if None in lengths or len(set(lengths)) != 1:
                shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays)
                raise ValueError(f"DataLoader: the arrays of the dataset must share their first dimension, got "
                                 f"shapes {shapes}")
            self.n = lengths[0]
        elif hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
            self.n = len(dataset)
        else:
            raise TypeError(f"DataLoader: dataset must be a tuple of arrays or have __len__ and __getitem__, got "
                            f"{type(dataset).__name__}")
        self.dataset = dataset
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True exclude each other (the sampler sets the order)")
        self.sampler = sampler
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.collate_fn = collate_fn or default_collate
        self.device = backend.parse_device(device)
        if seed is None:
            seed = int(backend.generator("cpu").integers(2**63))
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        n = self.n if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        else:
            order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.arrays is not None and self.collate_fn is default_collate:
                batch = tuple(a[backend.get_array_module(a).asarray(idx)] for a in self.arrays)
                batch = batch[0] if self.single else batch
            else:
                batch = self.collate_fn([self._sample(int(i)) for i in idx])
            yield to_tensors(batch, self.device)

    def _sample(self, i):
        if self.arrays is None:
            return self.dataset[i]
        return self.arrays[0][i] if self.single else tuple(a[i] for a in self.arrays)


def default_collate(samples):
    """Stack a list of samples: tuples field by field, dicts key by key, arrays/numbers into one array."""
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, float):  # Python floats become float32, as everywhere in minigrad
        return np.asarray(samples, dtype=backend.DEFAULT_FLOAT)
    if isinstance(first, Tensor):
        samples = [s.data for s in samples]
    xp = backend.get_array_module(samples[0])
    return xp.stack([xp.asarray(s) for s in samples])


def to_tensors(batch, device="cpu"):
    """Arrays (nested in tuples/lists/dicts) as Tensors on ``device``; Tensors are moved; others left as is."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if backend.is_array(batch):
        return Tensor(backend.to_device(batch, device))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_tensors(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_tensors(v, device) for k, v in batch.items()}
    return batch


def pad_sequences(seqs, pad_value=0, max_len=None, dtype="int64"):
    """Right-pad ``seqs`` (lists/arrays of ids) to one length -> (array (B, T), bool mask (B, T)).

    ``T`` is the longest length, or ``max_len`` (longer sequences are cut). ``mask`` is True on real tokens.
    """
    seqs = [np.asarray(s).reshape(-1) for s in seqs]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    T = int(lengths.max(initial=0)) if max_len is None else int(max_len)
    if T < 0:
        raise ValueError(f"pad_sequences: max_len must be >= 0, got {max_len}")
    lengths = np.minimum(lengths, T)
    out = np.full((len(seqs), T), pad_value, dtype=dtype)
    mask = np.arange(T) < lengths[:, None]
    if mask.any():
        out[mask] = np.concatenate([s[:n] for s, n in zip(seqs, lengths)])
    return out, mask


def collate_padded(samples, pad_value=0, tag_pad_value=0):
    """Collate variable-length samples: each a sequence, or a tuple ``(sequence, *extra)``.

    Returns ``(tokens, mask)`` or ``(tokens, *extra, mask)``: tokens int64 (B, T) padded with ``pad_value``;
    an extra field that is a sequence (e.g. tags) must match its sample's length and is padded with
    ``tag_pad_value``; a scalar extra field (e.g. a class label) becomes a (B,) array. Use as
    ``DataLoader(ds, collate_fn=collate_padded)`` (``functools.partial`` to change the pad values).
    """
    if not isinstance(samples[0], tuple):
        return pad_sequences(samples, pad_value)
    fields = list(zip(*samples))
    tokens, mask = pad_sequences(fields[0], pad_value)
    out = [tokens]
    for j, field in enumerate(fields[1:], 1):
        if np.ndim(field[0]) == 0:
            out.append(np.asarray(field))
            continue
        for i, (seq, extra) in enumerate(zip(fields[0], field)):
            if len(extra) != len(seq):
                raise ValueError(f"collate_padded: sample {i} has {len(seq)} tokens but field {j} has "
                                 f"{len(extra)} entries")
        out.append(pad_sequences(field, tag_pad_value)[0])
    return (*out, mask)
