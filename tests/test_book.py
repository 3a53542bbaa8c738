"""The book machinery: profiles, the runner (skip, re-run, failing cell), and the built HTML in a real browser."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import struct
import subprocess
import typing
import zlib
from pathlib import Path

import nbformat
import numpy as np
import pytest
from book_helpers import REPO, make_root

from mcef.book import ablations, common, exploration, hgr_analysis, real_results, reporting, robustness
from mcef.book import runner as book
from mcef.book.common import PROFILE_NAMES, ProfileError, load_profile, section_settings

# Every settings dataclass a chapter reads from a profile section: its sizes live in the YAML only.
SECTIONS = {
    "probe": exploration.ProbeSettings, "soft_hgr": hgr_analysis.SoftHgrSettings, "training": reporting.TrainingSettings,
    "training_run": common.RunRecipe, "ablation_run": common.RunRecipe, "ablations": ablations.AblationSettings,
    "efficiency": robustness.EfficiencySettings, "real_text": real_results.RealTextSettings,
    "real_text_finetuned": real_results.RealTextSettings,
    "real_text_controls": real_results.RealTextSettings,
    "real_text_no_context": real_results.RealTextSettings,
    "real_text_longer": real_results.RealTextSettings,
    "real_text_larger": real_results.RealTextSettings,
}  # fmt: skip

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]  # fmt: skip
RUN_SCRIPTS = "--virtual-time-budget=10000"  # let the page's scripts (plotly.js, MathJax) finish first


# ----------------------------------------------------------------------------- fast checks


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_define_every_section_the_chapters_read(name):
    profile = load_profile(name, REPO)
    assert set(profile.sections) == {"synthetic", *SECTIONS}
    for section, cls in SECTIONS.items():
        settings = section_settings(profile, section, cls)
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):  # lists became tuples where the field is a tuple
            assert not (typing.get_origin(hints[field.name]) is tuple) or isinstance(getattr(settings, field.name), tuple)
    assert isinstance(profile.section("synthetic"), dict)
    assert profile.seeds("") == list(range(profile.n_seeds))
    assert profile.seeds("3,4") == [3, 4]
    with pytest.raises(ProfileError, match="has no section 'nope'"):
        profile.section("nope")
    assert load_profile("full", REPO).n_seeds == 5


@pytest.mark.parametrize("cls", sorted(set(SECTIONS.values()), key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_settings_have_no_size_defaults(cls):
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               for f in dataclasses.fields(cls))


def test_a_missing_or_unknown_key_names_the_profile_file_and_the_key(tmp_path):
    make_root(tmp_path)
    path = tmp_path / "configs" / "profiles" / "smoke.yaml"
    path.write_text(path.read_text().replace("  draws: 1", "  drawz: 1"))
    with pytest.raises(ProfileError, match=r"smoke\.yaml: section 'efficiency' has unknown keys \['drawz'\]; "
                                           r"lacks the keys \['draws'\]"):
        robustness.efficiency_settings("smoke", tmp_path)


def test_profiles_resolve_from_the_root_or_the_working_directory(tmp_path, monkeypatch):
    make_root(tmp_path)
    (tmp_path / "configs" / "profiles" / "tiny.yaml").write_text("description: d\nn_seeds: 3\n")
    assert load_profile("tiny", tmp_path).n_seeds == 3
    monkeypatch.chdir(tmp_path)
    assert load_profile("tiny").n_seeds == 3  # the working directory is the project root
    with pytest.raises(ProfileError, match="unknown profile 'huge'.*known profiles"):
        load_profile("huge")


def test_toc_chapters_have_sources():
    names = [c.name for c in book.chapters(REPO)]
    assert "01_data_exploration" in names and "03_soft_hgr" in names
    for chapter in book.chapters(REPO):
        assert chapter.source.is_file()
        assert book.read_source(chapter.source).cells  # one parameters cell, parseable by papermill


def test_mcef_book_is_registered_in_the_cli():
    from mcef.cli import build_parser

    args = build_parser().parse_args(["book", "--profile", "quick", "--only", "03", "--no-html"])
    assert args.profile == "quick" and args.only == "03" and args.no_html and args.func is book._cmd_book


# ----------------------------------------------------------------------------- the runner on a tiny book


def _tiny_book(root: Path) -> None:
    (root / "book").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: _generated/ok\n  - file: _generated/bad\n"
    )
    header = "---\nkernelspec:\n  name: python3\n  display_name: Python 3\n  language: python\n---\n\n"
    parameters = '```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = "smoke"\nvalue = 1\n```\n\n'
    (root / "notebooks" / "ok.md").write_text(header + parameters + "```{code-cell} ipython3\nprint(value * 2)\n```\n")
    (root / "notebooks" / "bad.md").write_text(
        header + "# Bad\n\n" + parameters + "```{code-cell} ipython3\nx = 1\n```\n\n```{code-cell} ipython3\nx / 0\n```\n"
    )


@pytest.mark.slow
def test_runner_skips_unchanged_reruns_changed_and_names_the_failing_cell(tmp_path):
    _tiny_book(tmp_path)
    messages = []
    with pytest.raises(book.BookError) as failure:
        book.execute_chapters(book.BookParameters(profile="smoke"), root=tmp_path, log=messages.append)
    message = str(failure.value)
    assert "notebooks/bad.md" in message and "cell 4" in message and "ZeroDivisionError" in message
    assert (tmp_path / "book" / "_generated" / "bad.failed.ipynb").is_file()
    assert not (tmp_path / "book" / "_generated" / "bad.ipynb").exists()

    ok = book.chapters(tmp_path)[0]
    assert book.is_current(ok, root=tmp_path)
    printed = [o.text for c in nbformat.read(ok.executed, as_version=4).cells for o in c.get("outputs", []) if o.output_type == "stream"]
    assert printed == ["2\n"]  # executed, with the parameter's value
    assert book.execute_chapters(book.BookParameters(profile="smoke"), only="ok", root=tmp_path) == []  # unchanged: skipped
    assert book.execute_chapters(book.BookParameters(profile="quick"), only="ok", root=tmp_path) == ["ok"]  # parameters changed
    ok.source.write_text(ok.source.read_text().replace("value * 2", "value * 3"))
    assert not book.is_current(ok, root=tmp_path)  # source changed
    assert book.execute_chapters(book.BookParameters(profile="quick"), only="ok", root=tmp_path) == ["ok"]


def test_parameters_cell_that_papermill_cannot_parse_is_rejected(tmp_path):
    source = tmp_path / "nb.md"
    source.write_text('```{code-cell} ipython3\n:tags: [parameters]\n\ndata = ""  # empty = synthetic\n```\n')
    with pytest.raises(book.BookError, match="papermill cannot parse"):
        book.read_source(source)


def _stamped(root: Path, front_matter: str = "") -> book.Chapter:
    """A one-cell chapter under ``root`` with an executed copy stamped for the inputs as they are now."""
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "notebooks").mkdir(exist_ok=True)
    (root / "book" / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: _generated/ch\n")
    (root / "notebooks" / "ch.md").write_text(f"---\n{front_matter}kernelspec:\n  name: python3\n---\n\n"
                                              '```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = "smoke"\n```\n')
    chapter = book.chapters(root)[0]
    chapter.executed.parent.mkdir(parents=True)
    chapter.executed.write_text("{}")
    chapter.stamp.write_text(json.dumps(book.stamp_for(chapter, {"data": ""}, root)))
    assert book.is_current(chapter, {"data": ""}, root)
    return chapter


def test_a_new_feature_file_or_another_mcef_data_re_executes_a_chapter(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, text in ((first, b"transcripts one"), (second, b"transcripts two")):
        folder.mkdir()
        (folder / "iemocap_text.pkl").write_bytes(text)
    monkeypatch.setenv("MCEF_DATA", str(first))
    root = tmp_path / "project"
    chapter = _stamped(root)
    monkeypatch.setenv("MCEF_DATA", str(second))  # another folder, another file: another digest
    assert not book.is_current(chapter, {"data": ""}, root)
    monkeypatch.setenv("MCEF_DATA", str(first))
    assert book.is_current(chapter, {"data": ""}, root)
    (first / "iemocap_text.pkl").write_bytes(b"transcripts one, edited")  # same place, new content
    assert not book.is_current(chapter, {"data": ""}, root)
    (first / "iemocap_text.pkl").write_bytes(b"transcripts one")
    assert book.is_current(chapter, {"data": ""}, root)
    (root / "data").mkdir()
    (root / "data" / "IEMOCAP_features.pkl").write_bytes(b"features")  # a feature file is preferred to transcripts
    assert not book.is_current(chapter, {"data": ""}, root)


def test_new_committed_results_re_execute_the_chapter_that_reads_them(tmp_path, monkeypatch):
    monkeypatch.delenv("MCEF_DATA", raising=False)
    results = tmp_path / "book" / "results" / "real_text"
    results.mkdir(parents=True)
    (results / "summary.json").write_text("{}")
    chapter = _stamped(tmp_path, "mcef:\n  data: false\n  reads: [book/results]\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "IEMOCAP_features.pkl").write_bytes(b"features")
    assert book.is_current(chapter, {"data": ""}, tmp_path)  # it reads no data: a new feature file changes nothing
    (results / "summary.json").write_text('{"provenance": {}}')
    assert not book.is_current(chapter, {"data": ""}, tmp_path)
    chapter.stamp.write_text(json.dumps(book.stamp_for(chapter, {"data": ""}, tmp_path)))
    (results / "run.json").write_text("{}")  # a new file
    assert not book.is_current(chapter, {"data": ""}, tmp_path)


def test_chapter_front_matter_with_an_unknown_key_is_rejected(tmp_path):
    with pytest.raises(book.BookError, match="unknown keys \\['needs'\\]"):
        _stamped(tmp_path, "mcef:\n  needs: [text]\n")


# ----------------------------------------------------------------------------- the built book in a browser


@pytest.fixture(scope="module")
def built_html() -> Path:
    """The book's HTML: reused when `make book` built it from the current sources, else built at smoke."""
    current = all(book.is_current(c, root=REPO) for c in book.chapters(REPO)) and book.html_is_current(REPO)
    if not current:
        book.run_book(book.BookParameters(profile="smoke"), root=REPO)
    return REPO / "_build" / "html"


