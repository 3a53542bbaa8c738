"""The book runner: ``mcef book`` executes the notebooks with papermill, then builds the Jupyter Book.

Sources are MyST-markdown text notebooks in ``notebooks/`` (never modified). ``book/_toc.yml`` lists
the chapters as ``_generated/<name>``; for each, the runner converts ``notebooks/<name>.md`` to a
notebook in memory (jupytext), executes it with papermill (one process, parameters injected) and
writes the executed copy ``book/_generated/<name>.ipynb`` plus a stamp (:func:`stamp_for`). A chapter whose
source, parameters, library sources, data and committed results (as its front matter declares, see
:class:`ChapterInputs`) are unchanged since its last successful run is not re-executed. The project root is the
working directory (or ``--root``), never the package's location, so an installed package builds any checkout.
Then ``jupyter-book build`` runs with warnings as errors; HTML lands in ``_build/html``. MathJax and
plotly.js are copied from installed packages into ``book/_generated/static/`` so the book works offline.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from mcef.io import write_json_atomic

GENERATED = "_generated"  # folder of executed copies, inside book/
# Offline assets (MathJax, plotly.js), inside book/. Not under book/_static: jupyter-book would add
# every .js file found there to every page.
VENDOR = Path(GENERATED) / "static"
BOOK_STAMP = ".mcef-book.json"  # inside _build/html: digest of what the HTML was built from
# MathJax 3 files the book needs: the TeX->CHTML bundle, its lazily loaded TeX extensions, fonts, menu.
MATHJAX_PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml", "ui", "a11y")
DEFAULT_RUN_ROOT = Path("runs") / "book"  # chapters keep their runs in <root>/runs/book/<profile> by default


class BookError(RuntimeError):
    """The book could not be built: the message names the notebook, the cell or the file at fault."""


def _project(root: str | Path | None) -> Path:
    """The project root: ``root``, else the working directory (where ``mcef book`` runs), made absolute."""
    return Path(root).resolve() if root is not None else Path.cwd()


@dataclass(frozen=True)
class BookParameters:
    """The papermill parameters every chapter receives (scalars only)."""

    profile: str = "smoke"  # smoke | quick | results | full (configs/profiles/<name>.yaml)
    device: str = "auto"  # auto | cpu | cuda | mps
    data: str = ""  # dataset path; "" = let mcef.book.common.load_book_data choose (real data found, else synthetic)
    seeds: str = ""  # "0,1,2"; "" = the profile's seeds
    run_root: str = ""  # where chapters keep training runs; "" = the profile's run_root, else <root>/runs/book/<profile>


@dataclass(frozen=True)
class Chapter:
    """One TOC entry backed by a notebook source."""

    name: str  # e.g. "01_data_exploration"
    source: Path  # notebooks/<name>.md
    executed: Path  # book/_generated/<name>.ipynb

    @property
    def stamp(self) -> Path:
        return self.executed.with_suffix(".stamp.json")

    @property
    def failed(self) -> Path:
        return self.executed.with_suffix(".failed.ipynb")


# ----------------------------------------------------------------------------- what to run


def chapters(root: Path | None = None) -> list[Chapter]:
    """The chapters listed in ``book/_toc.yml`` that live in ``_generated/``, in TOC order."""
    root = _project(root)
    toc_path = root / "book" / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):  # the opening page may be a chapter too
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    found = []
    for entry in files:
        entry = entry.removesuffix(".ipynb")
        if not entry.startswith(GENERATED + "/"):
            continue
        name = entry[len(GENERATED) + 1 :]
        source = root / "notebooks" / f"{name}.md"
        if not source.is_file():
            raise BookError(f"{toc_path}: chapter {entry!r} needs the source {source}, which does not exist")
        found.append(Chapter(name, source, root / "book" / GENERATED / f"{name}.ipynb"))
    return found


def select(all_chapters: list[Chapter], only: str | None) -> list[Chapter]:
    """The chapters whose name equals or starts with ``only`` (all when ``only`` is None)."""
    if not only:
        return all_chapters
    chosen = [c for c in all_chapters if c.name == only or c.name.startswith(only)]
    if not chosen:
        raise BookError(f"--only {only!r} matches no chapter; chapters: {[c.name for c in all_chapters]}")
    return chosen


def _files_under(path: Path) -> list[Path]:
    """``path`` itself when it is a file, every file below it when it is a folder (none when it does not exist)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else []


