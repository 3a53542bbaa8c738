"""The ``mcef`` command line. Each command group lives beside the code it drives and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import os
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


TRACEBACK_ENV = "MCEF_TRACEBACK"  # set to 1 to see the traceback of an error the CLI would report in one line


def _command_name(args: argparse.Namespace) -> str:
    """``data convert``, ``features text``, ``train``: the command as typed, for messages."""
    parts = [args.command] + [getattr(args, f"{args.command}_command", None) or ""]
    return " ".join(p for p in parts if p)


def error_message(err: BaseException) -> str | None:
    """The one-line message for an error that is the user's input, not a bug; None for anything else.

    Reported: mcef's own errors (DataError, ConfigError, CheckpointError, DeviceError, StorageError: all
    ValueErrors), other ValueErrors and KeyErrors raised with a message, and OSErrors about a file (its name and
    the reason). Anything else is a bug and keeps its traceback.
    """
    if isinstance(err, OSError):
        if type(err).__str__ is not OSError.__str__:  # e.g. mcef.io.StorageError: its own message
            message = str(err)
        elif err.filename is not None:
            target = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else err.filename
            message = f"{target}: {err.strerror or err}"
        elif isinstance(err, FileNotFoundError) and err.args:
            message = str(err)
        else:
            return None
    elif isinstance(err, KeyError):
        message = str(err.args[0]) if err.args else repr(err)
    elif isinstance(err, ValueError):
        message = str(err) or type(err).__name__
    else:
        return None
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mcef`` console script.

    A bad input (file, key, value, device, path) is reported as one line ``mcef <command>: error: ...`` on stderr
    with exit status 1, never a traceback (set ``MCEF_TRACEBACK=1`` to see it); Ctrl-C is one line and status 130.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    command = _command_name(args)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"mcef {command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, KeyError) as err:
        message = error_message(err)
        if message is None or os.environ.get(TRACEBACK_ENV):
            raise
        print(f"mcef {command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
