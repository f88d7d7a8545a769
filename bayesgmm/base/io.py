"""Saving and loading fitted models without pickle.

A model file (``.bgmm`` by convention) is a zip archive (numpy's ``.npz`` layout) holding

* ``metadata.json``: the format name and version, the library version, the model's class, its
  constructor parameters and every fitted attribute that is not an array (JSON), with arrays
  replaced by references ``{"__array__": "a7"}``;
* one ``.npy`` entry per array (numeric, boolean or fixed-width text dtypes only), read with
  ``allow_pickle=False``.

The JSON records a SHA-256 digest of each array entry and of the metadata itself, so a
truncated, corrupted or edited file is refused with :class:`ModelFileError` instead of being
loaded wrong. (The digests detect damage and edits; they are not a signature against someone
who rewrites the digests too. Loading never executes code from the file either way: only
registered classes can be rebuilt.)

**A registry, not the objects' dictionaries.** This module imports no estimator. Each class
that can be saved subclasses :class:`Persistable`, which registers it by name, and writes an
explicit state (:meth:`Persistable._get_state`): its constructor parameters, its public fitted
attributes (names ending in ``_``) and the private attributes it lists in ``_private_state``.
Caches are not in the file; a class rebuilds them after loading (``_after_load``). Named tuples
and dataclasses that may appear inside a state register with :func:`register_record`. Because
classes register when their modules are imported, :func:`bayesgmm.load` imports the
estimator modules first; this module's :func:`load` reads only classes already imported.

Everything a model uses to predict travels with it: the fitted parameters, the internal
scaling (``_scaling``, the preprocessing state), feature names, and for a
:class:`~bayesgmm.BayesianGaussianMixture` its posterior draws and the training rows its
posterior summaries are computed on. A round trip gives bit-identical predictions.

Format versions: 1 stored every entry of the object's ``__dict__`` (caches included) under
``"__model__"``, and selection results under ``"__selection__"``; 2 stores registered states
under ``"__object__"``. Version-1 files still load: their entries are filtered through the
same whitelist, so old caches are dropped and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "bayesgmm-model"
#: Increase when the layout changes; files with a larger version are refused.
FORMAT_VERSION = 2
METADATA = "metadata.json"
_ARRAY_KINDS = "biufcUS"  # numeric, bool and fixed-width text: never objects


class ModelFileError(ValueError):
    """A model file cannot be read: missing, not a model, damaged, edited or too new."""


#: Persistable classes and records that may appear in a file, by class name.
_CLASSES: dict[str, type] = {}
_RECORDS: dict[str, type] = {}


def register_record(cls: type) -> type:
    """Class decorator: allow instances of the named tuple or dataclass ``cls`` inside a saved
    state (their fields are saved and passed back to the constructor)."""
    if _RECORDS.setdefault(cls.__name__, cls) is not cls:
        raise TypeError(f"another record class is already registered as {cls.__name__!r}")
    return cls


class Persistable:
    """Adds ``save(path)``; :func:`load` reads the file back.

    Subclasses register themselves by class name. The default state is that of a
    scikit-learn estimator: ``get_params(deep=False)``, the public fitted attributes (names
    ending in ``_``) and the private attributes named in ``_private_state``. A class whose
    state differs overrides :meth:`_get_state` and :meth:`_from_state` together.
    """

    #: Private attributes that belong to the fitted state (the others are caches: not saved).
    _private_state: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if _CLASSES.setdefault(cls.__name__, cls) is not cls:
            raise TypeError(f"another persistable class is already registered as "
                            f"{cls.__name__!r}")

    def save(self, path) -> Path:
        """Write this object to ``path`` (see :mod:`bayesgmm.base.io`); returns the path."""
        return save(self, path)

    @classmethod
    def _state_attribute(cls, name: str) -> bool:
        """Whether the attribute ``name`` is part of the saved state."""
        return (name.endswith("_") and not name.startswith("_")) or name in cls._private_state

    def _get_state(self) -> dict:
        """``{"params": ..., "attributes": ...}``: what the file holds for this object."""
        params = self.get_params(deep=False)
        if isinstance(params.get("random_state"), np.random.RandomState | np.random.Generator):
            params["random_state"] = None  # generator state is not saved; an int seed is
        attributes = {name: value for name, value in vars(self).items()
                      if name not in params and self._state_attribute(name)}
        return {"params": params, "attributes": attributes}

    @classmethod
    def _from_state(cls, state: dict):
        """The object whose :meth:`_get_state` was ``state``. Entries that are not part of
        the state (the caches of format-1 files) are ignored."""
        obj = cls(**state["params"])
        for name, value in state["attributes"].items():
            if cls._state_attribute(name):
                setattr(obj, name, value)
        obj._after_load()
        return obj

    def _after_load(self) -> None:
        """Rebuild what the file does not hold (caches); nothing by default."""


# --------------------------------------------------------------------------- encoding
class _Writer:
    """Turns Python values into JSON with array references, collecting the arrays."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value) -> dict:
        array = np.asarray(value)
        if array.dtype == object:
            if all(isinstance(v, str) for v in array.ravel()):
                return {"__strings__": [str(v) for v in array.ravel()],
                        "shape": list(array.shape)}
            raise TypeError("cannot save an object array (only numbers, booleans and text)")
        if array.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save an array of dtype {array.dtype}")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = np.ascontiguousarray(array)
        return {"__array__": name}

    def encode(self, value) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int | float | np.integer | np.floating | np.bool_):
            return value.item() if isinstance(value, np.generic) else value
        if isinstance(value, Persistable):
            return {"__object__": {"class": type(value).__name__,
                                   "state": self.encode(value._get_state())}}
        if _RECORDS.get(type(value).__name__) is type(value):
            fields = (value._asdict() if hasattr(value, "_asdict")
                      else {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
            return {"__record__": type(value).__name__,
                    "fields": {k: self.encode(v) for k, v in fields.items()}}
        if isinstance(value, range):
            return {"__range__": [value.start, value.stop, value.step]}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v) for v in value]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError("cannot save a dict with non-string keys")
            return {"__dict__": {k: self.encode(v) for k, v in value.items()}}
        if _is_frame(value):
            return {"__frame__": {"columns": [str(c) for c in value.columns],
                                  "data": [self.array(_plain_column(value[c]))
                                           for c in value.columns]}}
        if hasattr(value, "__array__") or isinstance(value, np.ndarray):
            return self.array(value)
        raise TypeError(f"cannot save a value of type {type(value).__name__}")


