"""A persistent cache of compiled XLA programs, so that a fresh process does not recompile.

bayesgmm's fits are whole compiled loops; compiling them takes longer than running them on
notebook-sized data. JAX can keep compiled executables on disk between processes (its
*persistent compilation cache*). bayesgmm turns that cache on by default, in the user's cache
folder, the first time one of its compiled modules is imported:

* the folder is ``platformdirs.user_cache_dir("bayesgmm")/xla`` (``~/.cache/bayesgmm/xla`` on
  Linux), or the path in the environment variable ``BAYESGMM_COMPILE_CACHE``; the values
  ``off``, ``0``, ``false``, ``no`` or ``none`` there turn it off;
* :func:`set_compile_cache` moves it, resizes it or turns it off from Python;
* if JAX's cache was already configured (``jax_compilation_cache_dir`` or
  ``JAX_COMPILATION_CACHE_DIR``), or disabled (``jax_enable_compilation_cache=False``),
  bayesgmm leaves JAX's settings as they are and uses that.

When bayesgmm owns the cache it sets two JAX options: the cache folder and
``jax_persistent_cache_min_compile_time_secs = 0`` (bayesgmm's small programs are worth keeping
too; JAX's environment variable ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``, if you set it,
wins). Programs of your own compiled in the same process are then cached in the same folder.

bayesgmm's own programs are also kept under a key computed before tracing, in the same folder
and through the same cache object (:mod:`bayesgmm.base.program_cache`), so that a warm process does
not even trace them.

Safety:

* **Keys.** An entry's file name hashes JAX's key (the compiled program, the jaxlib version,
  the backend and its version, the devices, the XLA flags and the compile options) together
  with the versions of bayesgmm, jax and jaxlib. An upgrade of any of them starts from fresh
  entries; the old ones age out under the size cap.
* **Integrity.** Each entry is written to a temporary file and renamed into place, so a
  reader never sees half an entry, and it carries a SHA-256 checksum of its payload. An entry
  that fails the checksum (a corrupt or truncated file) is deleted and compiled again, with
  one warning per process.
* **Several processes.** Writes are atomic renames and reads verify checksums, so processes
  sharing the folder never load each other's partial writes; two processes compiling the same
  program both write it, and the second rename wins with identical content.
* **Failures.** If the folder cannot be created or written (read-only, disk full), bayesgmm
  compiles as if there were no cache and warns once per process.
* **Size.** The folder is capped (``max_megabytes``, default 1024); when a write would pass
  the cap, the least recently used entries are deleted first.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
import tempfile
import threading
import warnings
from pathlib import Path

ENVIRONMENT_VARIABLE = "BAYESGMM_COMPILE_CACHE"
OFF_VALUES = frozenset({"off", "0", "false", "no", "none"})
DEFAULT_MAX_MEGABYTES = 1024
ENTRY_SUFFIX = ".xla"
CHECKSUM_BYTES = 32

_lock = threading.Lock()
_configured = False
_warned: set[str] = set()


class CompileCacheWarning(UserWarning):
    """The compile cache could not be used; bayesgmm compiled without it."""


def warn_once(kind: str, message: str) -> None:
    """Issue a :class:`CompileCacheWarning` with ``message``, once per process per ``kind``."""
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message, CompileCacheWarning, stacklevel=3)


def versions() -> str:
    """The versions an entry belongs to: bayesgmm, jax and jaxlib."""
    import jax
    import jaxlib

    from bayesgmm.base.config import __version__

    return f"bayesgmm {__version__}, jax {jax.__version__}, jaxlib {jaxlib.__version__}"


def default_cache_dir() -> Path:
    """The default folder: ``platformdirs.user_cache_dir("bayesgmm")/xla``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("bayesgmm", appauthor=False)) / "xla"