def _hide_injected_parameters(executed: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``: myst-nb removes cells by these tags only, and the
    cell (with an absolute build path) is no part of a page."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, executed)


def _committed_files(path: Path) -> list[Path]:
    """The files under ``path`` that results consist of: not checkpoints (``*.pt``, never committed, rewritten while
    a run trains), locks or temporaries (dot files)."""
    return [p for p in _files_under(path) if p.suffix != ".pt" and not p.name.startswith(".")]


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Content hash of one file; cached per (path, size, mtime) so that repeated stamps read each file once."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digest_files(paths: list[Path], base: Path, label: str = "") -> str:
    """Hash of the names (relative to ``base``) and contents of ``paths``."""
    h = hashlib.sha256(label.encode())
    for path in sorted(paths):
        info = path.stat()
        name = path.relative_to(base) if path.is_relative_to(base) else path
        h.update(f"\0{name}\0{_file_sha256(str(path), info.st_size, info.st_mtime_ns)}".encode())
    return h.hexdigest()


def library_digest(root: Path | None = None) -> str:
    """Hash of the installed library's sources and of ``<root>/configs``: a change re-executes every chapter."""
    import mcef

    package = Path(mcef.__file__).resolve().parent  # the code that runs, wherever it is installed
    configs = _project(root) / "configs"
    return hashlib.sha256((_digest_files([p for p in _files_under(package) if p.suffix == ".py"], package)
                           + _digest_files(_files_under(configs), configs)).encode()).hexdigest()


@dataclass(frozen=True)
class ChapterInputs:
    """What a chapter reads besides its source and the library, from the ``mcef`` key of its front matter."""

    data: bool = True  # it reads the data discovery finds (or the --data path)
    reads: tuple[str, ...] = ()  # committed files or folders it reads, relative to the project root


def chapter_inputs(chapter: Chapter) -> ChapterInputs:
    """The :class:`ChapterInputs` declared in the front matter of ``chapter.source`` (``mcef: {data:, reads:}``)."""
    text = chapter.source.read_text(encoding="utf-8")
    front = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else {}
    declared = (front or {}).get("mcef", {})
    unknown = set(declared) - {"data", "reads"}
    if unknown:
        raise BookError(f"{chapter.source}: front matter key mcef has unknown keys {sorted(unknown)}; "
                        "expected data (true/false) and reads (a list of paths)")
    return ChapterInputs(data=bool(declared.get("data", True)), reads=tuple(declared.get("reads", ())))


def data_digest(data: str, root: Path) -> str:
    """Hash of the data a chapter runs on: what :func:`mcef.data.discovery.find_data` picks for ``data`` (or in
    ``<root>/data`` and ``$MCEF_DATA``), its description (which names where it is) and every file's content."""
    from mcef.data.discovery import find_data

    choice = find_data(data or None, data_dir=root / "data")
    files = _files_under(Path(choice.path)) if choice.path is not None else []
    base = Path(choice.path).parent if choice.path is not None else root
    return _digest_files(files, base, label=f"{choice.kind}\0{choice.description}")


def stamp_for(chapter: Chapter, parameters: dict, root: Path | None = None) -> dict:
    """What an executed copy is current for: source, parameters, library, and the data and results it reads."""
    root = _project(root)
    inputs = chapter_inputs(chapter)
    return {
        "source_sha256": _digest_files([chapter.source], root),
        "parameters": parameters,
        "library_sha256": library_digest(root),
        "data_sha256": data_digest(parameters.get("data", ""), root) if inputs.data else None,
        "reads_sha256": {path: _digest_files(_committed_files(root / path), root) for path in inputs.reads},
        "store_sha256": _store_digest(parameters.get("run_root", ""), root),
    }


def _store_digest(run_root: str, root: Path) -> str | None:
    """Hash of the committed results in ``run_root`` when it is a committed store (a ``store.yaml``): a run or a
    stored computation added or changed there re-executes the chapters that read it. None for a local run root."""
    from mcef.book.common import STORE_FILE

    if not run_root or not (Path(run_root) / STORE_FILE).is_file():
        return None
    return _digest_files(_committed_files(Path(run_root)), root)


def is_current(chapter: Chapter, parameters: dict | None = None, root: Path | None = None) -> bool:
    """True when the executed copy exists and its stamp matches the source, library, parameters, data and results.

    With ``parameters=None`` any parameters are accepted (the copy is current for what it was run with).
    """
    if not (chapter.executed.is_file() and chapter.stamp.is_file()):
        return False
    stamp = json.loads(chapter.stamp.read_text(encoding="utf-8"))
    expected = stamp_for(chapter, parameters if parameters is not None else stamp.get("parameters"), root)
    return stamp == expected


def resolve_parameters(parameters: BookParameters, root: Path | None = None) -> dict:
    """The parameters as passed to papermill: paths made absolute, the run root filled in."""
    values = asdict(parameters)
    if values["data"]:
        values["data"] = str(Path(values["data"]).expanduser().resolve())
    if values["run_root"]:
        values["run_root"] = str(Path(values["run_root"]).resolve())
    else:  # the profile's own store (the results profile: the committed runs), else runs/book/<profile>
        from mcef.book.common import ProfileError, default_run_root

        try:
            values["run_root"] = str(default_run_root("", parameters.profile, _project(root)).resolve())
        except ProfileError:  # no such profile here: the chapter's own load_profile says so, naming the file
            values["run_root"] = str(_project(root) / DEFAULT_RUN_ROOT / parameters.profile)
    return values


# ----------------------------------------------------------------------------- execution


def read_source(source: Path):
    """The text notebook ``source`` as an nbformat notebook, checked to have one parameters cell."""
    import jupytext

    notebook = jupytext.read(source)
    tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise BookError(f"{source}: expected exactly one code cell tagged 'parameters', found {len(tagged)}")
    for line in notebook.cells[tagged[0]].source.splitlines():
        if line.split("#", 1)[0].count("=") != 1 and line.strip() and not line.lstrip().startswith("#"):
            raise BookError(f"{source}: parameters cell line {line!r}: expected one scalar assignment `name = value`")
        if line.count("=") > 1:
            raise BookError(f"{source}: parameters cell line {line!r}: papermill cannot parse a '=' inside the comment")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def _failing_cell_message(chapter: Chapter, source_notebook, error, root: Path) -> str:
    """Name the notebook and the source cell (1-based, counting all cells) that raised ``error``."""
    failing_source = (getattr(error, "source", "") or "").strip()
    cell_number = next(
        (i + 1 for i, c in enumerate(source_notebook.cells) if c.cell_type == "code" and c.source.strip() == failing_source),
        None,
    )
    first_line = failing_source.splitlines()[0] if failing_source else ""
    where = f"cell {cell_number}" if cell_number else f"cell index {getattr(error, 'cell_index', '?')}"
    return (
        f"notebook {chapter.source.relative_to(root)} failed in {where} (starting {first_line!r}): "
        f"{getattr(error, 'ename', type(error).__name__)}: {getattr(error, 'evalue', error)}\n"
        f"executed copy with the full traceback: {chapter.failed.relative_to(root)}"
    )


def _check_figures(executed: Path, chapter: Chapter, root: Path) -> None:
    """Fail when a Plotly figure has no HTML part: the book would drop it without a word."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.plotly.v1+json" in data and "text/html" not in data:
                raise BookError(
                    f"notebook {chapter.source.relative_to(root)}: the figure of executed cell {index} has no HTML part "
                    "and would vanish from the book; import mcef.book.common (it registers the book renderer) before plotting"
                )


def execute_chapter(chapter: Chapter, parameters: dict, root: Path | None = None) -> float:
    """Execute one chapter into its executed copy and stamp it; returns seconds taken.

    On a failing cell the partial notebook is kept as ``<name>.failed.ipynb``, the previous executed
    copy and stamp are removed, and :class:`BookError` names the notebook and the cell.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    root = _project(root)
    source_notebook = read_source(chapter.source)
    stamp = stamp_for(chapter, parameters, root)  # the inputs as they are now, before the (long) run
    chapter.executed.parent.mkdir(parents=True, exist_ok=True)
    chapter.stamp.unlink(missing_ok=True)
    partial = chapter.executed.with_suffix(".partial.ipynb")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            source_notebook,
            str(partial),
            parameters=parameters,
            kernel_name="python3",
            language="python",
            cwd=str(root),
            progress_bar=False,
        )
    except PapermillExecutionError as error:
        os.replace(partial, chapter.failed)
        chapter.executed.unlink(missing_ok=True)
        raise BookError(_failing_cell_message(chapter, source_notebook, error, root)) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _check_figures(partial, chapter, root)
    _hide_injected_parameters(partial)
    os.replace(partial, chapter.executed)
    chapter.failed.unlink(missing_ok=True)
    write_json_atomic(chapter.stamp, stamp)
    return time.perf_counter() - start


