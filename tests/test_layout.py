"""The package's layout: the library (``mcef`` outside ``mcef.book``) needs neither pandas nor plotly and never
imports the book; chapter modules never import each other; the book resolves no path from the package's location."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import mcef

PACKAGE = Path(mcef.__file__).resolve().parent
BOOK = PACKAGE / "book"
SHARED = {"__init__", "common", "derived", "runner", "tables"}  # the book's modules that are not chapters
SUMMARY = "reproduced"  # the opening page: it reads what the chapters' modules compute (no chapter imports it)
CHAPTERS = sorted(p.stem for p in BOOK.glob("*.py") if p.stem not in SHARED | {SUMMARY})
CORE = sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], "mcef.") if not m.name.startswith("mcef.book"))
BOOK_ONLY = ("pandas", "plotly")


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (``from a import b`` counts as ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _source(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    return PACKAGE / f"{relative}.py" if (PACKAGE / f"{relative}.py").is_file() else PACKAGE / relative / "__init__.py"


def _loaded_after(code: str) -> list[str]:
    """The top-level names in sys.modules after running ``code`` in a fresh interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_the_chapter_and_core_lists_are_what_the_tree_holds():
    assert CHAPTERS == ["ablations", "architecture", "exploration", "hgr_analysis", "real_results", "reporting",
                        "robustness"]
    assert {"mcef.config", "mcef.model", "mcef.train", "mcef.runs", "mcef.cli", "mcef.data.discovery",
            "mcef.features.pipeline"} <= set(CORE)


@pytest.mark.slow
def test_importing_every_core_module_loads_neither_pandas_nor_plotly_nor_the_book():
    loaded = _loaded_after("\n".join(f"import {name}" for name in CORE))
    assert [m for m in loaded if m.split(".")[0] in BOOK_ONLY or m.startswith("mcef.book")] == []


@pytest.mark.slow
def test_the_command_line_with_the_book_runner_stays_light():
    loaded = _loaded_after("from mcef.cli import build_parser\nbuild_parser()")
    assert "mcef.book.runner" in loaded
    assert [m for m in loaded if m.split(".")[0] in BOOK_ONLY or m == "mcef.book.common"] == []


@pytest.mark.parametrize("module", CORE)
def test_no_core_module_imports_the_book_or_its_dependencies_even_lazily(module):
    imported = _imported(_source(module))
    assert [n for n in imported if n.split(".")[0] in BOOK_ONLY or n == "mcef.book" or n.startswith("mcef.book.")] == []


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_module_imports_no_other_chapter(chapter):
    imported = _imported(BOOK / f"{chapter}.py")
    others = {f"mcef.book.{other}" for other in [*CHAPTERS, SUMMARY] if other != chapter}
    assert sorted(imported & others) == []
    assert imported & {"mcef.book.common"}, "chapters share what they share through mcef.book.common"


@pytest.mark.parametrize("module", sorted(SHARED | set(CHAPTERS)))
def test_the_book_resolves_no_path_from_the_package_location(module):
    tree = ast.parse((BOOK / f"{module}.py").read_text(encoding="utf-8"))
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id == "__file__"]
