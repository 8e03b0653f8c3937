"""``mg.save`` / ``mg.load``: checkpoints that can never run code when loaded.

A checkpoint is a zip container holding ``minigrad.json`` (a magic string, a format version and the nested
structure: dicts, lists, tuples, numbers, strings, tensors) and one raw member per array: its bytes in C order,
described in the manifest by dtype, shape, size and SHA-256. Nothing is unpickled, so a hostile file can at
worst fail to load. Writes go to a temporary file in the target directory, are fsynced, then renamed over the
target, so a crash mid-save leaves the previous checkpoint intact (the next save of that path removes the
temporary a killed save left behind).

Loading costs at most about the file's size plus the arrays it returns: every member is stored uncompressed,
each is read once (a manifest naming one member twice, or members overlapping in the file, is refused), the
manifest is bounded in size and the structure in depth. Every way a file can be damaged raises
``CheckpointError``.
"""
import hashlib
import json
import os
import secrets
import socket
import zipfile

import numpy as np

from minigrad import backend
from minigrad.core import Tensor
from minigrad.nn.module import Parameter

MAGIC = "minigrad-checkpoint"
VERSION = 1
MANIFEST = "minigrad.json"
_KINDS = "biufc"  # bool, signed/unsigned int, float, complex: plain bytes, no Python objects
MAX_DEPTH = 100  # nesting of dicts/lists/tuples, enforced by save and load alike (no RecursionError either way)
MAX_MANIFEST_BYTES = 64 << 20  # the manifest describes structure only: millions of entries fit in this


class CheckpointError(ValueError):
    """A file that is not a readable minigrad checkpoint: foreign, truncated or corrupted."""


# ---- saving ---------------------------------------------------------------------------------------------------
class _Encoder:
    """Turns the object tree into JSON-able nodes and collects the arrays (one member per distinct array)."""

    def __init__(self):
        self.arrays, self.index, self.active = [], {}, set()
        self.depth = 0

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
            if len(self.active) >= MAX_DEPTH:
                raise ValueError(f"mg.save: {where[:200]} is nested deeper than {MAX_DEPTH} levels of dicts, lists "
                                 "and tuples; flatten the structure")
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
    _remove_stale_temporaries(directory, os.path.basename(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp")
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


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]  # temporaries name their writer's host


def _remove_stale_temporaries(directory, name):
    """Delete the temporaries of earlier saves of ``name`` whose writer was killed: those written by a process
    of this machine that no longer runs. A save in progress, here or on another host, is left alone."""
    prefix, suffix = f".{name}.", ".tmp"
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(suffix)):
            continue
        parts = entry[len(prefix):-len(suffix)].split("-")
        if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit() or _running(int(parts[1])):
            continue
        try:
            os.remove(os.path.join(directory, entry))
        except OSError:
            pass


