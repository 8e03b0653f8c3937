"""Hostile and damaged checkpoints: bounded cost, CheckpointError for every kind of damage, bounded nesting,
stale temporaries of killed saves removed."""
import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import minigrad as mg
from minigrad import io
from minigrad.io import MAX_DEPTH, CheckpointError


def _manifest(root, arrays):
    return {"format": "minigrad-checkpoint", "version": 1, "root": root, "arrays": arrays}


def _entry(i, raw, dtype="<f4", shape=None):
    shape = [len(raw) // np.dtype(dtype).itemsize] if shape is None else shape
    return {"member": f"arrays/{i}.bin", "dtype": dtype, "shape": shape, "nbytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest()}


def test_manifest_naming_one_member_many_times_is_refused(tmp_path):
    raw = np.zeros(1 << 16, np.float32).tobytes()
    entry = _entry(0, raw)
    path = tmp_path / "dup.mgz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("minigrad.json", json.dumps(_manifest({"type": "list", "items": [
            {"type": "array", "array": i} for i in range(1000)]}, [entry] * 1000)))
        zf.writestr("arrays/0.bin", raw)
    with pytest.raises(CheckpointError, match="named twice"):
        mg.load(path)


def test_members_sharing_their_bytes_are_refused(tmp_path):
    """Two central-directory entries pointing at one stored member (zip checks that the local header names the
    member, so the copies share its name)."""
    raw = np.arange(4096, dtype=np.float32).tobytes()
    path = tmp_path / "overlap.mgz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("minigrad.json", json.dumps(_manifest({"type": "list", "items": [
            {"type": "array", "array": 0}, {"type": "array", "array": 1}]}, [_entry(0, raw), _entry(1, raw)])))
        zf.writestr("arrays/0.bin", raw)
    data = bytearray(path.read_bytes())
    cd = data.rindex(b"PK\x01\x02")  # the last central entry (arrays/0.bin): copy it under a new name
    eocd = data.rindex(b"PK\x05\x06")
    entry = bytes(data[cd:eocd])
    count, size = struct.unpack("<HI", data[eocd + 10:eocd + 16])
    data[eocd:eocd] = entry
    eocd += len(entry)
    data[eocd + 8:eocd + 16] = struct.pack("<HHI", count + 1, count + 1, size + len(entry))
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:  # zip itself accepts it
        assert len(zf.infolist()) == 3
    with pytest.raises(CheckpointError, match="share a name"):
        mg.load(path)


def test_compressed_or_oversized_manifest_is_refused(tmp_path):
    path = tmp_path / "deflated.mgz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("minigrad.json", json.dumps(_manifest(None, [])) + " " * (1 << 20))
    assert path.stat().st_size < 10_000
    with pytest.raises(CheckpointError, match="manifest is compressed"):
        mg.load(path)
    big = tmp_path / "big.mgz"
    with zipfile.ZipFile(big, "w") as zf:
        zf.writestr("minigrad.json", json.dumps(_manifest(None, [])))
    data = bytearray(big.read_bytes())
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 24:cd + 28] = struct.pack("<I", 2**31)  # uncompressed size claimed in the central directory
    big.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="manifest claims 2147483648 bytes"):
        mg.load(big)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 5000])
def test_deeply_nested_manifest_raises_checkpoint_error(tmp_path, depth):
    text = '{"type":"list","items":[' * depth + "]}" * depth
    path = tmp_path / "deep.mgz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("minigrad.json", '{"format":"minigrad-checkpoint","version":1,"arrays":[],"root":' + text + "}")
    with pytest.raises(CheckpointError, match="nested"):
        mg.load(path)


def test_save_refuses_over_deep_nesting_and_round_trips_the_limit(tmp_path):
    deep = []
    for _ in range(599):
        deep = [deep]
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_DEPTH}"):
        mg.save(deep, tmp_path / "deep.mgz")
    ok = []
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    mg.save(ok, tmp_path / "ok.mgz")
    assert mg.load(tmp_path / "ok.mgz") == ok


@pytest.mark.parametrize("damage", ["encrypted", "method", "bad_local_header", "empty", "zip_of_garbage",
                                    "nbytes_lie", "not_a_dict", "bad_float", "int_requires_grad"])
def test_every_kind_of_damage_is_a_checkpoint_error(tmp_path, damage):
    path = tmp_path / "x.mgz"
    mg.save({"w": mg.randn(8, requires_grad=True), "lr": 0.5}, path)
    data = bytearray(path.read_bytes())
    cd = data.index(b"PK\x01\x02")
    if damage == "encrypted":
        data[cd + 8] |= 1  # general purpose flag bit 0 in the central directory
    elif damage == "method":
        data[cd + 10:cd + 12] = struct.pack("<H", 99)
    elif damage == "bad_local_header":
        data[0:4] = b"XXXX"
    elif damage == "empty":
        data = bytearray()
    elif damage == "zip_of_garbage":
        data = bytearray(b"PK\x05\x06" + bytes(18))
    else:
        manifest = json.loads(zipfile.ZipFile(path).read("minigrad.json"))
        if damage == "nbytes_lie":
            manifest["arrays"][0]["shape"] = [2**62, 2**62]
        elif damage == "not_a_dict":
            manifest["root"] = [1, 2]
        elif damage == "bad_float":
            manifest["root"]["items"][1][1]["hex"] = "zz"
        else:
            manifest["arrays"][0]["dtype"] = "<i4"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("minigrad.json", json.dumps(manifest))
            zf.writestr("arrays/0.bin", mg.randn(8).numpy().tobytes())
        data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="x.mgz"):
        mg.load(path)


def test_a_save_removes_temporaries_of_killed_saves_of_the_same_path(tmp_path):
    path = tmp_path / "model.mgz"
    code = ("import os, minigrad.io as io, numpy as np\n"
            "io.os.fsync = lambda fd: os.kill(os.getpid(), 9)\n"  # die mid-save, after the bytes are written
            f"io.save({{'w': np.ones(1000)}}, {str(path)!r})\n")
    subprocess.run([sys.executable, "-c", code], cwd=os.getcwd(), check=False)
    stale = [n for n in os.listdir(tmp_path) if n.startswith(".model.mgz.")]
    assert len(stale) == 1 and not path.exists()
    subprocess.run([sys.executable, "-c", code], cwd=os.getcwd(), check=False)  # the second killed save removed it
    assert [n for n in os.listdir(tmp_path) if n.startswith(".model.mgz.")] != stale
    kept = [".other.mgz.5bce98-1-0000.tmp",  # another path
            f".model.mgz.{io._HOST}-{os.getpid()}-0000.tmp",  # a save in progress (this process)
            ".model.mgz.zzzzzz-1-0000.tmp"]  # written on another machine
    for name in kept:
        (tmp_path / name).write_bytes(b"x")
    mg.save({"w": np.zeros(3)}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["model.mgz"])