def _chromium(*args: str) -> str:
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) to an (H, W, C) uint8 array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0, "unexpected PNG format"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * channels)
    image = np.zeros((height, width * channels), dtype=np.int32)
    previous = np.zeros(width * channels, dtype=np.int32)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            out = row
        elif kind == 2:
            out = (row + previous) % 256
        elif kind == 1:  # Sub: cumulative sum per channel
            out = np.cumsum(row.reshape(width, channels), axis=0).reshape(-1) % 256
        else:  # Average and Paeth depend on the decoded left neighbour: byte by byte
            out = np.zeros_like(row)
            for i in range(len(row)):
                left = out[i - channels] if i >= channels else 0
                up, up_left = previous[i], previous[i - channels] if i >= channels else 0
                if kind == 3:
                    out[i] = (row[i] + (left + up) // 2) % 256
                else:
                    p = left + up - up_left
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                    out[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) % 256
        image[y], previous = out, out
    return image.reshape(height, width, channels).astype(np.uint8)


@pytest.mark.slow
@pytest.mark.book
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does it)")
def test_figures_draw_in_headless_chromium(built_html, tmp_path):
    page = built_html / "_generated" / "01_data_exploration.html"
    html = page.read_text(encoding="utf-8")
    assert "cdn.plot.ly" not in html and "cdn.jsdelivr" not in html  # offline: nothing from a CDN
    assert (built_html / "_static" / "plotly.min.js").is_file()
    n_figures = html.count("Plotly.newPlot(")
    assert n_figures >= 5

    dom = _chromium(RUN_SCRIPTS, "--dump-dom", page.as_uri())
    assert dom.count('class="main-svg"') >= n_figures  # every figure drew its SVG
    assert len(re.findall(r'class="(?:point|trace bars)', dom)) >= n_figures  # with marks in it

    # Screenshots of the page and of a copy that cannot load plotly.js: the figures are the
    # coloured pixels that only plotly.js adds.
    control = page.with_name(".control-without-plotly.html")
    control.write_text(html.replace("_static/plotly.min.js", "_static/missing-plotly.min.js"), encoding="utf-8")
    coloured = {}
    try:
        for name, url in (("with plotly.js", page.as_uri()), ("without", control.as_uri())):
            shot = tmp_path / f"chapter01-{name.replace(' ', '-')}.png"
            _chromium(RUN_SCRIPTS, f"--screenshot={shot}", "--window-size=1200,2600", url)
            pixels = _read_png(shot)[:, :, :3].astype(int)
            coloured[name] = int(((pixels.max(axis=2) - pixels.min(axis=2)) >= 50).sum())  # saturated, not grey text
    finally:
        control.unlink(missing_ok=True)
    assert coloured["with plotly.js"] - coloured["without"] > 20000, f"the figures added too few coloured pixels: {coloured}"