def _running(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else (PermissionError), or the platform cannot tell
        return True
    return True


# ---- loading --------------------------------------------------------------------------------------------------
def load(path, device="cpu"):
    """Read a checkpoint written by ``mg.save``; Tensors and arrays land on ``device``."""
    path = os.fspath(path)
    device = backend.parse_device(device)
    with open(path, "rb") as f:  # a missing or unreadable file is an OSError, not a damaged checkpoint
        size = os.fstat(f.fileno()).st_size
        try:
            arrays, root = _read(f, size, path)
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001  (a hostile file: whatever zipfile or json raise is a bad file)
            raise CheckpointError(f"{path}: the file is damaged ({type(e).__name__}: {e})") from None
    try:
        arrays = [a if device == "cpu" else backend.to_device(a, device) for a in arrays]
        return _decode(root, arrays, 0, path)
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise CheckpointError(f"{path}: the manifest is malformed ({type(e).__name__}: {e})") from None


def _read(f, size, path):
    """The arrays and the root node of the checkpoint in the open file ``f`` of ``size`` bytes."""
    bad = lambda what: CheckpointError(f"{path}: {what}")  # noqa: E731
    try:
        zf = zipfile.ZipFile(f, "r")
    except zipfile.BadZipFile:
        raise bad("not a minigrad checkpoint (not a zip container, or truncated)") from None
    with zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        if MANIFEST not in names:
            hint = " (it looks like a PyTorch file)" if any(n.endswith("data.pkl") for n in names) else ""
            raise bad(f"not a minigrad checkpoint: no {MANIFEST} manifest{hint}")
        if len(names) != len(infos):
            raise bad("two members of the container share a name")
        info = zf.getinfo(MANIFEST)
        if info.compress_type != zipfile.ZIP_STORED:
            raise bad("the manifest is compressed; minigrad checkpoints store it uncompressed")
        if info.file_size > min(size, MAX_MANIFEST_BYTES):
            raise bad(f"the manifest claims {info.file_size} bytes (the file has {size}; at most "
                      f"{MAX_MANIFEST_BYTES} are read)")
        try:
            manifest = json.loads(zf.read(MANIFEST).decode("utf-8"))
        except RecursionError:
            raise bad(f"the manifest is nested too deeply (more than {MAX_DEPTH} levels are refused)") from None
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError) as e:
            raise bad(f"the manifest is corrupted ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != MAGIC:
            raise bad(f"not a minigrad checkpoint: the manifest's format is not {MAGIC!r}")
        if manifest.get("version") != VERSION:
            raise bad(f"checkpoint format version {manifest.get('version')!r}; this minigrad reads version {VERSION}")
        entries = manifest.get("arrays")
        if not isinstance(entries, list) or "root" not in manifest:
            raise bad("the manifest is malformed: no array list or no root")
        _check_members(zf, entries, names, size, bad)
        return [_read_array(zf, m, names, bad) for m in entries], manifest["root"]


def _check_members(zf, entries, names, size, bad):
    """Bound the cost of reading before reading anything: each member named once, stored uncompressed, the
    members not overlapping in the file, and all of them together no larger than the file."""
    seen, spans, total = set(), [], 0
    for m in entries:
        member = m.get("member") if isinstance(m, dict) else None
        if not isinstance(member, str) or member not in names or member == MANIFEST:
            raise bad(f"array member {member!r} is missing (truncated file?)")
        if member in seen:
            raise bad(f"array member {member!r} is named twice in the manifest")
        seen.add(member)
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:  # stored bytes only: a file cannot expand beyond its size
            raise bad(f"array {member!r} is compressed; minigrad checkpoints store raw bytes")
        total += info.file_size
        spans.append((info.header_offset, info.header_offset + 30 + len(info.filename) + info.compress_size))
    if total > size:
        raise bad(f"the arrays claim {total} bytes, more than the file's {size}")
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start < end:
            raise bad("array members overlap in the file")


def _read_array(zf, m, names, bad):
    member = m["member"]
    dtype = np.dtype(m["dtype"])
    shape = tuple(int(s) for s in m["shape"])
    if dtype.kind not in _KINDS or dtype.hasobject or any(s < 0 for s in shape):
        raise bad(f"array {member!r} has an unsupported dtype {dtype} or shape {shape}")
    info = zf.getinfo(member)
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


def _decode(node, arrays, depth, path):
    if node is None or isinstance(node, (bool, int, str)):
        return node
    kind = node["type"]
    if kind == "float":
        return float.fromhex(node["hex"])
    if kind in ("list", "tuple", "dict"):
        if depth >= MAX_DEPTH:
            raise CheckpointError(f"{path}: the structure is nested deeper than {MAX_DEPTH} levels")
        if kind == "dict":
            return {_decode(k, arrays, depth + 1, path): _decode(v, arrays, depth + 1, path) for k, v in node["items"]}
        items = [_decode(v, arrays, depth + 1, path) for v in node["items"]]
        return items if kind == "list" else tuple(items)
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
