"""Compiled programs kept on disk under a key known before tracing (bayesgmm.base.program_cache),
in one process: calls in every form agree with plain ``jax.jit``, a new wrapper loads from
disk, and an entry that will not load is compiled again. Fresh processes:
tests/base/test_compile_cache.py."""

import hashlib
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgmm.base import compile_cache
from bayesgmm.base.compile_cache import CHECKSUM_BYTES, CompileCacheWarning
from bayesgmm.base.program_cache import persistent_jit


def program_entries(folder) -> list:
    """The program cache's files in ``folder`` (pickles; JAX's own entries are not)."""
    header = pickle.dumps(None)[:2]
    return [file for file in sorted(folder.glob("*.xla"))
            if file.read_bytes()[CHECKSUM_BYTES:CHECKSUM_BYTES + 2] == header]


def cache_blob(value: bytes) -> bytes:
    """A cache file holding ``value`` with a valid checksum."""
    return hashlib.sha256(value).digest() + value


@pytest.fixture
def cache_folder(tmp_path):
    """bayesgmm's cache at a fresh folder for this test, then the one in use before."""
    before = compile_cache.compile_cache_dir()
    compile_cache.set_compile_cache(tmp_path)
    yield tmp_path
    compile_cache.set_compile_cache(before)


def _affine(x, shift, *, power: int, scale=2.0):
    return {"y": scale * x**power + shift, "n": jnp.sum(x)}


def test_calls_match_jax_jit_in_every_form(cache_folder):
    ours = persistent_jit(_affine, static_argnames="power")
    reference = jax.jit(_affine, static_argnames="power")
    x = np.arange(6.0).reshape(2, 3)
    calls = [((x, 1.0), {"power": 2}), ((x,), {"shift": 1.0, "power": 3}),
             ((x, np.ones(3)), {"power": 2, "scale": 0.5}), ((x[:1], 1.0), {"power": 2})]
    for args, kwargs in calls:
        got, want = ours(*args, **kwargs), reference(*args, **kwargs)
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want),
                        strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    assert len(ours._loaded) == 4  # one executable per static value and argument types
    assert len(program_entries(cache_folder)) == 4
    # inside another traced function, and with an array placed on purpose: plain jax.jit
    inner = jax.jit(lambda v: ours(v, 1.0, power=2)["y"])(x)
    np.testing.assert_array_equal(inner, reference(x, 1.0, power=2)["y"])
    placed = jax.device_put(x, jax.devices()[0])
    np.testing.assert_array_equal(ours(placed, 1.0, power=2)["y"], 2 * x**2 + 1)
    assert len(ours._loaded) == 4
    jax.clear_caches()  # drops the executables in memory, as for jax.jit
    assert len(ours._loaded) == 0


def test_a_fresh_wrapper_loads_from_disk_and_off_means_plain_jit(cache_folder, monkeypatch):
    x = np.linspace(0.0, 1.0, 5)
    first = persistent_jit(_affine, static_argnames="power")(x, 0.5, power=2)
    cache = compile_cache.active_cache()
    hits = cache.hits
    again = persistent_jit(_affine, static_argnames="power")  # as in a new process
    np.testing.assert_array_equal(again(x, 0.5, power=2)["y"], first["y"])
    assert cache.hits == hits + 1
    compile_cache.set_compile_cache(None)
    off = persistent_jit(_affine, static_argnames="power")
    np.testing.assert_array_equal(off(x, 0.5, power=2)["y"], first["y"])
    assert off._loaded == {}


def test_an_entry_that_will_not_load_warns_once_and_compiles(cache_folder, monkeypatch):
    monkeypatch.setattr(compile_cache, "_warned", set())
    x = np.linspace(0.0, 1.0, 4)
    persistent_jit(_affine, static_argnames="power")(x, 0.5, power=3)
    cache = compile_cache.active_cache()
    for file in program_entries(cache_folder):
        file.write_bytes(cache_blob(pickle.dumps(("junk", None, None))))
    with pytest.warns(CompileCacheWarning, match="could not load"):
        y = persistent_jit(_affine, static_argnames="power")(x, 0.5, power=3)["y"]
    np.testing.assert_allclose(y, 2 * x**3 + 0.5, rtol=1e-6)  # float32 (x64 off)
    assert cache.writes >= 2  # compiled again and stored whole


def test_keys_tell_apart_what_jax_jit_tells_apart(cache_folder):
    ours = persistent_jit(_affine, static_argnames="power")
    x = np.arange(3.0)
    assert ours(x, 1.0, power=2)["y"].dtype == jax.jit(_affine, static_argnames="power")(
        x, 1.0, power=2)["y"].dtype
    np.testing.assert_array_equal(ours(x, 1.0, power=2.0)["y"],
                                  jax.jit(_affine, static_argnames="power")(x, 1.0, power=2.0)["y"])
    assert len(ours._loaded) == 2  # 2 and 2.0 are different static values
    # closures share a qualified name: kept in memory only, never confused on disk
    scaled = [persistent_jit(lambda v, k=k: v * k) for k in (2.0, 3.0)]
    np.testing.assert_array_equal(scaled[0](x), 2 * x)
    np.testing.assert_array_equal(scaled[1](x), 3 * x)
    assert len(program_entries(cache_folder)) == 2  # the two of ``ours`` only
    with pytest.raises(TypeError, match="passed by name"):
        persistent_jit(lambda v, /: v)


def test_every_module_of_the_package_is_in_the_key():
    """The source digest covers the whole package, not the folder of the cache's own module:
    when ``program_cache`` moved into ``bayesgmm/base``, an edit of ``core/em.py`` kept the
    old key and a later process loaded the old program (a different result structure)."""
    import bayesgmm
    from bayesgmm.base import program_cache

    package = Path(bayesgmm.__file__).resolve().parent
    digested = {path.relative_to(package).as_posix() for path in program_cache._SOURCE_FILES}
    assert {"core/em.py", "core/init.py", "engine/bayes/gibbs.py", "base/program_cache.py",
            "__init__.py"} <= digested
    assert digested == {path.relative_to(package).as_posix() for path in package.rglob("*.py")}


def test_edited_sources_keep_programs_off_the_disk(cache_folder, monkeypatch):
    from bayesgmm.base import program_cache

    monkeypatch.setattr(compile_cache, "_warned", set())
    edited = dict(program_cache._SOURCE_FILES)
    first = next(iter(edited))
    edited[first] += 1  # as if the file had been saved again after the process started
    monkeypatch.setattr(program_cache, "_source_files", lambda: edited)
    with pytest.warns(CompileCacheWarning, match="source files changed"):
        y = persistent_jit(_affine, static_argnames="power")(np.ones(2), 0.0, power=5)["y"]
    np.testing.assert_array_equal(y, 2 * np.ones(2))
    assert program_entries(cache_folder) == []
