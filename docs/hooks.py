"""MkDocs hook: pages may link to the code they explain (``../../models/crf.py``). Such links point outside
``docs/``; this hook publishes each linked source file as a page and points the link there, so
``mkdocs build --strict`` still fails on a link to a file that does not exist."""
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("minigrad", "models", "tests", "examples", "benchmarks")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _title(path):
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def on_config(config):
    """The navigation: tour in order, then every derivation page that exists (source pages stay out)."""
    docs = ROOT / "docs"
    pages = lambda folder: [{_title(p): f"{folder}/{p.name}"} for p in sorted((docs / folder).glob("*.md"))]
    config["nav"] = [{"Home": "index.md"}, {"Guided tour": pages("tour")}, {"Architecture": "architecture.md"}, {"Testing": "testing.md"},
                     {"Derivations": pages("derivations")}, {"Results": "results.md"},
                     {"Benchmarks": "benchmarks.md"}]
    config["nav"].append({"Data parallelism": "distributed.md"})
    if (docs / "benchmarks-cuda.md").exists():
        config["nav"].append({"Benchmarks on a GPU": "benchmarks-cuda.md"})
    config["nav"].append({"API reference": "api.md"})
    return config


def _source_files():
    for top in SOURCE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path.relative_to(ROOT).as_posix()


def on_files(files, config):
    for rel in _source_files():
        text = (ROOT / rel).read_text(encoding="utf-8")
        page = f"# `{rel}`\n\n```python\n{text}\n```\n"
        files.append(File.generated(config, f"source/{rel}.md", content=page))
    return files


def on_page_markdown(markdown, page, config, files):
    here = posixpath.dirname(page.file.src_uri)

    def fix(m):
        target, anchor = m.group(1), m.group(2) or ""
        if "://" in target or target.startswith(("mailto:", "/")):
            return m.group(0)
        resolved = posixpath.normpath(posixpath.join("docs", here, target))
        if resolved.startswith("docs/") or not (ROOT / resolved).is_file() or not resolved.endswith(".py"):
            return m.group(0)
        new = posixpath.relpath(f"source/{resolved}.md", here or ".")
        return f"]({new}{anchor})"

    return LINK.sub(fix, markdown)
