"""Reading the ERC literature's feature pickles without running code from them.

A pickle names the callables that rebuild its objects, and plain ``pickle.load`` calls whatever it names (``os.system``
included). :func:`safe_load` resolves only an allow-list: builtin containers and scalars, numpy arrays, dtypes and
scalars, and the few helpers numpy and the Python 2 -> 3 translation use to rebuild them. Anything else is refused
before it is constructed, with an error that names the file and the class.

One peer file holds objects of its project's own class: COGMEN's ``data_iemocap.pkl`` is a dict of lists of
``cogmen.Sample.Sample``. That name is mapped to a :class:`PeerRecord` stand-in, a plain holder that only stores the
attributes the pickle gives it; COGMEN's code is never imported or run.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import pickle
from pathlib import Path

from mcef.data.errors import DataError

# (module, name) a supported feature file may reference; numpy moved its internals to numpy._core in 2.0.
ALLOWED_GLOBALS = frozenset({
    *(("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "complex", "str",
                                      "bytes", "bytearray", "bool", "slice", "range", "object")),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("_codecs", "encode"),  # how protocol-2 pickles carry bytes
    ("copyreg", "_reconstructor"),  # protocol 0/1 instances (with builtins.object as base): only allowed classes
    ("numpy", "ndarray"), ("numpy", "dtype"),
    *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5 arrays
    *(("numpy", name) for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                                   "uint16", "uint32", "uint64", "bool_", "str_", "bytes_")),
})


class PeerRecord:
    """A stand-in for a peer project's data class: it stores the attributes a pickle gives it, and nothing else.

    ``peer_class`` names the class it stands in for (e.g. ``cogmen.Sample.Sample``); ``fields`` holds the attributes.
    """

    __slots__ = ("fields",)
    peer_class = ""

    def __new__(cls, *args, **kwargs):
        if args or kwargs:  # a pickle that calls the class with arguments is not one of the known files
            raise TypeError(f"the stand-in for {cls.peer_class} takes no arguments")
        record = object.__new__(cls)
        record.fields = {}
        return record

    def __setstate__(self, state) -> None:
        # Plain pickles of a class without __slots__ carry its __dict__; anything else is not a known file.
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise TypeError(f"the state of a {self.peer_class} is a {type(state).__name__}; expected its attributes")
        try:
            self.fields.update(state)
        except AttributeError:  # built by copyreg._reconstructor (protocols 0 and 1), which skips __new__
            self.fields = dict(state)

    def __repr__(self) -> str:
        return f"<{self.peer_class} stand-in with {sorted(self.fields)}>"


def _stand_in(qualified: str) -> type:
    return type(qualified.rsplit(".", 1)[-1], (PeerRecord,), {"__slots__": (), "peer_class": qualified})


# (module, name) of peer classes whose pickles are read through a stand-in, never through the peer's code.
STAND_INS = {("cogmen.Sample", "Sample"): _stand_in("cogmen.Sample.Sample")}


class _AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and :data:`STAND_INS` (refusing by raising)."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")  # latin1 decodes Python 2 str pickles (MMGCN); Python 3 unaffected
        self.path = path

    def find_class(self, module: str, name: str):
        """The global ``module.name`` if allowed (or its stand-in); else a DataError, before anything is built."""
        # Python 2 names (``__builtin__.set``, protocol <= 2) are checked as what they become in Python 3.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in STAND_INS:
            return STAND_INS[(module, name)]
        if (module, name) not in ALLOWED_GLOBALS:
            raise DataError(
                f"{self.path}: refused to load: the pickle asks for {module}.{name}, which is not data (a supported "
                "feature file holds only builtin containers, numbers, strings and numpy arrays"
                f"{', or COGMEN samples' if module.split('.')[0] == 'cogmen' else ''}); nothing in it was run")
        return _resolve(module, name, self.path)


def _resolve(module: str, name: str, path: Path):
    """An allow-listed global, also when the pickle was written by the other numpy major version."""
    candidates = [module]
    if module.startswith("numpy._core."):  # written by numpy >= 2, read by numpy 1.x
        candidates.append("numpy.core." + module[len("numpy._core."):])
    elif module.startswith("numpy.core."):  # written by numpy 1.x (or Python 2), read by numpy >= 2
        candidates.insert(0, "numpy._core." + module[len("numpy.core."):])
    for candidate in candidates:
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise DataError(f"{path}: the pickle asks for {module}.{name}, which this installation does not have (numpy "
                    f"{_numpy_version()}); expected a file written with numpy arrays of a supported numpy version")


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


def safe_load(path: str | Path):
    """The object pickled in ``path``, built from allow-listed classes only (a DataError for anything else)."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return _AllowListUnpickler(f, path).load()
        except DataError:
            raise
        except (MemoryError, RecursionError) as err:
            raise DataError(f"{path}: the pickle is too large or too deeply nested to read ({type(err).__name__}); "
                            "expected a feature file") from None
        except Exception as err:  # whatever a corrupt stream makes pickle or numpy raise: never a traceback
            raise DataError(f"{path}: truncated or corrupt pickle ({type(err).__name__}: {err}); re-download or "
                            "re-copy the file") from None
