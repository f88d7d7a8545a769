"""Compiled programs kept on disk under a key computed before tracing.

JAX's persistent compile cache (:mod:`bayesgmm.base.compile_cache`) saves XLA's compile time in a
fresh process, but JAX must still trace the Python function and lower it to StableHLO to find
its key. For bayesgmm's large programs (EM, the Gibbs sampler) that is 0.4-1 s per program, the
largest part of a first call once the cache is warm.

:func:`persistent_jit` is ``jax.jit`` with a second cache in front of JAX's. Its key is known
before tracing: the function's name, its static arguments, the shapes and dtypes of its array
arguments, JAX's tracing settings, the XLA flags and compile options, the backend and devices,
and a hash of bayesgmm's source files and of the versions of jax, jaxlib, numpy and NumPyro.
On a hit the executable is loaded from the file without tracing, lowering or compiling. On a
miss the program is traced and compiled with JAX's own cache bypassed, so that the stored
executable is always a fresh compilation: one that JAX loaded from its cache does not
serialise again completely (a later process fails with "Function ... not found").

It stores entries in the folder and with the same checksums, atomic writes and size cap as
the compile cache (:class:`~bayesgmm.base.compile_cache.ChecksummedFileCache`), and it is on exactly
when bayesgmm's compile cache is: turning that off (``BAYESGMM_COMPILE_CACHE=off``,
``set_compile_cache(None)``) or handing the cache to JAX's own configuration turns this off
too, and calls go to ``jax.jit`` unchanged.

An entry is a serialised XLA executable with its argument and result structures
(``jax.experimental.serialize_executable``, which uses ``pickle``). Loading any compiled
executable, from this cache or from JAX's own, runs code from the cache folder: the folder must
be as trusted as the Python installation (it is in the user's own cache folder by default). An
entry that cannot be read, checked or loaded is deleted and the program compiled again, with
one :class:`~bayesgmm.base.compile_cache.CompileCacheWarning` per process.

As with ``jax.jit``, parameters left at their defaults are constants of the program (part of
the key, like static arguments, by type and value). Calls that need ``jax.jit``'s own handling
bypass the cache: tracers (a call inside another traced function), committed or multi-device
arrays (explicit placement or sharding), unhashable static values, and ``jax.disable_jit``.
Programs are kept in memory only, never on disk, for functions without a module-level name
(lambdas, closures), static arguments whose ``repr`` is not stable across processes, and once
bayesgmm's source files changed on disk since the process started (the code in memory may no
longer match them; one warning).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import io
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bayesgmm.base import compile_cache

#: The bayesgmm package folder: every module in it is part of a program's key.
_PACKAGE = Path(__file__).resolve().parents[1]

#: JAX monitoring event: seconds spent reading and loading an executable from the disk.
LOAD_EVENT = "/bayesgmm/base/program_cache/load_duration"


def _source_files() -> dict[Path, int]:
    """bayesgmm's Python files and their modification times (ns)."""
    return {file: file.stat().st_mtime_ns for file in sorted(_PACKAGE.rglob("*.py"))}


