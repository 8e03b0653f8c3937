"""Data-parallel training across processes with PyTorch's names: ``init_process_group``, ``all_reduce``, ...

Start N copies of a script with ``mpiexec -n N python script.py``; each calls ``init_process_group()`` and gets
its rank. Collectives act in place on a Tensor's array (no graph is recorded). Backends: ``"mpi"`` (mpi4py,
host arrays; GPU arrays through host copies) and ``"nccl"`` (CuPy's NCCL on GPU arrays, ids exchanged over MPI).
Without ``mpiexec`` — or without mpi4py — the group is this one process (rank 0 of 1).

Once the group is up, an exception that nobody catches on one rank prints that rank's traceback and aborts
every rank (``MPI_Abort``), so a job never waits forever in a collective for a process that died.
"""
import sys
import time
import traceback

from minigrad import backend
from minigrad.core import Function, Tensor
from minigrad.distributed._backends import MPIGroup, NCCLGroup, SingleGroup

__all__ = ["AllReduceSum", "NotInitializedError", "ReduceOp", "all_gather", "all_reduce", "all_reduce_sum",
           "barrier", "broadcast", "destroy_process_group", "get_backend", "get_device", "get_rank", "get_world_size",
           "init_process_group", "is_available", "is_initialized"]


class ReduceOp:
    """The reductions ``all_reduce`` takes (plain strings work too)."""

    SUM, AVG, MEAN, MAX, MIN = "sum", "mean", "mean", "max", "min"


_group = None
_previous_excepthook = None


def is_available():
    """True: the group of one always works; ``mpi`` needs mpi4py, ``nccl`` CuPy with NCCL."""
    return True


def _mpi_installed():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


class NotInitializedError(ValueError, RuntimeError):
    """A collective before ``init_process_group`` (a ValueError, as PyTorch raises, and a RuntimeError)."""


class _Work:
    """What ``async_op=True`` returns: the collective has already run, ``wait()`` returns at once."""

    def wait(self, timeout=None):
        return True

    def is_completed(self):
        return True


def init_process_group(backend="mpi", init_method=None, timeout=None, world_size=-1, rank=-1, **kwargs):
    """Join the job started by ``mpiexec`` (``backend="mpi"`` or ``"nccl"``; None means ``"mpi"``); outside
    ``mpiexec`` this process is a group of size 1. ``world_size``/``rank``, if given, must agree with MPI's
    (MPI assigns them). Installs the abort-on-uncaught-exception hook when there are several ranks."""
    global _group
    backend = "mpi" if backend is None else str(backend).lower()
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: backend must be 'mpi' or 'nccl', got {backend!r}")
    if _group is not None:
        raise RuntimeError(f"init_process_group: the process group is already initialised (backend "
                           f"{_group.name!r}, rank {_group.rank} of {_group.size}); call destroy_process_group() "
                           "first")
    if backend == "nccl":
        _group = NCCLGroup()
    elif _mpi_installed():
        _group = MPIGroup()
    else:
        _group = SingleGroup()
    for name, given, actual in (("world_size", world_size, _group.size), ("rank", rank, _group.rank)):
        if given is not None and given != -1 and given != actual:
            group, _group = _group, None
            group.close()
            raise ValueError(f"init_process_group: {name}={given} was asked for, but mpiexec started this process as "
                             f"rank {group.rank} of {group.size}; start it with mpiexec -n N instead")
    if _group.size > 1:
        _install_abort_hook()


def _abort_hook(exc_type, exc, tb):
    """Print this rank's traceback, then end the whole job instead of leaving the others in a collective."""
    group = _group
    where = f"rank {group.rank} of {group.size}" if group is not None else "a rank"
    prefix = f"[rank {group.rank}] " if group is not None else ""
    lines = "".join(traceback.format_exception(exc_type, exc, tb)).splitlines(True)
    sys.stderr.write(f"minigrad.distributed: uncaught exception on {where}; aborting every rank\n"
                     + "".join(prefix + line for line in lines))
    sys.stderr.flush()
    if group is not None:
        time.sleep(1.0)  # let mpiexec forward the traceback: an abort can kill the job before its pipes drain
        group.abort(1)


def _install_abort_hook():
    global _previous_excepthook
    if sys.excepthook is not _abort_hook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _abort_hook


def destroy_process_group():
    """Leave the group (MPI itself stays up until the interpreter exits, so a new group can be made)."""
    global _group
    group = _need("destroy_process_group")
    _group = None
    if sys.excepthook is _abort_hook:
        sys.excepthook = _previous_excepthook or sys.__excepthook__
    group.close()


def is_initialized():
    return _group is not None


def _need(fn):
    if _group is None:
        raise NotInitializedError(f"minigrad.distributed.{fn}: the process group is not initialised; call "
                           "minigrad.distributed.init_process_group() first")
    return _group


def group():
    """The process group object (for DistributedDataParallel)."""
    return _need("group")


def get_rank():
    return _need("get_rank").rank


def get_world_size():
    return _need("get_world_size").size


