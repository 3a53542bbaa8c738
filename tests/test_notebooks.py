"""Each chapter runs top to bottom at the smoke profile, and every number its prose cites was computed.

The executed copies in book/_generated/ are reused when current (same source, library and smoke
parameters), so after `make book` this costs nothing; otherwise the chapter is executed here.
"""

from __future__ import annotations

import re

import jupytext
import nbformat
import pytest

from book_helpers import REPO

from mcef.book import runner as book

CHAPTERS = book.chapters(REPO)


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

    header = [o for o in outputs if "text/markdown" in o.get("data", {})]
    assert header and "**Data:**" in header[0]["data"]["text/markdown"] and "**Profile:** `smoke`" in header[0]["data"]["text/markdown"]

    glued = {o.metadata["scrapbook"]["name"] for o in outputs if "scrapbook" in o.get("metadata", {})}
    prose = "\n".join(c.source for c in executed.cells if c.cell_type == "markdown")
    cited = set(re.findall(r"\{glue(?::\w+)?\}`([A-Za-z0-9_]+)", prose))
    assert cited, "a chapter cites computed numbers"
    assert cited <= glued, f"numbers cited in the prose but never computed: {sorted(cited - glued)}"
    assert re.search(r"\d\.\d{2,}", prose) is None, "a hand-typed decimal in the prose: glue it instead"
