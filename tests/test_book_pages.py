"""Every page of the built book, as a reader sees it: rendered by headless Chromium (scripts run), screenshotted, and
checked for what must never reach a reader: an empty figure, a truncated table, NaN or None in a table, a Python
warning or traceback, a raw ``{glue}`` role, the papermill parameters cell.

The pages are the TOC's (the opening page, every chapter, the bibliography). The screenshots are kept under
pytest's temporary folder (the path is printed with ``-s``), for a look by eye.
"""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import pytest
import yaml
from book_helpers import REPO
from test_book import CHROMIUM, RUN_SCRIPTS, _chromium, built_html  # noqa: F401 (built_html: the shared fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.book,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does it)"),
]


def toc_pages() -> list[str]:
    """The book's pages in TOC order, as paths of ``_build/html`` without the ``.html`` suffix."""
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("chapters", toc.get("parts", [])))
    return [p.removesuffix(".ipynb").removesuffix(".md") for p in pages]


PAGES = toc_pages()
WARNINGS = ("Traceback", "Warning:", "UserWarning", "FutureWarning", "DeprecationWarning", "RuntimeWarning",
            "ConvergenceWarning")
MISSING_CELLS = {"NaN", "nan", "None", "<NA>", "NaT"}
TRUNCATED_CELLS = {"...", "…"}
# What a drawn Plotly trace leaves in the SVG: a path with geometry (bars, markers, lines, fills, violins, boxes),
# or a heatmap's image.
MARK = re.compile(r'<path[^>]*class="(?:point|js-line|js-fill|violin|box)\b[^"]*"[^>]*\sd="M[^"]'
                  r'|<path[^>]*\sd="M[^"][^"]*"[^>]*class="(?:point|js-line|js-fill|violin|box)\b'
                  r'|<g class="point\b[^"]*">\s*<path[^>]*\sd="M[^"]'
                  r'|<g class="hm"[^>]*>\s*<image')


@pytest.fixture(scope="module")
def rendered(built_html, tmp_path_factory) -> dict[str, tuple[str, str]]:  # noqa: F811
    """Page -> (its HTML file, its DOM after the scripts ran); a screenshot of each page is saved beside."""
    shots = tmp_path_factory.mktemp("book-pages")
    print(f"\nscreenshots of the book's pages: {shots}")
    pages = {}
    for page in PAGES:
        path = built_html / f"{page}.html"
        assert path.is_file(), f"the TOC page {page} was not built: {path} is missing"
        dom = _chromium(RUN_SCRIPTS, "--dump-dom", path.as_uri())
        _chromium(RUN_SCRIPTS, f"--screenshot={shots / (Path(page).name + '.png')}", "--window-size=1280,12000",
                  path.as_uri())
        pages[page] = (path.read_text(encoding="utf-8"), dom)
    return pages


def visible_text(dom: str) -> str:
    """The page's text as a reader sees it: no scripts, styles or tags, entities decoded."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", body))


def table_cells(dom: str) -> list[str]:
    """The text of every table cell of the page (header cells included)."""
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for table in re.findall(r"<table\b.*?</table>", dom, flags=re.S)
            for cell in re.findall(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", table, flags=re.S)]


def figures(dom: str) -> list[str]:
    """The DOM of each Plotly figure of the page, in order."""
    starts = [m.start() for m in re.finditer(r'<div[^>]*class="plotly-graph-div', dom)]
    return [dom[a:b] for a, b in zip(starts, starts[1:] + [len(dom)])]


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_no_warning_traceback_or_raw_glue(rendered, page):
    _, dom = rendered[page]
    text = visible_text(dom)
    shown = [w for w in WARNINGS if w in text]
    assert not shown, f"{page} shows {shown}: " + "; ".join(
        text[max(0, text.index(w) - 120): text.index(w) + 120].strip() for w in shown)
    assert "{glue" not in text, f"{page} shows a raw glue role: ...{text[text.index('{glue') - 80:][:200]}..."
    stray = re.search(r'class="output (?:stderr|traceback)\b[^"]*"[^>]*>(?:<[^>]+>)*([^<]{0,160})', dom)
    assert stray is None, f"{page} shows a cell's stderr or traceback output: {stray and stray.group(1)!r}"


@pytest.mark.parametrize("page", PAGES)
def test_tables_are_complete_without_nan_or_none(rendered, page):
    _, dom = rendered[page]
    cells = table_cells(dom)
    assert not [c for c in cells if c in TRUNCATED_CELLS], f"{page}: a table is truncated ('...' cells)"
    assert not [c for c in cells if c in MISSING_CELLS], (
        f"{page}: table cells show {sorted({c for c in cells if c in MISSING_CELLS})}")
    captions = [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                for c in re.findall(r"<caption\b[^>]*>(.*?)</caption>", dom, flags=re.S)]
    numbered = [c for c in captions if re.match(r"Table \d+\. ", c)]
    assert [int(c.split()[1].rstrip(".")) for c in numbered] == list(range(1, len(numbered) + 1)), (
        f"{page}: tables are not numbered 1, 2, ... in order: {numbered}")
    assert not [c for c in captions if re.match(r"Fig(ure)?\.? ?\d", c)], f"{page}: a table is captioned as a figure"


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_draws_its_marks(rendered, page):
    source, dom = rendered[page]
    assert "cdn.plot.ly" not in source and "cdn.jsdelivr" not in source  # offline: nothing from a CDN
    drawn = figures(dom)
    assert len(drawn) == source.count("Plotly.newPlot("), f"{page}: some figures were not rendered"
    empty = [k + 1 for k, figure in enumerate(drawn) if 'class="main-svg"' not in figure or not MARK.search(figure)]
    assert not empty, f"{page}: figure(s) {empty} (in page order) drew no marks"


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("_generated/")])
def test_no_page_shows_the_injected_parameters_cell(rendered, page):
    _, dom = rendered[page]
    assert "tag_injected-parameters" not in dom and "# Parameters" not in visible_text(dom)
