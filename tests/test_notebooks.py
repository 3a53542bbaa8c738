"""The notebook sources: text and notebook pairs that agree, how the book hides their plumbing, and every chapter run
top to bottom at the smoke profile with every number its prose cites computed.

The executed copies in book/_generated/ are reused when current (same source, library and smoke parameters), so
after `make book` this costs nothing; otherwise the chapter is executed here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jupytext
import nbformat
import pytest
import yaml
from jupytext.config import load_jupytext_config

from book_helpers import REPO

from mcef.book import runner as book

CHAPTERS = book.chapters(REPO)
OPENING = yaml.safe_load((REPO / "book" / "_toc.yml").read_text(encoding="utf-8"))["root"].rsplit("/", 1)[-1]
NUMBERED = [c for c in CHAPTERS if c.name != OPENING]  # the chapters; the opening page summarises the book
SOURCES = sorted((REPO / "notebooks").glob("*.md"))
SYNC = "jupytext --to ipynb notebooks/<name>.md from the repository root (see jupytext.toml)"


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_text_source_round_trips_through_ipynb_keeping_the_parameters_tag(chapter, tmp_path):
    notebook = jupytext.read(chapter.source)
    as_ipynb = tmp_path / f"{chapter.name}.ipynb"
    jupytext.write(notebook, as_ipynb)
    back = jupytext.read(as_ipynb)
    tags = [c.metadata.get("tags", []) for c in back.cells]
    assert sum("parameters" in t for t in tags) == 1
    assert [c.source for c in back.cells] == [c.source for c in notebook.cells]
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code")  # sources hold no outputs


# ----------------------------------------------------------------------------- text + notebook pairs


def test_jupytext_pairs_the_sources_with_notebooks_and_nothing_else():
    config = load_jupytext_config(str(REPO / "notebooks"))
    assert config is not None, "jupytext.toml is not found from notebooks/"
    pairing = config.default_formats(str(REPO / "notebooks" / "01_data_exploration.md"))
    assert pairing is not None and {f.rsplit("///", 1)[-1] for f in pairing.split(",")} == {"ipynb", "md:myst"}
    assert config.default_formats(str(REPO / "notebooks" / "01_data_exploration.ipynb")) == pairing
    assert config.default_formats(str(REPO / "book" / "_generated" / "01_data_exploration.ipynb")) is None  # executed
    assert "tags" in config.cell_metadata_filter and "-papermill" in config.cell_metadata_filter


def test_every_text_source_has_its_notebook_and_every_notebook_its_text_source():
    texts = {p.stem for p in SOURCES}
    notebooks = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    assert not texts - notebooks, f"text sources without their .ipynb: {sorted(texts - notebooks)}; run {SYNC}"
    assert not notebooks - texts, f"notebooks without their .md source: {sorted(notebooks - texts)}"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_paired_notebook_has_the_cells_of_its_text_source_and_no_outputs(source):
    paired = source.with_suffix(".ipynb")
    if not paired.is_file():
        pytest.fail(f"{paired.relative_to(REPO)} is missing; run {SYNC}")
    text = jupytext.read(source)
    stored = nbformat.read(paired, as_version=4)
    nbformat.validate(stored)

    def cells(notebook):
        return [(c.cell_type, c.source, _tags(c)) for c in notebook.cells]

    want, have = cells(text), cells(stored)
    first = next((k for k, (a, b) in enumerate(zip(want, have)) if a != b), min(len(want), len(have)))
    assert have == want, (
        f"{paired.relative_to(REPO)} drifted from {source.relative_to(REPO)} at cell {first + 1} "
        f"({len(have)} cells against {len(want)}); run {SYNC}")
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert not [k for k, c in enumerate(code) if c.get("outputs")], f"{paired.name} holds outputs: clear them"
    assert all(c.get("execution_count") is None for c in code), f"{paired.name} holds execution counts: clear them"
    assert stored.metadata.get("kernelspec", {}).get("name") == "python3"  # papermill's kernel, as in the runner
    assert stored.metadata.get("mcef") == text.metadata.get("mcef"), (  # what the runner reads from the front matter
        f"{paired.name}: notebook metadata 'mcef' differs from the front matter of {source.name}; run {SYNC}")
    assert "papermill" not in stored.metadata and not any("papermill" in c.metadata for c in stored.cells)


# ----------------------------------------------------------------------------- what the book hides


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_the_book_hides_the_parameters_and_every_glue_only_cell(chapter):
    notebook = jupytext.read(chapter.source)
    parameters = [c for c in notebook.cells if "parameters" in _tags(c)]
    assert len(parameters) == 1 and "remove-cell" in _tags(parameters[0])
    for cell in notebook.cells:
        if cell.cell_type == "code" and re.search(r"\bglue(_facts)?\(", cell.source):
            assert "remove-cell" in _tags(cell), (
                f"{chapter.source.name}: a cell that glues values is shown in the book (tag it remove-cell and let "
                f"it show its values with mcef.book.tables.glue_facts):\n{cell.source[:300]}")
            assert not re.search(r"\bglue\(", cell.source) or "display=False" in cell.source


@pytest.mark.parametrize("chapter", NUMBERED, ids=[c.name for c in NUMBERED])
def test_a_chapter_opens_with_what_it_finds(chapter):
    """The first paragraph after the title states the chapter's headline results, as computed values."""
    notebook = jupytext.read(chapter.source)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    opening = first.source.split("\n\n")[1]
    assert len(re.findall(r"\{glue(?::\w+)?\}`", opening)) >= 3, (
        f"{chapter.source.name}: the opening paragraph cites fewer than 3 computed values:\n{opening}")


