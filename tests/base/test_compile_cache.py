"""The persistent compile cache (bayesgmm.base.compile_cache) and the program cache in front of it
(bayesgmm.base.program_cache): fresh processes reuse compiled programs without tracing them, agree
with plain ``jax.jit``, share a folder safely, survive corrupt entries, version changes and
edited sources, and can be turned off; ``import bayesgmm`` stays light."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bayesgmm.base import compile_cache
from bayesgmm.base.compile_cache import CHECKSUM_BYTES, ChecksummedFileCache, CompileCacheWarning

#: A small fit in a fresh process; prints its answer, the cache's counters and any warnings.
JOB = """
import json, sys, warnings
warnings.simplefilter("always")
from jax import monitoring
traced = set()
monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: event.endswith("jaxpr_trace_duration")
    and traced.add(str(kw.get("fun_name"))))
with warnings.catch_warnings(record=True) as caught:
    import numpy as np
    from bayesgmm import GaussianMixture
    from bayesgmm.base import compile_cache, program_cache
    x = np.random.default_rng(0).normal(size=(60, 2)) + np.repeat([[0, 0], [6, 0]], 30, 0)
    # random_from_data: the smallest EM program (about half k-means' compile time); the
    # cache treats every program alike
    model = GaussianMixture(2, covariance_type="spherical", init_params="random_from_data",
                            random_state=0).fit(x)
