"""The process groups behind ``minigrad.distributed``: MPI (mpi4py) for host arrays, NCCL (CuPy) for GPU arrays,
and a group of one process when MPI is not installed. Host-side code: it moves raw arrays, never builds a graph."""
import numpy as np

from minigrad import backend

_MPI_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN"}


class _Done:
    """A finished request (what a group of one returns for a non-blocking call)."""

    def wait(self):
        return None

    def test(self):
        return True


class SingleGroup:
    """One process and no MPI: every collective is the identity (``init_process_group`` outside ``mpiexec``
    without mpi4py installed)."""

    name, rank, size = "single", 0, 1

    def allreduce(self, array, op):
        return None

    def allreduce_aux(self, array):
        return None

    def iallreduce(self, array):
        return _Done()

    def broadcast(self, array, src):
        return None

    def allgather(self, array):
        return [array.copy()]

    def allgather_object(self, obj):
        return [obj]

    def barrier(self):
        return None

    def abort(self, code):
        raise SystemExit(code)

    def close(self):
        return None


class _MPIRequest:
    def __init__(self, request, host, array):
        self.request, self.host, self.array = request, host, array

    def wait(self):
        self.request.Wait()
        if self.host is not self.array:  # a GPU array reduced through a host copy
            self.array[...] = backend.asarray(self.host, device=backend.device_of(self.array))

    def test(self):
        return self.request.Test()


class MPIGroup:
    """Collectives over a duplicate of ``MPI.COMM_WORLD`` (so the user's own MPI traffic cannot interleave).
    GPU arrays travel through host copies: the MPICH wheels are not CUDA-aware."""

    name = "mpi"

    def __init__(self):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.aux = MPI.COMM_WORLD.Dup()  # reductions inside backward (SyncBatchNorm), apart from the buckets'
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def _host(self, array):
        return array if isinstance(array, np.ndarray) else backend.to_numpy(array)

    def _back(self, host, array):
        if host is not array:
            array[...] = backend.asarray(host, device=backend.device_of(array))

    def allreduce(self, array, op):
        host = np.ascontiguousarray(self._host(array))
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=getattr(self.MPI, _MPI_OPS[op]))
        if host is not array:
            array[...] = host if isinstance(array, np.ndarray) else backend.asarray(host,
                                                                                   device=backend.device_of(array))

    def allreduce_aux(self, array):
        """Sum over ranks in place on the second communicator: collectives issued during backward must not
        interleave with the buckets' non-blocking ones, whose start order differs between ranks' sweeps."""
        host = np.ascontiguousarray(self._host(array))
        self.aux.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        if host is not array:
            array[...] = host if isinstance(array, np.ndarray) else backend.asarray(host,
                                                                                   device=backend.device_of(array))

    def iallreduce(self, array):
        """Start a sum over ranks of a contiguous ``array`` in place; ``wait()`` on the result finishes it."""
        host = self._host(array)
        return _MPIRequest(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), host, array)

    def broadcast(self, array, src):
        host = np.ascontiguousarray(self._host(array))
        self.comm.Bcast(host, root=src)
        if host is not array:
            array[...] = host if isinstance(array, np.ndarray) else backend.asarray(host,
                                                                                   device=backend.device_of(array))

    def allgather(self, array):
        host = np.ascontiguousarray(self._host(array))
        out = np.empty((self.size,) + host.shape, host.dtype)
        self.comm.Allgather(host, out)
        if isinstance(array, np.ndarray):
            return list(out)
        return [backend.asarray(o, device=backend.device_of(array)) for o in out]

    def allgather_object(self, obj):
        return self.comm.allgather(obj)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code):
        self.MPI.COMM_WORLD.Abort(code)

    def close(self):
        self.comm.Free()
        self.aux.Free()


class _NCCLRequest:
    def __init__(self, done_event):
        self.done = done_event

    def wait(self):
        import cupy
        cupy.cuda.get_current_stream().wait_event(self.done)  # later kernels on the compute stream wait for it

    def test(self):
        return self.done.done


class NCCLGroup(MPIGroup):
    """NCCL collectives on CuPy arrays; the NCCL unique id is made on rank 0 and sent to the others over MPI,
    which also carries host arrays, objects and barriers. Each rank uses GPU ``local rank % GPUs on the node``.

    Non-blocking reductions run on a side stream that first waits for the compute stream (so the gradient is
    written), and the compute stream waits for them at ``wait()``: backward kernels and NCCL overlap on the GPU."""

    name = "nccl"
    _DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8"}
    _OPS = {"sum": "NCCL_SUM", "mean": "NCCL_SUM", "max": "NCCL_MAX", "min": "NCCL_MIN"}

    def __init__(self):
        super().__init__()
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as e:
            raise RuntimeError(f"init_process_group(backend='nccl') needs CuPy with NCCL (pip install "
                               f"'minigrad-autodiff[gpu]'): {e}") from e
        self.cupy, self.nccl = cupy, nccl
        n_gpus = cupy.cuda.runtime.getDeviceCount()
        if n_gpus == 0:
            raise RuntimeError("init_process_group(backend='nccl'): no CUDA device is visible")
        local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = local.Get_rank()
        local.Free()
        self.device = self.local_rank % n_gpus
        cupy.cuda.Device(self.device).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self.side = cupy.cuda.Stream(non_blocking=True)

    def _is_gpu(self, array):
        return not isinstance(array, np.ndarray)

    def _dtype(self, array):
        name = str(array.dtype)
        if name not in self._DTYPES:
            raise TypeError(f"minigrad.distributed (nccl): dtype {name} is not supported; use one of "
                            f"{', '.join(self._DTYPES)}")
        return getattr(self.nccl, self._DTYPES[name])

    def allreduce(self, array, op):
        if not self._is_gpu(array):
            return super().allreduce(array, op)
        stream = self.cupy.cuda.get_current_stream()
        self.nccl_comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._dtype(array),
                                 getattr(self.nccl, self._OPS[op]), stream.ptr)

    def iallreduce(self, array):
        if not self._is_gpu(array):
            return super().iallreduce(array)
        ready = self.cupy.cuda.Event(disable_timing=True)
        ready.record(self.cupy.cuda.get_current_stream())
        self.side.wait_event(ready)
        self.nccl_comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._dtype(array),
                                 self.nccl.NCCL_SUM, self.side.ptr)
        done = self.cupy.cuda.Event(disable_timing=True)
        done.record(self.side)
        return _NCCLRequest(done)

    def broadcast(self, array, src):
        if not self._is_gpu(array):
            return super().broadcast(array, src)
        stream = self.cupy.cuda.get_current_stream()
        self.nccl_comm.bcast(array.data.ptr, array.size, self._dtype(array), src, stream.ptr)

    def allgather(self, array):
        if not self._is_gpu(array):
            return super().allgather(array)
        array = self.cupy.ascontiguousarray(array)
        out = self.cupy.empty((self.size,) + array.shape, array.dtype)
        stream = self.cupy.cuda.get_current_stream()
        self.nccl_comm.allGather(array.data.ptr, out.data.ptr, array.size, self._dtype(array), stream.ptr)
        return list(out)

    def barrier(self):
        self.cupy.cuda.get_current_stream().synchronize()
        super().barrier()

    def close(self):
        self.cupy.cuda.get_current_stream().synchronize()
        self.nccl_comm.destroy()
        super().close()
