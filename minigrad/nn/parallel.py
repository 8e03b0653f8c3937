"""``DistributedDataParallel``: the same model on every rank, gradients averaged over ranks during backward.

Each rank runs forward and backward on its own shard of the batch. Because the loss is a mean, the gradient of
the full batch is the mean of the ranks' gradients; summing them with all-reduce and dividing by the number of
ranks gives every rank that gradient, so every optimizer step is the step one process would take on the whole
batch. Parameters are grouped into buckets (reverse registration order, the order backward usually finishes
them); a gradient hook copies each finished gradient into its bucket, and a full bucket starts a non-blocking
all-reduce while backward carries on with earlier layers. The end of backward waits for them all.
"""
import contextlib
import time
from weakref import ref as _weakref

from minigrad import distributed
from minigrad.core import Function, Tensor, no_grad, queue_callback, running_backward
from minigrad.nn.module import Module


class _Bucket:
    __slots__ = ("params", "offsets", "numel", "dtype", "device", "xp", "buffer", "filled", "request")

    def __init__(self, params):
        self.params = params
        self.offsets, n = {}, 0
        for p in params:
            self.offsets[id(p)] = n
            n += p.size
        self.numel, self.dtype, self.device, self.xp = n, params[0].dtype, params[0].device, params[0].xp
        self.buffer, self.filled, self.request = None, set(), None


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the initialised process group (PyTorch's
    ``torch.nn.parallel.DistributedDataParallel``).

    PyTorch's signature; the module must already be on its device (``device_ids``/``output_device`` are only
    checked: every rank runs its one module on its own inputs). At construction every rank checks that the
    parameters agree in name, shape and dtype (an error names the parameter and the ranks), then takes rank 0's
    parameters and buffers. ``bucket_cap_mb`` caps a bucket;
    ``broadcast_buffers`` re-sends rank 0's buffers (BatchNorm's running statistics) before every forward.
    BatchNorm normalises each rank's shard with that shard's own statistics (as PyTorch's BatchNorm does under
    DDP), so N ranks are then not one process on the full batch; ``nn.SyncBatchNorm`` restores that.
    A parameter that gets no gradient in a backward contributes zeros; its bucket (and, since buckets start in
    order, every later one) then waits for the end of backward, unless ``find_unused_parameters=True``, which
    walks the output's graph after each forward to mark such parameters ready at once (as in PyTorch).
    ``no_sync()`` skips the averaging (gradient accumulation); the next synchronised backward averages the sum.
    ``comm_seconds`` adds up the time backward spent waiting for communication at its end;
    ``early_buckets`` counts the buckets whose all-reduce the gradient hooks started, before that wait.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=25, find_unused_parameters=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be an nn.Module, got {type(module).__name__}")
        if not distributed.is_initialized():
            raise RuntimeError("DistributedDataParallel: call minigrad.distributed.init_process_group() first")
        if process_group is not None and process_group is not distributed.group():
            raise ValueError("DistributedDataParallel: only the default process group (process_group=None) exists")
        devices = {p.device for p in module.parameters()}
        if device_ids is not None and devices - {f"cuda:{int(str(d).split(':')[-1])}" for d in device_ids}:
            raise ValueError(f"DistributedDataParallel: device_ids={device_ids} but the module's parameters are on "
                             f"{sorted(devices)}; move the module there first (device_ids only checks)")
        if dim != 0:
            raise ValueError(f"DistributedDataParallel: dim={dim}; each rank's batch is its own, only dim=0 is "
                             "meaningful")
        self.module = module
        object.__setattr__(self, "_group", distributed.group())
        object.__setattr__(self, "broadcast_buffers", broadcast_buffers)
        object.__setattr__(self, "find_unused_parameters", find_unused_parameters)
        object.__setattr__(self, "_unused", [])
        object.__setattr__(self, "require_sync", True)
        object.__setattr__(self, "comm_seconds", 0.0)
        object.__setattr__(self, "early_buckets", 0)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._check_agreement(named)
        with no_grad():
            for _, t in list(module.named_parameters()) + list(module.named_buffers()):
                self._broadcast(t)
        buckets = self._make_buckets([p for _, p in reversed(named)], float(bucket_cap_mb) * 2**20)
        object.__setattr__(self, "_buckets", buckets)
        object.__setattr__(self, "_bucket_of", {id(p): b for b in buckets for p in b.params})
        object.__setattr__(self, "_next", 0)
        object.__setattr__(self, "_active", None)  # the callback list of the backward this DDP is reducing in
        me = _weakref(self)
        handles = [p.register_post_accumulate_grad_hook(lambda t: DistributedDataParallel._hook(me, t))
                   for _, p in named]
        object.__setattr__(self, "_handles", handles)

    # ---- construction ---------------------------------------------------------------------------------------
    def _check_agreement(self, named):
        g = self._group
        mine = [(n, tuple(p.shape), str(p.dtype)) for n, p in named]
        everyone = g.allgather_object(mine)
        if all(e == everyone[0] for e in everyone):
            return
        names = sorted({n for e in everyone for n, _, _ in e}, key=lambda n: [x for x, _, _ in mine].index(n)
                       if n in [x for x, _, _ in mine] else len(mine))
        for name in names:
            seen = [next(((s, d) for n, s, d in e if n == name), None) for e in everyone]
            if any(s != seen[0] for s in seen):
                detail = "; ".join(f"rank {r}: " + ("missing" if s is None else f"shape {s[0]} {s[1]}")
                                   for r, s in enumerate(seen))
                raise ValueError(f"DistributedDataParallel: parameter {name!r} differs across ranks ({detail})")
        raise ValueError("DistributedDataParallel: the ranks list their parameters in different orders")

    def _broadcast(self, t):
        if self._group.size == 1:
            return
        buf = t.xp.ascontiguousarray(t.data)
        self._group.broadcast(buf, 0)
        if buf is not t.data:
            t.data[...] = buf

    @staticmethod
    def _make_buckets(params, cap_bytes):
        buckets, current, size = [], [], 0
        for p in params:
            if current and (size + p.data.nbytes > cap_bytes or p.dtype != current[0].dtype
                            or p.device != current[0].device):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
        if current:
            buckets.append(_Bucket(current))
        return buckets

    # ---- forward and backward -------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        if self.broadcast_buffers and self._group.size > 1:
            with no_grad():
                for _, b in self.module.named_buffers():
                    self._broadcast(b)
        out = self.module(*args, **kwargs)
        if self.find_unused_parameters and self.require_sync and self._group.size > 1:
            reached = _leaves_reached(out)
            object.__setattr__(self, "_unused", [p for b in self._buckets for p in b.params if id(p) not in reached])
        return out

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate local gradients without communication."""
        object.__setattr__(self, "require_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "require_sync", True)

    @staticmethod
    def _hook(me, p):
        self = me()
        if self is None or not self.require_sync or self._group.size == 1:
            return
        if self._active is not running_backward():  # first gradient of this backward: fresh buffers, wait at end
            for b in self._buckets:
                b.buffer, b.filled, b.request = None, set(), None
            object.__setattr__(self, "_next", 0)
            object.__setattr__(self, "_active", running_backward())
            queue_callback(self._finish)
            for q in self._unused:  # found unused by the last forward: ready now, with zeros
                self._fill(q, None)
        self._fill(p, p.grad.data)
        self._launch_ready()

    def _fill(self, p, grad):
        """Copy ``p``'s gradient (zeros when None) into its place in its bucket's buffer."""
        b = self._bucket_of[id(p)]
        if b.buffer is None:
            b.buffer = b.xp.empty(b.numel, b.dtype)
        off = b.offsets[id(p)]
        b.buffer[off:off + p.size] = 0 if grad is None else grad.reshape(-1)
        b.filled.add(id(p))

    def _launch_ready(self):
        """Start the all-reduce of every full bucket, strictly in bucket order (every rank must start the same
        collectives in the same sequence; the sweep's order of equal-depth ops may differ between processes)."""
        buckets = self._buckets
        while self._next < len(buckets) and len(buckets[self._next].filled) == len(buckets[self._next].params):
            b = buckets[self._next]
            b.request = self._group.iallreduce(b.buffer)
            object.__setattr__(self, "_next", self._next + 1)
        for b in buckets[:self._next]:  # MPI moves non-blocking collectives along only inside its own calls
            b.request.test()

    def _finish(self):
        """End of backward: a parameter that got no gradient contributes zeros; wait; divide by the ranks."""
        start = time.perf_counter()
        object.__setattr__(self, "early_buckets", self.early_buckets + self._next)
        for b in self._buckets:
            for p in b.params:
                if id(p) not in b.filled:
                    self._fill(p, None)
        self._launch_ready()
        scale = 1.0 / self._group.size
        for b in self._buckets:
            b.request.wait()
            b.buffer *= b.dtype.type(scale)
            for p in b.params:
                off = b.offsets[id(p)]
                p.grad = Tensor(b.buffer[off:off + p.size].reshape(p.shape))
            b.request = None
        object.__setattr__(self, "_active", None)
        object.__setattr__(self, "comm_seconds", self.comm_seconds + time.perf_counter() - start)

    def __del__(self):
        for h in getattr(self, "_handles", ()):
            h.remove()


def _leaves_reached(out):
    """ids of the leaf tensors that the graph of ``out`` (a Tensor, or tuples/lists/dicts of them) reads."""
    stack = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (tuple, list)) else [out]
    leaves, seen, funcs = set(), set(), []
    for t in stack:
        if isinstance(t, Tensor):
            if t.creator is None:
                leaves.add(id(t))
            else:
                funcs.append(t.creator)
    while funcs:
        f = funcs.pop()
        if id(f) in seen or f.edges is None:
            continue
        seen.add(id(f))
        for edge in f.edges:  # one per input that wants a gradient: a Function, or a leaf Tensor
            if edge is None:
                continue
            if isinstance(edge.node, Function):
                funcs.append(edge.node)
            else:
                leaves.add(id(edge.node))
    return leaves
