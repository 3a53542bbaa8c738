"""The ``mcef`` command line. Each command group lives beside the code it drives and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, function that adds its sub-commands to the parser). A module that is missing
# (an optional part not yet installed) is skipped, so the rest of the CLI keeps working.
_COMMAND_MODULES = (
    "mcef.data.cli",
    "mcef.features.cli",
    "mcef.cli_train",
    "mcef.book.runner",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every registered command included."""
    parser = argparse.ArgumentParser(
        prog="mcef",
        description="MCEF: multimodal emotion recognition in conversations (data, training, book).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and (err.name == name or name.startswith(err.name + ".")):
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mcef`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"mcef {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