# ----------------------------------------------------------------------------- executed at smoke


@pytest.mark.slow
@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_chapter_runs_at_smoke_and_glues_every_cited_number(chapter):
    book.execute_chapters(book.BookParameters(profile="smoke"), only=chapter.name, root=REPO)  # skipped when current
    executed = nbformat.read(chapter.executed, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]

    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'profile = "smoke"' in injected.source
    if chapter.name == OPENING:
        return  # the opening page states its own provenance and cites no glued values

    header = [o for o in outputs if "text/markdown" in o.get("data", {})]
    assert header and "**Data:**" in header[0]["data"]["text/markdown"] and "**Profile:** `smoke`" in header[0]["data"]["text/markdown"]

    glued = {o.metadata["scrapbook"]["name"] for o in outputs if "scrapbook" in o.get("metadata", {})}
    prose = "\n".join(c.source for c in executed.cells if c.cell_type == "markdown")
    cited = set(re.findall(r"\{glue(?::\w+)?\}`([A-Za-z0-9_]+)", prose))
    cited |= set(re.findall(r"```\{glue(?::\w+)?\}\s+([A-Za-z0-9_]+)", prose))
    assert cited, "a chapter cites computed numbers"
    assert cited <= glued, f"numbers cited in the prose but never computed: {sorted(cited - glued)}"
    assert re.search(r"\d\.\d{2,}", prose) is None, "a hand-typed decimal in the prose: glue it instead"

    tables = [o["data"]["text/html"] for o in outputs if "<table" in o.get("data", {}).get("text/html", "")
              and "scrapbook" not in o.get("metadata", {})]
    assert not [t for t in tables if 'class="dataframe' in t], (
        "a DataFrame shown as it is (index column, unrounded, NaN): show it with mcef.book.tables.Tables")
    cells = [re.sub(r"<[^>]+>", "", c).strip() for t in tables for c in re.findall(r"<td\b[^>]*>(.*?)</td>", t, re.S)]
    assert not {"NaN", "nan", "None", "<NA>"} & set(cells), "a table shows NaN or None"


@pytest.mark.slow
@pytest.mark.book
def test_papermill_runs_a_paired_notebook_from_the_repository_root(tmp_path):
    """What the design card promises a fresh clone: ``papermill notebooks/NN_name.ipynb out.ipynb -p profile smoke``."""
    papermill = os.path.join(os.path.dirname(sys.executable), "papermill")
    out = tmp_path / "out.ipynb"
    result = subprocess.run([papermill, "notebooks/01_data_exploration.ipynb", str(out), "-p", "profile", "smoke",
                             "-p", "run_root", str(tmp_path / "runs")],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    executed = json.loads(out.read_text(encoding="utf-8"))
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    header = next(o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {}))
    assert "**Profile:** `smoke`" in "".join(header)