@pytest.mark.slow
@pytest.mark.book
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does it)")
def test_math_is_typeset_offline(built_html):
    page = built_html / "_generated" / "03_soft_hgr.html"
    html = page.read_text(encoding="utf-8")
    assert re.search(r'<script[^>]+src="[^"]*_static/mathjax/tex-chtml\.js', html), "MathJax is not served by the book"
    assert (built_html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    dom = _chromium(RUN_SCRIPTS, "--dump-dom", page.as_uri())
    assert dom.count("<mjx-container") >= 10
    visible_text = re.sub(r"<script.*?</script>|<[^>]+>", " ", dom, flags=re.S)
    assert "$$" not in visible_text and "\\mathcal{S}" not in visible_text  # no raw TeX left on the page


# ----------------------------------------------------------------------------- how tables and glued values look


def test_book_tables_are_numbered_rounded_without_index_nan_or_none():
    import pandas as pd

    from mcef.book.tables import MISSING, Tables

    tables = Tables()
    frame = pd.DataFrame({"split": ["train", "test"], "count": [108.0, 31.0], "share": [0.2012, 0.0887],
                          "wf1_mean": [0.5, 0.25], "wf1_std": [float("nan"), 0.01], "note": [None, "x"],
                          "tiny": [8.2e-6, -0.0001], "zero": [-0.0001, 0.0], "parameters": [20_700_000, 3]})
    shown = tables(frame.set_index("split"), "Lengths.", percent=["share"])
    again = tables(frame, "Another.")
    assert shown.caption == "Table 1. Lengths." and again.caption == "Table 2. Another."
    assert tables(frame, "Lengths.").caption == "Table 1. Lengths."  # shown again (a cell re-run): same number
    cells = shown.frame
    assert list(cells.columns) == ["split", "count", "share", "weighted F1", "note", "tiny", "zero", "parameters"]
    assert list(cells["split"]) == ["train", "test"] and list(cells["count"]) == ["108", "31"]
    assert list(cells["share"]) == ["20.1%", "8.9%"] and list(cells["weighted F1"]) == ["0.500", "0.250 ± 0.010"]
    assert list(cells["note"]) == [MISSING, "x"] and list(cells["tiny"]) == ["8.2e-06", "-1.0e-04"]
    assert list(cells["zero"]) == ["-1.0e-04", "0.000"] and list(cells["parameters"]) == ["20,700,000", "3"]
    page = shown._repr_html_()
    assert "overflow-x: auto" in page and "<caption>Table 1. Lengths.</caption>" in page
    assert 'class="row_heading' not in page and "NaN" not in page and "None" not in page  # no index column
    grouped = tables(pd.DataFrame({"family": ["a", "a", "b"], "variant": [1, 2, 3], "x": [1, 2, 3]})
                     .set_index(["family", "variant"]), "Grouped.")
    assert list(grouped.frame["family"]) == ["a", "", "b"]  # a group label is written once


def test_glue_facts_glue_every_value_and_show_them_on_one_line(monkeypatch):
    import myst_nb

    from mcef.book import tables

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: (value, display)}))
    facts = tables.glue_facts({"n_dialogues": 151, "share": 0.201234, "label": "neutral"})
    assert glued == {"n_dialogues": (151, False), "share": (0.201234, False), "label": ("neutral", False)}
    assert repr(facts) == "glued: n_dialogues = 151; share = 0.2012; label = neutral"
    assert "<code>share</code> = 0.2012" in facts._repr_html_()