def _digest_sources(files: dict[Path, int]) -> str:
    """SHA-256 over ``files``' contents and the versions of the libraries the traced code
    uses (the package version alone does not change between commits of a development
    install)."""
    import importlib.metadata

    import jaxlib

    try:
        numpyro = importlib.metadata.version("numpyro")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a required package
        numpyro = "absent"
    digest = hashlib.sha256(f"jax {jax.__version__} jaxlib {jaxlib.__version__} "
                            f"numpy {np.__version__} numpyro {numpyro}".encode())
    for file in files:
        digest.update(str(file.relative_to(_PACKAGE)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


#: The sources as this process found them when it first imported a compiled module: the
#: code it runs. Computed once, here, so that a later edit cannot be stored under its key.
_SOURCE_FILES = _source_files()
_SOURCE_DIGEST = _digest_sources(_SOURCE_FILES)


def _source_digest() -> str:
    """The digest of the sources this process runs, or None once any of them changed on
    disk since it started (a development install being edited; ``importlib.reload``): the
    code in memory may then be older or newer than the files, so programs are neither read
    from nor written to the disk (one warning) until the process restarts."""
    if _source_files() != _SOURCE_FILES:
        compile_cache.warn_once(
            "sources", "bayesgmm's source files changed while this process ran: its "
                       "compiled programs are kept in memory only until it restarts.")
        return None
    return _SOURCE_DIGEST


def _stable_repr(value: Any) -> str | None:
    """``repr`` naming the type, or None when it would differ between processes (an object
    address in it)."""
    text = f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"
    return None if " at 0x" in text else text


def _leaf_key(leaf: Any) -> Any:
    """A hashable stand-in for an argument leaf's shape, dtype and weak type (with JAX's
    settings, which decide float64 or float32); None when only ``jax.jit`` can handle it (a
    tracer, an array placed or sharded on purpose, an object that is not an array)."""
    kind = type(leaf)
    if kind is np.ndarray:
        return leaf.shape, leaf.dtype
    if kind in (bool, int, float, complex):
        return kind
    if isinstance(leaf, jax.core.Tracer):
        return None
    if isinstance(leaf, jax.Array):
        if leaf.committed or len(leaf.sharding.device_set) > 1:
            return None
        return leaf.aval
    if isinstance(leaf, np.generic):
        return kind, leaf.dtype
    return None


def _environment_key() -> tuple:
    """What, besides the arguments, changes the program within a process: JAX's tracing
    settings (x64, the default device, ...) and the XLA flags."""
    from jax._src import config as jax_config

    return jax_config.trace_context(), os.environ.get("XLA_FLAGS", "")


def _environment_text(trace_context: tuple, xla_flags: str) -> str:
    """The environment as text that is the same in every process with the same settings,
    with the backend and its devices."""
    settings = [repr(v) for v in trace_context if " at 0x" not in repr(v)]
    devices = jax.devices()
    return "\n".join([";".join(settings), xla_flags, jax.default_backend(),
                      devices[0].device_kind, str(len(devices))])


class _LoadedPrograms(dict):
    """A wrapper's executables in this process, cleared by ``jax.clear_caches()`` like
    ``jax.jit``'s own (registered with JAX's cache management where it has one)."""

    # by identity: each is its own key in JAX's registry of caches
    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def cache_clear(self) -> None:
        self.clear()

    def cache_info(self) -> str:
        return f"{len(self)} programs"

    def cache_keys(self) -> list:
        return list(self)


def _register_with_jax(programs: _LoadedPrograms, name: str) -> None:
    try:
        from jax._src import util
        util.register_cache(programs, name)
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without the registry
        pass


class PersistentJit:
    """``jax.jit(fun, static_argnames=..., compiler_options=...)`` whose executables are also
    kept on disk under a key computed before tracing (see the module docstring).

    Calls bind their arguments to ``fun``'s signature: static arguments, and parameters left
    at their defaults, go into the key by type and value (constants of the program, as for
    ``jax.jit``); the others are the program's inputs. ``lower`` and every other
    attribute of the plain ``jax.jit`` function are available, and ``jax.clear_caches()``
    drops the executables held in memory.
    """

    def __init__(self, fun: Callable, *, static_argnames: tuple[str, ...] = (),
                 compiler_options: dict | None = None):
        self._fun = fun
        self._static = frozenset(static_argnames)
        self._compiler_options = compiler_options
        parameters = list(inspect.signature(fun).parameters.values())
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
               for p in parameters):
            raise TypeError("persistent_jit needs parameters that can be passed by name (no "
                            f"*args, **kwargs or positional-only ones): {fun.__qualname__}")
        self._names = frozenset(p.name for p in parameters)
        self._positional = [p.name for p in parameters if p.kind == p.POSITIONAL_OR_KEYWORD]
        self._defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
        self._jitted = jax.jit(fun, static_argnames=static_argnames,
                               compiler_options=compiler_options)
        self._name = f"{fun.__module__}.{fun.__qualname__}"
        self._loaded = _LoadedPrograms()
        _register_with_jax(self._loaded, self._name)
        # chain groups call one program from several threads; re-entrant for a call that
        # traces another call of the same wrapper
        self._lock = threading.RLock()
        functools.update_wrapper(self, fun)

    def __getattr__(self, name: str):
        jitted = self.__dict__.get("_jitted")
        if jitted is None:  # not yet set (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(jitted, name)

    def _cache_size(self) -> int:
        """Executables compiled or loaded in this process (as ``jax.jit``'s ``_cache_size``):
        those held here, and those of calls that went to ``jax.jit``."""
        return len(self._loaded) + self._jitted._cache_size()

    def _arguments(self, args: tuple, kwargs: dict) -> dict | None:
        """Every parameter's value (defaults included), or None when the call does not fit
        the signature (``jax.jit`` then raises Python's error)."""
        if len(args) > len(self._positional):
            return None
        values = dict(self._defaults)
        values.update(zip(self._positional, args, strict=False))
        if any(name not in self._names or name in self._positional[:len(args)]
               for name in kwargs):
            return None
        values.update(kwargs)
        return values if len(values) == len(self._names) else None

    def __call__(self, *args, **kwargs):
        cache = compile_cache.active_cache()
        values = self._arguments(args, kwargs)
        if cache is None or values is None or jax.config.jax_disable_jit:
            return self._jitted(*args, **kwargs)
        # static: the declared ones, and defaults not passed (constants of the trace, as
        # for jax.jit); keyed with their types (jax.jit tells 2 from 2.0)
        constant = self._static | (self._defaults.keys() - kwargs.keys()
                                   - set(self._positional[:len(args)]))
        statics = tuple(sorted((name, type(values[name]), values.pop(name))
                               for name in constant))
        leaves, tree = jax.tree_util.tree_flatten(values)
        leaf_keys = tuple(_leaf_key(leaf) for leaf in leaves)
        if None in leaf_keys:
            return self._jitted(*args, **kwargs)
        try:
            key = (statics, leaf_keys, tree, _environment_key())
            compiled = self._loaded.get(key)
        except TypeError:  # an unhashable static argument: jax.jit says so
            return self._jitted(*args, **kwargs)
        if compiled is None:
            with self._lock:
                compiled = self._loaded.get(key)
                if compiled is None:
                    compiled = self._load_or_compile(cache, key, values, leaves)
                    self._loaded[key] = compiled
        return compiled(values)

    def _program(self, statics: dict) -> Callable:
        """The function of the dynamic arguments (one dict) with the static ones fixed."""
        def program(dynamic):
            return self._fun(**dynamic, **statics)
        return jax.jit(program, compiler_options=self._compiler_options)

    def _disk_key(self, key: tuple, leaves: list) -> str | None:
        """The cache file's key for the in-process ``key``: the same text in every process
        with the same call, sources and settings; None (the program is then kept in memory
        only) for a function without a module-level name (a lambda or closure: their names
        are not unique), a static argument whose ``repr`` would differ between processes, or
        sources changed since the process started."""
        statics, _, tree, (trace_context, xla_flags) = key
        static_text = [_stable_repr(value) for _, _, value in statics]
        digest = _source_digest()
        if None in static_text or digest is None or "<" in self._name:
            return None
        text = "\n".join([self._name, digest, repr(self._compiler_options),
                          *(f"{name}={text}" for (name, _, _), text in zip(statics, static_text,
                                                                         strict=True)),
                          *(str(jax.typeof(leaf)) for leaf in leaves), str(tree),
                          _environment_text(trace_context, xla_flags)])
        return "program:" + hashlib.sha256(text.encode()).hexdigest()

    def _load_or_compile(self, cache, key: tuple, dynamic: dict, leaves: list):
        """The executable for ``key``: loaded from the disk, or compiled (with JAX's cache
        bypassed) and stored when JAX can serialise it."""
        from jax.experimental import serialize_executable

        disk_key = self._disk_key(key, leaves)
        if disk_key is not None:
            start = time.perf_counter()
            blob = cache.get(disk_key)
            compiled = None if blob is None else _deserialise(blob, disk_key, cache)
            if compiled is not None:
                jax.monitoring.record_event_duration_secs(LOAD_EVENT,
                                                          time.perf_counter() - start)
                return compiled
        with cache.bypassed():
            compiled = self._program({name: value for name, _, value in key[0]}
                                     ).lower(dynamic).compile()
        if disk_key is not None:
            try:
                blob = pickle.dumps(serialize_executable.serialize(compiled))
            except Exception:  # a program JAX cannot serialise is simply not kept
                blob = None
            if blob is not None:
                cache.put(disk_key, blob)
        return compiled


def _initialise_cpu_kernels() -> None:
    """Set up jaxlib's LAPACK kernels, as lowering a linear-algebra call would have done: an
    executable that calls them without it crashes (``jax.export`` does the same on loading)."""
    if jax.default_backend() == "cpu":
        from jax._src.lax import linalg

        linalg.initialize_lapack()


def _deserialise(blob: bytes, disk_key: str, cache) -> Any:
    """The executable in ``blob``, or None (entry deleted, one warning) if it will not load."""
    from jax.experimental import serialize_executable

    try:
        _initialise_cpu_kernels()
        payload, in_tree, out_tree = pickle.load(io.BytesIO(blob))
        return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except Exception as error:  # any failure to load means: compile instead
        with contextlib.suppress(OSError):  # a read-only folder: the entry stays
            cache.discard(disk_key)
        compile_cache.warn_once(
            "load", f"bayesgmm could not load a compiled program from its cache ({error!r}); "
                    "it was deleted and the program compiled again.")
        return None


def persistent_jit(fun: Callable | None = None, *, static_argnames: tuple[str, ...] | str = (),
                   compiler_options: dict | None = None):
    """Decorator: :class:`PersistentJit` (``jax.jit`` with executables kept on disk).

    Usable as ``@persistent_jit`` or ``@persistent_jit(static_argnames=...)``.
    """
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    if fun is None:
        return functools.partial(persistent_jit, static_argnames=names,
                                 compiler_options=compiler_options)
    return PersistentJit(fun, static_argnames=names, compiler_options=compiler_options)
