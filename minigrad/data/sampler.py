"""``DistributedSampler``: each rank's share of a dataset's indices, PyTorch's arithmetic and permutation."""
import math

import numpy as np


def torch_randperm(n, seed):
    """The permutation ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))`` gives on the CPU:
    a Fisher-Yates shuffle driven by the raw 32-bit words of MT19937 seeded the classic way, so index lists
    match a PyTorch job's exactly (checked against PyTorch in the tests)."""
    if n >= 2**32 // 20:
        raise ValueError(f"DistributedSampler: datasets of {n} samples exceed the range whose PyTorch "
                         "permutation is reproduced here (fewer than 214,748,364)")
    words = np.random.RandomState(seed & 0xFFFFFFFF)._bit_generator.random_raw(max(n - 1, 0))
    perm = list(range(n))
    for i, w in enumerate(words.tolist()):
        j = i + w % (n - i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


class DistributedSampler:
    """Indices of the part of ``dataset`` that rank ``rank`` of ``num_replicas`` trains on (PyTorch's
    ``torch.utils.data.distributed.DistributedSampler``).

    With ``shuffle`` the order is the permutation seeded by ``seed + epoch`` (call ``set_epoch`` at each epoch,
    the same on every rank); then the list is padded with its own first indices up to a multiple of
    ``num_replicas`` (or cut, with ``drop_last``), and rank r takes every ``num_replicas``-th index from r, so
    every rank gets the same number of samples and the ranks together cover the dataset.
    ``num_replicas``/``rank`` default to the initialised process group's.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from minigrad import distributed
            if not distributed.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or call "
                                   "minigrad.distributed.init_process_group() first")
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        n = _length(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        """A fresh permutation for ``epoch`` (the same on every rank, since they share ``seed``)."""
        self.epoch = epoch

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        n = _length(self.dataset)
        indices = torch_randperm(n, self.seed + self.epoch) if self.shuffle else list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        indices = indices[self.rank:self.total_size:self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)


def _length(dataset):
    """Samples in ``dataset``: a tuple of equal-length arrays (what DataLoader takes) counts its first array."""
    if isinstance(dataset, tuple) and dataset and all(hasattr(a, "shape") for a in dataset):
        return int(dataset[0].shape[0])
    return len(dataset)
