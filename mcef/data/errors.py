"""The one exception type for bad input data."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the file, the key and what was expected."""