def get_backend():
    return _need("get_backend").name


def get_device():
    """Where this rank's tensors belong: ``"cuda:N"`` with the NCCL backend (GPU local rank % GPUs per node,
    chosen at ``init_process_group``), else ``"cpu"``."""
    g = _need("get_device")
    return f"cuda:{g.device}" if g.name == "nccl" else "cpu"


def _check_tensor(fn, tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"minigrad.distributed.{fn}: expected a Tensor, got {type(tensor).__name__}")


def _check_same(fn, g, tensor):
    """Collectives on mismatched arrays would be garbage or a hang in MPI: compare first, name the ranks."""
    mine = (tuple(tensor.shape), str(tensor.dtype))
    everyone = g.allgather_object(mine)
    if any(e != everyone[0] for e in everyone):
        detail = ", ".join(f"rank {r}: shape {s} {d}" for r, (s, d) in enumerate(everyone))
        raise ValueError(f"minigrad.distributed.{fn}: the tensor must have the same shape and dtype on every rank "
                         f"({detail})")


def _contiguous(tensor):
    xp = backend.get_array_module(tensor.data)
    return xp.ascontiguousarray(tensor.data)


def _write_back(tensor, buf):
    if buf is not tensor.data:
        tensor.data[...] = buf


def _default_group(fn, group):
    g = _need(fn)
    if group is not None and group is not g:
        raise ValueError(f"minigrad.distributed.{fn}: only the default group (group=None) exists here")
    return g


def all_reduce(tensor, op="sum", group=None, async_op=False):
    """Replace ``tensor``'s values, on every rank, by their sum / mean / max / min over the ranks."""
    g = _default_group("all_reduce", group)
    _check_tensor("all_reduce", tensor)
    if op not in ("sum", "mean", "max", "min"):
        raise ValueError(f"minigrad.distributed.all_reduce: op must be 'sum', 'mean', 'max' or 'min', got {op!r}")
    if op == "mean" and tensor.dtype.kind != "f":
        raise TypeError(f"minigrad.distributed.all_reduce: op='mean' needs a floating tensor, got {tensor.dtype}")
    _check_same("all_reduce", g, tensor)
    buf = _contiguous(tensor)
    g.allreduce(buf, op)
    if op == "mean":
        buf /= g.size
    _write_back(tensor, buf)
    return _Work() if async_op else None


def broadcast(tensor, src=0, group=None, async_op=False):
    """Copy rank ``src``'s values of ``tensor`` into ``tensor`` on every rank."""
    g = _default_group("broadcast", group)
    _check_tensor("broadcast", tensor)
    if not 0 <= src < g.size:
        raise ValueError(f"minigrad.distributed.broadcast: src={src} is not a rank of this group of {g.size}")
    _check_same("broadcast", g, tensor)
    buf = _contiguous(tensor)
    g.broadcast(buf, src)
    _write_back(tensor, buf)
    return _Work() if async_op else None


def all_gather(tensor_list, tensor=None, group=None, async_op=False):
    """PyTorch's form ``all_gather(tensor_list, tensor)`` fills ``tensor_list[r]`` with rank r's ``tensor``;
    ``all_gather(tensor)`` returns that list instead."""
    g = _default_group("all_gather", group)
    if tensor is None:
        tensor, tensor_list = tensor_list, None
    _check_tensor("all_gather", tensor)
    if g.size > 1:
        _check_same("all_gather", g, tensor)
    parts = g.allgather(_contiguous(tensor))
    if tensor_list is None:
        return [Tensor(p) for p in parts]
    if len(tensor_list) != g.size:
        raise ValueError(f"minigrad.distributed.all_gather: tensor_list has {len(tensor_list)} tensors for a "
                         f"group of {g.size}")
    for i, (t, p) in enumerate(zip(tensor_list, parts)):
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError(f"minigrad.distributed.all_gather: tensor_list[{i}] has shape {tuple(t.shape)}, "
                             f"the gathered tensors {tuple(p.shape)}")
        t.data[...] = p
    return _Work() if async_op else None


class AllReduceSum(Function):
    """Differentiable sum over the ranks: every rank gets Σ_r x_r, and the gradient of each rank's input is
    the sum over ranks of the output gradients (each rank's output feeds that rank's share of the total loss)."""

    def __init__(self, group):
        self.group = group

    def forward(self, x):
        out = x.copy()
        self.group.allreduce_aux(out)
        return out

    def backward(self, gy):
        return AllReduceSum(self.group)(gy)

    def jvp(self, tx):
        return AllReduceSum(self.group)(tx)


def all_reduce_sum(tensor):
    """A new Tensor holding the sum of ``tensor`` over the ranks, differentiable (SyncBatchNorm's statistics);
    the identity in a group of one. The ranks must call it in the same order."""
    return AllReduceSum(_need("all_reduce_sum"))(tensor)


def barrier(group=None, async_op=False):
    """Wait until every rank has reached this call."""
    _default_group("barrier", group).barrier()
    return _Work() if async_op else None
