"""Shared data sets for the tests: all bundled, nothing downloaded.

One JAX persistent compilation cache serves the whole run: the two xdist workers, the CLI
subprocesses and the notebook kernels compile many of the same programs. It lives in a fresh
temporary folder per run (made by the controller, inherited by every worker and subprocess
through the environment, removed at the end), so a run never reuses another run's programs.
"""

import os
import shutil
import tempfile

if "BAYESGMM_TEST_JAX_CACHE" not in os.environ:  # the controller (or a plain pytest run)
    os.environ["BAYESGMM_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="bayesgmm-jax-cache-")
    # bayesgmm's own compile cache (bayesgmm.base.compile_cache), pointed at the throwaway folder:
    # the suite never reads or fills the user's cache, and exercises the library's cache.
    os.environ["BAYESGMM_COMPILE_CACHE"] = os.environ["BAYESGMM_TEST_JAX_CACHE"]
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    # Plain jax.jit programs that compile in under 0.1 s (eager operations of the tests and of
    # NumPyro's reference runs, about 4,000 per run) are not written to the shared cache:
    # no other process runs them, and each write cost about 5 ms (bayesgmm honours JAX's
    # variable; a user's default keeps everything).
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
    # One XLA compute thread per test process: two xdist workers (plus a notebook kernel)
    # already fill the two cores, and Eigen's pool spinning for work it cannot get cost 7% of
    # the CPU time (measured on test_selection + test_bayes_model).
    # XLA's older CPU fusion emitters: compiling is about 60% of the suite's time (925 s of
    # 1,555 s of test time), and these compile the Gibbs program in 5.3 s instead of 7.3 s,
    # the default selection grid in 1.8 s instead of 2.2 s and a NUTS program in 7.6 s
    # instead of 9.9 s, with the same run time (0.9-1.0 ms per Gibbs sweep, 183-191 ms for
    # 20 EM iterations on 1e5 x 8); measured on this project's 2-core machine. Only the
    # Gibbs programs use them in the library (see bayesgmm.engine.bayes.gibbs.COMPILER_OPTIONS:
    # variational inference at 1e5 rows ran slower), so the suite's EM and VI programs are
    # compiled differently from a user's; their results agree to rounding.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false"
                               + " --xla_cpu_use_fusion_emitters=false").strip()
    _OWN_CACHE = True
else:
    _OWN_CACHE = False

import pytest

from bayesgmm import load_faithful


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (most of a minute or more) start first, so that the two xdist
    workers do not end with one of them alone on a long test (collection order put them
    last)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


#: Memory mappings of a worker above which its compiled programs are dropped (see below).
MAX_MAPPINGS = 25_000


def _n_mappings() -> int:
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux: no such limit to guard
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after a test module when the worker holds too many.

    Each XLA CPU executable keeps several memory mappings; a worker that has compiled a few
    thousand programs reaches the kernel's ``vm.max_map_count`` (65,530; 50,873 maps were
    measured in one worker at 65% of the suite) and the next mapping aborts the process
    inside XLA ("Fatal Python error: Aborted", 2 of the last 4 full runs). Programs needed
    again come back from the persistent cache above.
    """
    yield
    if _n_mappings() > MAX_MAPPINGS:
        import jax

        from bayesgmm.engine.bayes import inference

        inference._COMPILED.clear()
        jax.clear_caches()


def pytest_unconfigure(config):
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["BAYESGMM_TEST_JAX_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def faithful():
    return load_faithful()