def execute_chapters(
    parameters: BookParameters, *, only: str | None = None, force: bool = False, root: Path | None = None, log=print
) -> list[str]:
    """Execute every chapter (or those matching ``only``) that is not current; returns the names executed."""
    root = _project(root)
    values = resolve_parameters(parameters, root)
    executed = []
    for chapter in select(chapters(root), only):
        if not force and is_current(chapter, values, root):
            log(f"[book] {chapter.name}: up to date")
            continue
        log(f"[book] {chapter.name}: executing (profile={values['profile']}, device={values['device']})")
        seconds = execute_chapter(chapter, values, root)
        log(f"[book] {chapter.name}: done in {seconds:.1f} s")
        executed.append(chapter.name)
    return executed


# ----------------------------------------------------------------------------- HTML


def copy_vendor_assets(root: Path | None = None) -> Path:
    """Copy MathJax (django-static-mathjax) and plotly.js (plotly wheel) into ``book/_generated/static``."""
    import plotly

    root = _project(root)
    target = root / "book" / VENDOR
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    try:
        import mathjax  # django-static-mathjax

        mathjax_dir = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    except ImportError:
        raise BookError("MathJax for the offline book comes from `pip install django-static-mathjax==3.2.2.1` (the `book` extra)") from None
    for needed in (plotly_js, mathjax_dir / "tex-chtml.js"):
        if not needed.is_file():
            raise BookError(f"offline asset {needed} is missing from the installed packages")
    target.mkdir(parents=True, exist_ok=True)
    if _file_differs(plotly_js, target / "plotly.min.js"):
        shutil.copy2(plotly_js, target / "plotly.min.js")
    for part in MATHJAX_PARTS:
        src, dst = mathjax_dir / part, target / "mathjax" / part
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif _file_differs(src, dst):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return target


