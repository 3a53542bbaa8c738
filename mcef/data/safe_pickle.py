"""Reading the ERC literature's feature pickles without running code from them.

A pickle names the callables that rebuild its objects, and plain ``pickle.load`` calls whatever it names (``os.system``
included). :func:`safe_load` resolves only an allow-list: builtin containers and scalars, numpy arrays, dtypes and
scalars, and the few helpers numpy and the Python 2 -> 3 translation use to rebuild them. Anything else is refused
before it is constructed, with an error that names the file and the class.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from pathlib import Path

from mcef.data.errors import DataError

# (module, name) a supported feature file may reference; numpy moved its internals to numpy._core in 2.0.
ALLOWED_GLOBALS = frozenset({
    *(("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "complex", "str",
                                      "bytes", "bytearray", "bool", "slice", "range")),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("_codecs", "encode"),  # how protocol-2 pickles carry bytes
    ("copyreg", "_reconstructor"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5 arrays
    *(("numpy", name) for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                                   "uint16", "uint32", "uint64", "bool_", "str_", "bytes_")),
})


class _AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (refusing by raising, so nothing is constructed)."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")  # latin1 decodes Python 2 str pickles (MMGCN); Python 3 unaffected
        self.path = path

    def find_class(self, module: str, name: str):
        # Python 2 names (``__builtin__.set``, protocol <= 2) are checked as what they become in Python 3.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in ALLOWED_GLOBALS:
            raise DataError(
                f"{self.path}: refused to load: the pickle asks for {module}.{name}, which is not data (a supported "
                "feature file holds only builtin containers, numbers, strings and numpy arrays); nothing in it was run")
        return super().find_class(module, name)  # already Python 3 names: fix_imports leaves them as they are


def safe_load(path: str | Path):
    """The object pickled in ``path``, built from allow-listed classes only (a DataError for anything else)."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return _AllowListUnpickler(f, path).load()
        except DataError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, IndexError, TypeError, AttributeError, KeyError) as err:
            raise DataError(f"{path}: truncated or corrupt pickle ({type(err).__name__}: {err}); re-download or "
                            "re-copy the file") from None
