"""Open the built site in headless Chromium with every host unreachable and check that the math is drawn.

    python docs/check_offline.py SITE_DIR      (after: mkdocs build -d SITE_DIR; needs the system's chromium)

For the home page and one derivation page it reads the DOM Chromium produced and checks that no raw TeX
delimiter (\\(, \\[, $$) is left in the text a reader sees (code blocks aside), that the page holds MathML when
its source has math, and that nothing was fetched from the network (every host name fails to resolve). Every
other built page (source listings aside) is scanned for raw TeX without a browser. It also
saves a screenshot of each page next to it (``*.offline.png``) for a look by eye. Exit status 0 when all pass.
"""
import html.parser
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PAGES = ("index.html", "derivations/crf.html")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class VisibleText(html.parser.HTMLParser):
    """The text outside <script>, <style>, <pre>, <code> and <math>: what a reader sees as prose."""

    HIDDEN = {"script", "style", "pre", "code", "math", "head"}

    def __init__(self):
        super().__init__()
        self.depth, self.parts, self.math = 0, [], 0

    def handle_starttag(self, tag, attrs):
        self.math += tag == "math"
        self.depth += tag in self.HIDDEN

    def handle_endtag(self, tag):
        self.depth -= tag in self.HIDDEN and self.depth > 0

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


RAW = ("\\(", "\\[", "$$", "\\begin{", "\\frac")


def raw_tex(prose):
    """The TeX markers found in a page's visible prose."""
    return [d for d in RAW if d in prose]


def static_scan(site):
    """Every built page but the source listings: (page, markers) where raw TeX is left in the prose."""
    out = []
    for page in sorted(Path(site).rglob("*.html")):
        if "source" in page.relative_to(site).parts:
            continue
        text = VisibleText()
        text.feed(page.read_text(encoding="utf-8"))
        found = raw_tex("".join(text.parts))
        if found:
            out.append((page.relative_to(site).as_posix(), found))
    return out


def browser():
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    return None


def render(exe, page, profile):
    """The DOM after Chromium loaded ``page`` offline, and a screenshot beside it."""
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000"]
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    if dom.returncode != 0:
        raise RuntimeError(f"{exe} failed on {page}: {dom.stderr.strip()[-500:]}")
    subprocess.run(flags + ["--window-size=1200,2000", f"--screenshot={page.with_suffix('.offline.png')}",
                            page.as_uri()], capture_output=True, timeout=120)
    return dom.stdout


def main(site):
    exe = browser()
    if exe is None:
        print(f"check_offline: no Chromium found ({', '.join(BROWSERS)}); install the system package 'chromium'")
        return 2
    failures = []
    with tempfile.TemporaryDirectory() as profile:
        for rel in PAGES:
            page = Path(site).resolve() / rel
            if not page.is_file():
                failures.append(f"{rel}: not in the built site {site}")
                continue
            dom = render(exe, page, profile)
            text = VisibleText()
            text.feed(dom)
            prose = "".join(text.parts)
            raw = raw_tex(prose)
            if raw:
                at = prose.index(raw[0])
                failures.append(f"{rel}: raw TeX visible ({raw[0]!r}): ...{prose[max(0, at - 60):at + 60]!r}...")
            if rel.startswith("derivations/") and text.math == 0:
                failures.append(f"{rel}: no MathML element in the rendered page")
            print(f"check_offline: {rel}: {text.math} MathML formulas, "
                  f"{'raw TeX visible' if raw else 'no raw TeX visible'} ({exe}, offline)")
    for rel, found in static_scan(Path(site).resolve()):
        failures.append(f"{rel}: raw TeX {found} in the built HTML")
    for f in failures:
        print(f"check_offline: FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