class ChecksummedFileCache:
    """JAX cache backend: one checksummed file per entry, atomic writes, LRU size cap.

    Implements the interface of ``jax._src.cache_interface.CacheInterface`` (``get``,
    ``put``, ``clear`` and ``_path``). Values are bytes; on disk each file is
    ``sha256(value) || value``.
    """

    def __init__(self, path: Path, max_bytes: int):
        self._path = Path(path)
        self.max_bytes = int(max_bytes)
        self._path.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = self.writes = 0
        self._thread = threading.local()

    @contextlib.contextmanager
    def bypassed(self):
        """Within the block, JAX's compilations in this thread neither read nor write the
        cache (:mod:`bayesgmm.base.program_cache` stores those programs itself: an executable
        that JAX loaded from the cache does not serialise again completely)."""
        before = self._bypassed()
        self._thread.bypass = True
        try:
            yield
        finally:
            self._thread.bypass = before

    def _bypassed(self) -> bool:
        return getattr(self._thread, "bypass", False)

    def _file(self, key: str) -> Path:
        name = hashlib.sha256(f"{versions()}\n{key}".encode()).hexdigest()
        return self._path / f"{name}{ENTRY_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None if absent or corrupt (then deleted)."""
        if self._bypassed():
            return None
        file = self._file(key)
        try:
            blob = file.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError as error:
            warn_once("read", f"bayesgmm could not read its compile cache ({error}); "
                               "compiling instead.")
            return None
        checksum, value = blob[:CHECKSUM_BYTES], blob[CHECKSUM_BYTES:]
        if len(blob) <= CHECKSUM_BYTES or hashlib.sha256(value).digest() != checksum:
            file.unlink(missing_ok=True)
            warn_once("corrupt", f"bayesgmm's compile cache had a corrupt entry ({file.name}); "
                                  "it was deleted and the program compiled again.")
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(file)  # most recently used: the size cap evicts by modification time
        return value

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` atomically, evicting old entries past the cap."""
        if self._bypassed():
            return
        blob = hashlib.sha256(value).digest() + value
        if len(blob) > self.max_bytes:
            return
        temporary = None
        try:
            self._evict(len(blob))
            handle, temporary = tempfile.mkstemp(dir=self._path, suffix=".tmp")
            with os.fdopen(handle, "wb") as out:
                out.write(blob)
            os.replace(temporary, self._file(key))
            temporary = None
            self.writes += 1
        except OSError as error:
            warn_once("write", f"bayesgmm could not write to its compile cache at "
                                f"{self._path} ({error}); compiling without it.")
        finally:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)

    def _evict(self, incoming: int) -> None:
        entries = []
        for file in self._path.glob(f"*{ENTRY_SUFFIX}"):
            try:
                stat = file.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, file))
        total = sum(size for _, size, _ in entries) + incoming
        for _, size, file in sorted(entries):
            if total <= self.max_bytes:
                break
            file.unlink(missing_ok=True)
            total -= size

    def discard(self, key: str) -> None:
        """Delete the entry stored under ``key``, if any."""
        self._file(key).unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete every entry."""
        for file in self._path.glob(f"*{ENTRY_SUFFIX}"):
            file.unlink(missing_ok=True)


def _install(cache: ChecksummedFileCache | None) -> bool:
    """Make ``cache`` JAX's persistent cache (None: no cache). False if JAX refused."""
    import jax

    try:
        from jax._src import compilation_cache as jax_cache
    except ImportError:  # pragma: no cover - a JAX without the module: plain config only
        jax_cache = None
    if cache is None:
        if jax_cache is not None:
            jax_cache.reset_cache()
        jax.config.update("jax_compilation_cache_dir", None)
        return True
    jax.config.update("jax_compilation_cache_dir", str(cache._path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time())
    if jax_cache is None or not hasattr(jax_cache, "_cache_initialized_mutex"):
        return True  # pragma: no cover - JAX's own file cache at that folder
    jax_cache.reset_cache()
    with jax_cache._cache_initialized_mutex:
        jax_cache._cache = cache
        jax_cache._cache_initialized = True
    return True


#: The environment variable (JAX's own) that sets the shortest compile worth keeping.
MIN_COMPILE_TIME_VARIABLE = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def min_compile_time() -> float:
    """Seconds of compiling below which a program of plain ``jax.jit`` is not written to the
    cache: the user's :data:`MIN_COMPILE_TIME_VARIABLE` if set, else 0 (keep everything:
    bayesgmm's small programs are worth keeping too). A value that is not a number >= 0 is
    an error naming the variable."""
    text = os.environ.get(MIN_COMPILE_TIME_VARIABLE, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ValueError(f"{MIN_COMPILE_TIME_VARIABLE}={text!r}: expected seconds >= 0")
    return value


def _jax_cache_configured_by_user() -> bool:
    import jax

    return (bool(os.environ.get("JAX_COMPILATION_CACHE_DIR"))
            or jax.config.jax_compilation_cache_dir is not None
            or not jax.config.jax_enable_compilation_cache)


def set_compile_cache(path: str | os.PathLike | None = "default", *,
                      max_megabytes: float = DEFAULT_MAX_MEGABYTES) -> Path | None:
    """Move, resize or turn off bayesgmm's persistent compile cache for this process.

    Parameters
    ----------
    path : str, path-like, "default" or None
        The folder to keep compiled programs in; ``"default"`` is
        :func:`default_cache_dir`; ``None`` turns the cache off (JAX's cache folder option is
        reset to None).
    max_megabytes : float
        The size cap; least recently used entries are deleted past it.

    Returns
    -------
    The folder in use, or None when the cache is off or could not be created (then a
    :class:`CompileCacheWarning` says why, and the cache in use before is kept).

    Raises
    ------
    ValueError
        ``max_megabytes`` is not a number > 0.
    """
    global _configured
    if (isinstance(max_megabytes, bool) or not isinstance(max_megabytes, numbers.Real)
            or not max_megabytes > 0):
        raise ValueError(f"max_megabytes must be a number > 0, got {max_megabytes!r}")
    with _lock:
        _configured = True
        if path is None:
            _install(None)
            return None
        folder = default_cache_dir() if path == "default" else Path(path)
        try:
            cache = ChecksummedFileCache(folder, int(max_megabytes * 2**20))
        except OSError as error:
            warn_once("create", f"bayesgmm could not create its compile cache at {folder} "
                                 f"({error}); compiling without it.")
            return None
        _install(cache)
        return folder


def configure_from_environment() -> Path | None:
    """Turn the cache on as ``BAYESGMM_COMPILE_CACHE`` says, once per process.

    Called when bayesgmm's compiled modules are first imported. Does nothing after
    :func:`set_compile_cache` was called, or when JAX's cache was configured by the user.
    """
    global _configured
    if _configured:
        return None
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if value.lower() in OFF_VALUES - {""} or (not value and _jax_cache_configured_by_user()):
        _configured = True
        return None
    return set_compile_cache(value or "default")


def active_cache() -> ChecksummedFileCache | None:
    """bayesgmm's cache object when it is JAX's persistent cache in this process, else None
    (its ``hits``, ``misses`` and ``writes`` count this process's entry reads and writes)."""
    try:
        from jax._src import compilation_cache as jax_cache
    except ImportError:  # pragma: no cover
        return None
    cache = getattr(jax_cache, "_cache", None)
    return cache if isinstance(cache, ChecksummedFileCache) else None


def compile_cache_dir() -> Path | None:
    """The folder JAX's persistent compile cache uses in this process, or None."""
    import jax

    folder = jax.config.jax_compilation_cache_dir
    return None if folder is None else Path(folder)
