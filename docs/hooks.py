"""MkDocs hook: pages may link to the code they explain (``../../models/crf.py``). Such links point outside
``docs/``; this hook publishes each linked source file as a page and points the link there, so
``mkdocs build --strict`` still fails on a link to a file that does not exist.

It also renders the math at build time: every ``\\( \\)`` / ``\\[ \\]`` formula (marked by pymdownx.arithmatex)
becomes MathML (latex2mathml, in the ``docs`` extra), which browsers draw natively, so the built site reads
the same with no network: no script is fetched at view time. A formula that cannot be converted fails the build."""
import html
import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
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
    config["nav"] = [{"Home": "index.md"}, {"Guided tour": pages("tour")},
                     {"Coming from PyTorch": "pytorch.md"}, {"Architecture": "architecture.md"},
                     {"Testing": "testing.md"},
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


MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
DELIMITERS = (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"))


def _latex(body):
    """The TeX inside arithmatex's delimiters."""
    body = html.unescape(body).strip()
    for start, end in DELIMITERS:
        if body.startswith(start) and body.endswith(end):
            return body[len(start):-len(end)].strip()
    return body


def on_page_content(content, page, config, files):
    try:
        from latex2mathml.converter import convert
    except ImportError:
        raise PluginError("the docs render math at build time with latex2mathml: pip install -e '.[docs]'") from None

    def mathml(tex, block):
        try:
            return convert(tex.strip(), display="block" if block else "inline")
        except Exception as e:
            raise PluginError(f"{page.file.src_uri}: cannot render {tex!r} as MathML "
                              f"({type(e).__name__}: {e})") from None

    def retitle(items):  # the table of contents repeats the headings' TeX raw, outside the page's content
        for item in items:
            item.title = INLINE.sub(lambda m: f'<span class="math">{mathml(m.group(1), False)}</span>',
                                    html.unescape(item.title))
            retitle(item.children)

    def loose_blocks(part):  # $$ … $$ that arithmatex left alone (display math inside list items)
        return DISPLAY.sub(lambda m: f'<span class="math">{mathml(html.unescape(m.group(1)), True)}</span>', part)

    retitle(page.toc)
    content = SPLIT_DISPLAY.sub(lambda m: f'<span class="math">{mathml(_latex(m.group(1)), True)}</span>', content)
    content = MATH.sub(lambda m: f'<{m.group(1)} class="math">{mathml(_latex(m.group(2)), m.group(1) == "div")}'
                                 f'</{m.group(1)}>', content)
    return "".join(p if CODE.fullmatch(p) else loose_blocks(p) for p in CODE.split(content))


INLINE = re.compile(r"\\\((.+?)\\\)")
SPLIT_DISPLAY = re.compile(r'\$<span class="arithmatex">(.*?)</span>\$', re.S)  # $$…$$ inside a paragraph
DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
CODE = re.compile(r"(<pre\b.*?</pre>|<code\b.*?</code>)", re.S)
