"""``mg.save`` / ``mg.load``: checkpoints that can never run code when loaded.

A checkpoint is a zip container holding ``minigrad.json`` (a magic string, a format version and the nested
structure: dicts, lists, tuples, numbers, strings, tensors) and one raw member per array: its bytes in C order,
described in the manifest by dtype, shape, size and SHA-256. Nothing is unpickled, so a hostile file can at
worst fail to load. Writes go to a temporary file in the target directory, are fsynced, then renamed over the
target, so a crash mid-save leaves the previous checkpoint intact.
"""
import hashlib
import json
import os
import secrets
import zipfile

import numpy as np

from minigrad import backend
from minigrad.core import Tensor
from minigrad.nn.module import Parameter

MAGIC = "minigrad-checkpoint"
VERSION = 1
MANIFEST = "minigrad.json"
_KINDS = "biufc"  # bool, signed/unsigned int, float, complex: plain bytes, no Python objects


class CheckpointError(ValueError):
    """A file that is not a readable minigrad checkpoint: foreign, truncated or corrupted."""


# ---- saving ---------------------------------------------------------------------------------------------------
class _Encoder:
    """Turns the object tree into JSON-able nodes and collects the arrays (one member per distinct array)."""

    def __init__(self):
        self.arrays, self.index, self.active = [], {}, set()

    def array(self, a, where):
        key = id(a)
        if key not in self.index:
            host = backend.to_numpy(a)
            if host.dtype.kind not in _KINDS:
                raise TypeError(f"mg.save: array at {where} has dtype {host.dtype}; only bool, integer, float and "
                                "complex arrays can be saved")
            self.index[key] = len(self.arrays)
            host = host if host.flags.c_contiguous else host.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
            self.arrays.append((a, host))  # holding `a` keeps its id unique
        return self.index[key]

    def node(self, obj, where="obj"):
        if obj is None or isinstance(obj, (bool, int, str)):  # JSON as they are (ints of any size)
            return obj
        if isinstance(obj, float):
            return {"type": "float", "hex": obj.hex()}  # exact, and NaN/inf stay valid JSON
        if isinstance(obj, Tensor):
            node = {"type": "tensor", "array": self.array(obj.data, where), "requires_grad": obj.requires_grad}
            if type(obj).__name__ == "Parameter":
                node["parameter"] = True
            if isinstance(obj.name, str):
                node["name"] = obj.name
            return node
        if backend.is_array(obj):
            return {"type": "array", "array": self.array(obj, where)}
        if isinstance(obj, np.generic):
            return {"type": "scalar", "array": self.array(np.asarray(obj), where)}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self.active:
                raise ValueError(f"mg.save: {where} contains itself; cyclic structures cannot be saved")
            self.active.add(id(obj))
            if isinstance(obj, dict):
                items = [[self.key(k, where), self.node(v, f"{where}[{k!r}]")] for k, v in obj.items()]
                out = {"type": "dict", "items": items}
            else:
                out = {"type": "tuple" if isinstance(obj, tuple) else "list",
                       "items": [self.node(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
            self.active.discard(id(obj))
            return out
        raise TypeError(f"mg.save: cannot store {where} of type {type(obj).__name__}; a checkpoint holds dicts, "
                        "lists, tuples, Tensors, NumPy/CuPy arrays, numbers, strings, booleans and None")

    def key(self, k, where):
        if isinstance(k, (str, int, float, tuple)) or k is None:
            return self.node(k, f"{where} key")
        raise TypeError(f"mg.save: dict key {k!r} in {where} has type {type(k).__name__}; keys may be str, int, "
                        "float, bool, None or tuples of those")


def _raw(a):
    """The bytes of a C-contiguous array without copying them."""
    return a.reshape(-1).view(np.uint8).data


def save(obj, path):
    """Write ``obj`` (nested dicts/lists/tuples of Tensors, arrays, numbers, strings) to ``path`` atomically."""
    enc = _Encoder()
    root = enc.node(obj)
    members = []
    for i, (_, a) in enumerate(enc.arrays):
        members.append({"member": f"arrays/{i}.bin", "dtype": a.dtype.str, "shape": list(a.shape),
                        "nbytes": a.nbytes, "sha256": hashlib.sha256(_raw(a)).hexdigest()})
    manifest = {"format": MAGIC, "version": VERSION, "root": root, "arrays": members}

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"mg.save: the directory {directory} of {path} does not exist; create it first")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(MANIFEST, json.dumps(manifest, separators=(",", ":")))
                for m, (_, a) in zip(members, enc.arrays):
                    with zf.open(m["member"], "w", force_zip64=a.nbytes > 2**31) as out:
                        out.write(_raw(a))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable (POSIX; not possible on every platform)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ---- loading --------------------------------------------------------------------------------------------------
def load(path, device="cpu"):
    """Read a checkpoint written by ``mg.save``; Tensors and arrays land on ``device``."""
    path = os.fspath(path)
    device = backend.parse_device(device)
    bad = lambda what: CheckpointError(f"{path}: {what}")  # noqa: E731
    try:
        zf = zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile:
        raise bad("not a minigrad checkpoint (not a zip container, or truncated)") from None
    with zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            hint = " (it looks like a PyTorch file)" if any(n.endswith("data.pkl") for n in names) else ""
            raise bad(f"not a minigrad checkpoint: no {MANIFEST} manifest{hint}")
        try:
            manifest = json.loads(zf.read(MANIFEST).decode("utf-8"))
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError) as e:
            raise bad(f"the manifest is corrupted ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != MAGIC:
            raise bad(f"not a minigrad checkpoint: the manifest's format is not {MAGIC!r}")
        if manifest.get("version") != VERSION:
            raise bad(f"checkpoint format version {manifest.get('version')!r}; this minigrad reads version {VERSION}")
        try:
            arrays = [_read_array(zf, m, names, bad) for m in manifest["arrays"]]
            arrays = [a if device == "cpu" else backend.to_device(a, device) for a in arrays]
            return _decode(manifest["root"], arrays)
        except CheckpointError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise bad(f"the manifest is malformed ({type(e).__name__}: {e})") from None


def _read_array(zf, m, names, bad):
    member = m["member"]
    if member not in names:
        raise bad(f"array member {member!r} is missing (truncated file?)")
    dtype = np.dtype(m["dtype"])
    shape = tuple(int(s) for s in m["shape"])
    if dtype.kind not in _KINDS or any(s < 0 for s in shape):
        raise bad(f"array {member!r} has an unsupported dtype {dtype} or shape {shape}")
    info = zf.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:  # stored bytes only: a file cannot expand beyond its size
        raise bad(f"array {member!r} is compressed; minigrad checkpoints store raw bytes")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes != m["nbytes"] or info.file_size != nbytes:
        raise bad(f"array {member!r}: {info.file_size} bytes stored, {nbytes} expected for {dtype} {shape}")
    try:
        raw = zf.read(member)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise bad(f"array {member!r} is corrupted or truncated ({e})") from None
    if hashlib.sha256(raw).hexdigest() != m["sha256"]:
        raise bad(f"array {member!r} is corrupted: its SHA-256 does not match the manifest")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _decode(node, arrays):
    if node is None or isinstance(node, (bool, int, str)):
        return node
    kind = node["type"]
    if kind == "float":
        return float.fromhex(node["hex"])
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays) for v in node["items"]]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["items"]}
    a = arrays[node["array"]]
    if kind == "array":
        return a
    if kind == "scalar":
        return backend.to_numpy(a)[()]
    if kind == "tensor":
        if node.get("parameter"):
            t = Parameter(a, requires_grad=node["requires_grad"])
        else:
            t = Tensor(a, requires_grad=node["requires_grad"])
        t.name = node.get("name")
        return t
    raise ValueError(f"unknown node type {kind!r}")
