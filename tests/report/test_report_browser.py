"""The report in a real browser: headless Chromium shows it at 1366 × 768 and prints it to PDF.

Checked: no figure is wider than the viewport (nor than its 1,100 px column), none is wider than the
printed page's printable area, print keeps every figure on one page (each image is drawn once, inside
one page's printable area), and no word of a table cell is broken across two lines.  Chromium is the Debian package ``chromium`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from compare_mm.report import write_report
from compare_mm.report.layout import MAX_HEIGHT_IN, MAX_WIDTH_PX, png_info

from .conftest import make_study

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (.ci/run installs it)")]

#: measures every figure image once the page has laid out, into a <pre> that --dump-dom prints
MEASURE = r"""<script>
window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('figure img')].map(i => {
    const r = i.getBoundingClientRect();
    return {shown: r.width, shown_h: r.height, natural: i.naturalWidth, left: r.left, right: r.right};
  });
  // a word of a table cell drawn on two lines ('parame' / 'ter'): its range has rectangles at two heights
  const split = [];
  for (const cell of document.querySelectorAll('th, td')) {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
      for (const m of t.data.matchAll(/\S+/g)) {
        const r = document.createRange(); r.setStart(t, m.index); r.setEnd(t, m.index + m[0].length);
        const tops = new Set([...r.getClientRects()].map(q => Math.round(q.top)));
        if (tops.size > 1) split.push(m[0]);
      }
    }
  }
  const pre = document.createElement('pre'); pre.id = 'measure';
  pre.textContent = JSON.stringify({viewport: document.documentElement.clientWidth,
                                    scroll: document.documentElement.scrollWidth, imgs: imgs, split: split});
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = make_study(tmp_path_factory.mktemp("browser") / "study", bayes=True)
    return write_report(out)


def _measure(report: Path, width: int, height: int) -> dict:
    probe = report.with_name(f"probe-{width}.html")
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium(f"--window-size={width},{height}", "--virtual-time-budget=5000", "--dump-dom",
                    probe.as_uri()).stdout
    m = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.S)
    assert m, "the measuring script did not run"
    import html

    return json.loads(html.unescape(m.group(1)))


def test_screen_1366x768_no_figure_wider_than_viewport(report):
    shot = report.with_name("screen-1366x768.png")
    _chromium("--window-size=1366,768", f"--screenshot={shot}", report.as_uri())
    assert png_info(shot)[:2] == (1366, 768)
    m = _measure(report, 1366, 768)
    n_figures = len(re.findall(r"<figure><img", report.read_text(encoding="utf-8")))
    assert len(m["imgs"]) == n_figures >= 5
    assert m["scroll"] <= m["viewport"], "the page scrolls sideways"
    for img in m["imgs"]:
        assert img["natural"] <= MAX_WIDTH_PX
        assert img["shown"] <= min(m["viewport"], 1100) + 0.5 and img["right"] <= m["viewport"] + 0.5
        assert img["shown_h"] <= 768, "a figure taller than a laptop screen"
    assert m["split"] == [], f"table cells break words across lines: {m['split'][:5]}"
    for png in (report.parent / "figures").glob("*.png"):
        w, h, ppi = png_info(png)
        assert w <= MAX_WIDTH_PX and ppi and h / ppi <= MAX_HEIGHT_IN + 0.8, png.name


def test_narrow_window_scales_figures_down(report):
    m = _measure(report, 700, 900)  # about the printable width of a page, in CSS px
    assert m["scroll"] <= m["viewport"]
    assert all(img["right"] <= m["viewport"] + 0.5 for img in m["imgs"])
    assert m["split"] == [], f"table cells break words across lines: {m['split'][:5]}"


def _pdf_placements(pdf: bytes) -> tuple[list[dict], int]:
    """(image placements, page count) of a Chromium (Skia) PDF: each ``/X… Do`` with the ``cm`` before it,
    and the page's clip rectangle, in the page's content units."""
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
    out = []
    for m in re.finditer(rb"\d+ 0 obj\s*<<(.*?)>>\s*stream\r?\n", pdf, re.S):
        if b"/Subtype /Image" in m.group(1) or b"/FlateDecode" not in m.group(1):
            continue
        end = pdf.find(b"endstream", m.end())
        try:
            data = zlib.decompress(pdf[m.end():end])
        except zlib.error:
            continue
        clip = re.search(rb"q\n([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+) re\nW\* n", data)
        for d in re.finditer(rb"q\n([-\d.]+) 0 0 ([-\d.]+) ([-\d.]+) ([-\d.]+) cm\n(?:[^\n]*\n){0,8}?/(X\d+) Do",
                             data):
            if clip is None:
                continue
            a, dd, e, f = (float(v) for v in d.groups()[:4])
            cx, cy, cw, ch = (float(v) for v in clip.groups())
            out.append({"name": d.group(5).decode(), "x0": e, "x1": e + a, "y0": min(f, f + dd), "y1": max(f, f + dd),
                        "clip": (cx, cy, cx + cw, cy + ch)})
    return out, pages


def test_print_keeps_figures_inside_one_page(report):
    pdf_path = report.with_name("report.pdf")
    _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf_path}", report.as_uri())
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF")
    assert re.search(rb"/MediaBox\s*\[0 0 612 792\]", pdf), "Letter pages expected"
    placed, pages = _pdf_placements(pdf)
    n_figures = len(re.findall(r"<figure><img", report.read_text(encoding="utf-8")))
    assert pages >= 2
    # a figure cut by a page break would be drawn twice (once on each page): every image exactly once
    names = [p["name"] for p in placed]
    assert len(names) == n_figures and len(set(names)) == n_figures, names
    for p in placed:
        x0, y0, x1, y1 = p["clip"]
        assert p["x0"] >= x0 - 1 and p["x1"] <= x1 + 1, f"figure {p['name']} wider than the printable page"
        assert p["y0"] >= y0 - 1 and p["y1"] <= y1 + 1, f"figure {p['name']} runs past the page"
    css = report.read_text(encoding="utf-8")
    assert re.search(r"@media print\{[^@]*figure\{break-inside:avoid;page-break-inside:avoid\}", css)