def _is_frame(value) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _plain_column(column) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype == object:
        values = values.astype(str)
    return values


class _Reader:
    """The inverse of :class:`_Writer`, rebuilding only known types."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def decode(self, value) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        (tag, body), *_ = value.items()
        if tag == "__array__":
            if body not in self.arrays:
                raise ModelFileError(f"the file refers to a missing array {body!r}")
            return self.arrays[body]
        if tag == "__strings__":
            return np.array(body, dtype=object).reshape(value["shape"])
        if tag == "__tuple__":
            return tuple(self.decode(v) for v in body)
        if tag == "__range__":
            return range(*body)
        if tag == "__dict__":
            return {k: self.decode(v) for k, v in body.items()}
        if tag == "__record__":
            cls = _RECORDS.get(body)
            if cls is None:
                raise ModelFileError(f"the file holds an unknown record type {body!r}")
            return cls(**{k: self.decode(v) for k, v in value["fields"].items()})
        if tag == "__frame__":
            import pandas as pd

            return pd.DataFrame({c: self.decode(d)
                                 for c, d in zip(body["columns"], body["data"], strict=True)})
        if tag == "__object__":
            return self.registered(body.get("class"))._from_state(self.decode(body["state"]))
        if tag == "__model__":  # format version 1
            return self.registered(body.get("class"))._from_state(
                {"params": {k: self.decode(v) for k, v in body["params"].items()},
                 "attributes": {k: self.decode(v) for k, v in body["attributes"].items()}})
        if tag == "__selection__":  # format version 1
            return self.registered("SelectionResult")._from_state(
                {k: self.decode(v) for k, v in body.items()})
        raise ModelFileError(f"the file holds an unknown entry {tag!r}")

    @staticmethod
    def registered(name) -> type:
        cls = _CLASSES.get(name)
        if cls is None:
            raise ModelFileError(f"the file holds an unknown class {name!r} (bayesgmm.load "
                                 "knows every bayesgmm class)")
        return cls


# --------------------------------------------------------------------------- files
def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _metadata_digest(metadata: dict) -> str:
    body = {k: v for k, v in metadata.items() if k != "digest"}
    return _digest(json.dumps(body, sort_keys=True, allow_nan=True).encode())


def save(obj, path) -> Path:
    """Write a fitted :class:`~bayesgmm.GaussianMixture`,
    :class:`~bayesgmm.AutoGaussianMixture`, :class:`~bayesgmm.BayesianGaussianMixture` or
    :class:`~bayesgmm.SelectionResult` to ``path``."""
    from bayesgmm.base.config import __version__

    writer = _Writer()
    try:
        content = writer.encode(obj)
    except TypeError as err:
        raise TypeError(f"cannot save {type(obj).__name__}: {err}") from None
    if not isinstance(content, dict) or "__object__" not in content:
        raise TypeError(f"cannot save {type(obj).__name__}: save fitted bayesgmm models or "
                        "selection results")
    blobs = {}
    for name, array in writer.arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        blobs[f"{name}.npy"] = buffer.getvalue()
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "library_version": __version__, "kind": type(obj).__name__,
                "content": content,
                "arrays": {name: _digest(blob) for name, blob in blobs.items()}}
    metadata["digest"] = _metadata_digest(metadata)
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(METADATA, json.dumps(metadata, allow_nan=True))
        for name, blob in blobs.items():
            archive.writestr(name, blob)
    return path


def load(path):
    """Read a model file written by :func:`save` (or a model's ``save``).

    Raises
    ------
    ModelFileError
        The file is not a bayesgmm model file, is truncated or corrupted, was edited after
        saving, or was written by a newer format version.
    FileNotFoundError
        ``path`` does not exist.
    """
    from bayesgmm.base.config import __version__

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if METADATA not in names:
                raise ModelFileError(f"{path} is not a bayesgmm model file (no {METADATA})")
            metadata = json.loads(archive.read(METADATA))
            _check_metadata(metadata, path, __version__)
            blobs = {name: archive.read(name) for name in metadata["arrays"]}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError,
            UnicodeDecodeError) as err:
        raise ModelFileError(f"{path} is not a readable bayesgmm model file (truncated or "
                             f"corrupted: {err})") from None
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path} has corrupted metadata ({err})") from None
    arrays = {}
    for name, blob in blobs.items():
        if _digest(blob) != metadata["arrays"][name]:
            raise ModelFileError(f"{path} is corrupted or was modified: array {name} does not "
                                 "match its recorded checksum")
        try:
            arrays[name.removesuffix(".npy")] = np.load(io.BytesIO(blob), allow_pickle=False)
        except ValueError as err:
            raise ModelFileError(f"{path} holds an array that cannot be read without "
                                 f"unpickling ({err}); refusing it") from None
    try:
        return _Reader(arrays).decode(metadata["content"])
    except (TypeError, KeyError, ValueError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"{path} holds a model this version cannot rebuild: {err}") from None


def _check_metadata(metadata, path: Path, version: str) -> None:
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a bayesgmm model file")
    file_version = metadata.get("format_version")
    if not isinstance(file_version, int):
        raise ModelFileError(f"{path} has no valid format version")
    if file_version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by bayesgmm {metadata.get('library_version')} in model format "
            f"version {file_version}; this is bayesgmm {version}, which reads format versions "
            f"up to {FORMAT_VERSION}. Upgrade bayesgmm to load it.")
    if metadata.get("digest") != _metadata_digest(metadata):
        raise ModelFileError(f"{path} is corrupted or was modified: its metadata does not "
                             "match its recorded checksum")