cache = compile_cache.active_cache()
print(json.dumps({
    "means": sorted(model.means_[:, 0].round(10).tolist()),
    "exact": model.means_.tolist(),
    "folder": str(compile_cache.compile_cache_dir()),
    "counts": None if cache is None else [cache.hits, cache.misses, cache.writes],
    "warnings": [str(w.message) for w in caught if "compile cache" in str(w.message)],
    "traced": sorted(traced),
    "sklearn imported": "sklearn" in sys.modules,
}))
"""

def run_job(environment: dict, script: str = JOB) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BAYESGMM_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    env.update(environment)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.xla"))


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[dict, Path]:
    """The answer of a process that started from an empty cache folder, and that folder
    (read-only for the tests: each copies it with :func:`copy_of`). One compiling process
    serves the tests that need a folder an earlier process filled."""
    folder = tmp_path_factory.mktemp("filled")
    return run_job({"BAYESGMM_COMPILE_CACHE": str(folder)}), folder


@pytest.fixture(scope="module")
def uncached(tmp_path_factory) -> tuple[dict, Path]:
    """The answer of a process with the cache turned off (plain ``jax.jit``), run with an
    empty home folder, and that folder."""
    home = tmp_path_factory.mktemp("home")
    return run_job({"BAYESGMM_COMPILE_CACHE": "off", "HOME": str(home),
                    "XDG_CACHE_HOME": str(home / "cache")}), home


def copy_of(filled: tuple[dict, Path], folder: Path) -> Path:
    shutil.copytree(filled[1], folder, dirs_exist_ok=True)
    return folder


def test_a_fresh_process_loads_what_an_earlier_one_compiled(filled, uncached, tmp_path):
    first = filled[0]
    copy_of(filled, tmp_path)
    written = entries(tmp_path)
    assert first["folder"] == str(filled[1]) and first["warnings"] == []
    hits, misses, writes = first["counts"]
    assert hits == 0 and misses >= 1 and writes == len(written) >= 1
    assert "program" in first["traced"]  # EM, traced once for the program cache
    assert not first["sklearn imported"]  # a fit needs no scikit-learn (0.8 s to import)
    second = run_job({"BAYESGMM_COMPILE_CACHE": str(tmp_path)})
    hits, misses, writes = second["counts"]
    assert (hits, misses, writes) == (len(written), 0, 0)  # every program came from disk
    assert "program" not in second["traced"] and "fit_program" not in second["traced"]
    assert second["exact"] == first["exact"]
    assert entries(tmp_path) == written
    plain = uncached[0]  # plain jax.jit: the reference
    assert "fit_program" in plain["traced"]
    np.testing.assert_allclose(second["exact"], plain["exact"], rtol=1e-12)


def test_processes_sharing_an_empty_folder_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["BAYESGMM_COMPILE_CACHE"] = str(tmp_path)
    jobs = [subprocess.Popen([sys.executable, "-c", JOB], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    answers = []
    for job in jobs:
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))
    assert all(a["means"] == answers[0]["means"] and a["warnings"] == [] for a in answers)
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind
    for file in entries(tmp_path):  # every entry whole: its checksum holds
        blob = file.read_bytes()
        assert hashlib.sha256(blob[CHECKSUM_BYTES:]).digest() == blob[:CHECKSUM_BYTES]
    last = run_job({"BAYESGMM_COMPILE_CACHE": str(tmp_path)})
    assert last["counts"][1:] == [0, 0] and last["means"] == answers[0]["means"]


def test_corrupt_entries_are_recompiled_with_one_warning(filled, tmp_path):
    first = filled[0]
    written = entries(copy_of(filled, tmp_path))
    for i, file in enumerate(written):  # one truncated, the others with a flipped byte
        blob = bytearray(file.read_bytes())
        if i == 0:
            file.write_bytes(bytes(blob[: len(blob) // 2]))
        else:
            blob[len(blob) // 2] ^= 0xFF
            file.write_bytes(bytes(blob))
    second = run_job({"BAYESGMM_COMPILE_CACHE": str(tmp_path)})
    assert second["means"] == first["means"]
    assert len(second["warnings"]) == 1 and "corrupt" in second["warnings"][0]
    hits, misses, writes = second["counts"]
    assert (hits, misses, writes) == (0, len(written), len(written))  # written back whole
    third = run_job({"BAYESGMM_COMPILE_CACHE": str(tmp_path)})
    assert third["warnings"] == [] and third["counts"] == [len(written), 0, 0]


def test_a_changed_version_does_not_load_old_entries(filled, tmp_path):
    written = entries(copy_of(filled, tmp_path))
    upgraded = JOB.replace(
        "    from bayesgmm.base import compile_cache, program_cache",
        "    from bayesgmm.base import compile_cache, program_cache\n"
        "    compile_cache.versions = lambda: 'bayesgmm 99.0, jax 99.0, jaxlib 99.0'")
    after = run_job({"BAYESGMM_COMPILE_CACHE": str(tmp_path)}, upgraded)
    hits, misses, writes = after["counts"]
    assert (hits, misses, writes) == (0, len(written), len(written))  # new keys
    assert len(entries(tmp_path)) == 2 * len(written)
    # edited sources (a development install keeps its version): new program entries only
    edited = run_job({"BAYESGMM_COMPILE_CACHE": str(tmp_path)}, JOB.replace(
        "    from bayesgmm.base import compile_cache, program_cache",
        "    from bayesgmm.base import compile_cache, program_cache\n"
        "    program_cache._source_digest = lambda: 'edited'"))
    assert "program" in edited["traced"] and edited["exact"] == after["exact"]
    assert edited["counts"][2] >= 1  # compiled again and stored; the old entries stay
    assert len(entries(tmp_path)) == 2 * len(written) + edited["counts"][2]


def test_turned_off_by_the_environment(uncached):
    answer, home = uncached
    assert answer["folder"] == "None" and answer["counts"] is None
    assert not (home / "cache").exists()


def test_the_default_folder_and_a_user_configured_jax_cache(tmp_path):
    cache_home = tmp_path / "cache"
    default = run_job({"XDG_CACHE_HOME": str(cache_home)})
    assert default["folder"] == str(cache_home / "bayesgmm" / "xla")
    assert entries(cache_home / "bayesgmm" / "xla")
    theirs = tmp_path / "theirs"
    left_alone = run_job({"XDG_CACHE_HOME": str(tmp_path / "other"),
                          "JAX_COMPILATION_CACHE_DIR": str(theirs)})
    assert left_alone["folder"] == str(theirs) and left_alone["counts"] is None
    assert not (tmp_path / "other").exists()


def test_set_compile_cache_moves_and_turns_off(tmp_path, monkeypatch):
    import jax

    compile_cache.configure_from_environment()  # as importing bayesgmm.core does
    before = jax.config.jax_compilation_cache_dir
    try:
        assert compile_cache.set_compile_cache(tmp_path / "moved") == tmp_path / "moved"
        assert compile_cache.compile_cache_dir() == tmp_path / "moved"
        assert compile_cache.active_cache()._path == tmp_path / "moved"
        assert compile_cache.set_compile_cache(None) is None
        assert compile_cache.compile_cache_dir() is None
        assert compile_cache.active_cache() is None
        for bad in (0, -5, "big", True):
            with pytest.raises(ValueError, match="max_megabytes must be a number > 0"):
                compile_cache.set_compile_cache(tmp_path, max_megabytes=bad)
        (tmp_path / "a_file").write_text("not a folder")
        monkeypatch.setattr(compile_cache, "_warned", set())
        with pytest.warns(CompileCacheWarning, match="could not create"):
            assert compile_cache.set_compile_cache(tmp_path / "a_file") is None
    finally:
        compile_cache.set_compile_cache(before)


def test_write_failures_warn_once_and_the_cap_evicts_the_oldest(tmp_path, monkeypatch):
    monkeypatch.setattr(compile_cache, "_warned", set())
    cache = ChecksummedFileCache(tmp_path / "c", max_bytes=3 * (CHECKSUM_BYTES + 100))
    for i, key in enumerate("abcd"):
        cache.put(key, bytes([i]) * 100)
        os.utime(cache._file(key), (1000 + i, 1000 + i))
    assert cache.get("a") is None  # evicted, least recently used
    assert [cache.get(k) for k in "bcd"] == [bytes([i]) * 100 for i in (1, 2, 3)]
    (tmp_path / "c").rename(tmp_path / "gone")  # the folder vanishes: writes fail
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.put("e", b"x" * 10)
        cache.put("f", b"y" * 10)
    assert [w.category for w in caught] == [CompileCacheWarning]
    assert cache.get("e") is None


def test_import_bayesgmm_loads_no_heavy_module():
    script = ("import sys, bayesgmm; heavy = ['jax', 'numpyro', 'arviz', 'matplotlib', "
              "'pandas', 'sklearn', 'scipy']; print([m for m in heavy if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
    import bayesgmm

    assert set(bayesgmm.__all__) <= set(dir(bayesgmm))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bayesgmm.nope  # noqa: B018


def test_the_users_minimum_compile_time_wins(monkeypatch):
    """JAX's ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``, when set, decides which plain
    ``jax.jit`` programs are kept (this suite sets 0.1 s); unset, bayesgmm keeps everything;
    a value that is not seconds >= 0 is refused by name."""
    import jax

    assert compile_cache.active_cache() is not None  # the suite's own cache is installed
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.1
    variable = compile_cache.MIN_COMPILE_TIME_VARIABLE
    monkeypatch.delenv(variable)
    assert compile_cache.min_compile_time() == 0.0
    monkeypatch.setenv(variable, "2.5")
    assert compile_cache.min_compile_time() == 2.5
    for bad in ("-1", "soon", "nan"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(ValueError, match=variable):
            compile_cache.min_compile_time()