def _file_differs(src: Path, dst: Path) -> bool:
    return not dst.is_file() or dst.stat().st_size != src.stat().st_size or dst.stat().st_mtime < src.stat().st_mtime


def html_inputs_digest(root: Path | None = None) -> str:
    """Hash of everything the HTML is built from: config, TOC, book pages, executed copies."""
    root = _project(root)
    book = root / "book"
    paths = [root / "_config.yml"] + [
        p
        for p in book.rglob("*")
        if p.is_file() and VENDOR not in p.relative_to(book).parents and not p.name.endswith((".failed.ipynb", ".partial.ipynb", ".tmp"))
    ]
    return _digest_files(paths, root)


def html_is_current(root: Path | None = None) -> bool:
    """True when ``_build/html`` was built by ``mcef book`` from exactly the current inputs."""
    root = _project(root)
    stamp = root / "_build" / "html" / BOOK_STAMP
    if not stamp.is_file():
        return False
    return json.loads(stamp.read_text(encoding="utf-8")).get("inputs_sha256") == html_inputs_digest(root)


def _jupyter_book_executable() -> str:
    beside = Path(sys.executable).parent / "jupyter-book"
    found = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if not found:
        raise BookError("jupyter-book is not installed: `pip install -e .[book]` (jupyter-book==1.0.4.post1)")
    return found


def build_html(root: Path | None = None, *, force: bool = False, log=print) -> Path:
    """Build the Jupyter Book into ``_build/html`` with warnings as errors; returns the HTML folder."""
    root = _project(root)
    html = root / "_build" / "html"
    missing = [c.executed.relative_to(root) for c in chapters(root) if not c.executed.is_file()]
    if missing:
        raise BookError(f"cannot build the book: executed copies missing: {[str(m) for m in missing]} (run `mcef book`)")
    copy_vendor_assets(root)
    if not force and html_is_current(root):
        log(f"[book] HTML up to date: {html / 'index.html'}")
        return html
    command = [
        _jupyter_book_executable(), "build", str(root / "book"),
        "--config", str(root / "_config.yml"), "--toc", str(root / "book" / "_toc.yml"),
        "--path-output", str(root), "-W", "-n", "--keep-going",
    ]  # fmt: skip
    if force:
        command.append("--all")
    log("[book] building HTML: " + " ".join(command[1:]))
    start = time.perf_counter()
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    write_json_atomic(html / BOOK_STAMP, {"inputs_sha256": html_inputs_digest(root)})
    log(f"[book] HTML built in {time.perf_counter() - start:.1f} s: {html / 'index.html'}")
    return html


def run_book(
    parameters: BookParameters, *, only: str | None = None, force: bool = False, html: bool = True, root: Path | None = None, log=print
) -> Path | None:
    """Execute what changed, then build the HTML (when every chapter has an executed copy)."""
    root = _project(root)
    execute_chapters(parameters, only=only, force=force, root=root, log=log)
    if not html:
        return None
    return build_html(root, force=force, log=log)


# ----------------------------------------------------------------------------- CLI


def _cmd_book(args: argparse.Namespace) -> int:
    parameters = BookParameters(profile=args.profile, device=args.device, data=args.data or "", seeds=args.seeds or "")
    try:
        run_book(parameters, only=args.only, force=args.force, html=not args.no_html, root=Path(args.root).resolve())
    except BookError as error:
        print(f"mcef book: error: {error}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub) -> None:
    """Register ``mcef book``."""
    parser = sub.add_parser(
        "book",
        help="execute the notebooks (papermill) and build the Jupyter Book into _build/html",
        description="Execute each chapter's notebook (only those whose source, parameters, library, data or "
        "committed results changed), then build the Jupyter Book with warnings as errors.",
    )
    parser.add_argument("--profile", default="smoke", help="smoke (CI, minutes) | quick (laptop CPU, < 1 h) | full (paper "
                        "recipe, retrains everything, GPU) | results (reads the committed paper-scale runs)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: auto)")
    parser.add_argument("--data", default="", help="dataset path for the chapters (default: real data if found, else synthetic)")
    parser.add_argument("--seeds", default="", help="comma-separated seeds (default: the profile's)")
    parser.add_argument("--only", default=None, help="execute only the chapter(s) whose name starts with this")
    parser.add_argument("--force", action="store_true", help="re-execute and rebuild even if up to date")
    parser.add_argument("--no-html", action="store_true", help="execute notebooks only, skip the Jupyter Book build")
    parser.add_argument("--root", default=".", help=argparse.SUPPRESS)
    parser.set_defaults(func=_cmd_book)
