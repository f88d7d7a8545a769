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

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine

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


def make_mixture(n=600, seed=0, separation=6.0):
    """Three well-separated 3-D Gaussian clusters with known labels."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [separation, 0.0, 1.0], [0.0, separation, -1.0]])
    covs = np.array([
        [[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]],
        [[0.6, -0.2, 0.0], [-0.2, 1.2, 0.0], [0.0, 0.0, 0.4]],
        [[0.9, 0.0, 0.3], [0.0, 0.7, 0.0], [0.3, 0.0, 1.1]],
    ])
    labels = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    x = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in labels])
    return x, labels, means, covs


def run_core_batch(x, n_fits, n_components, init="random_from_data", max_iter=300, seed=0,
                   dtype=np.float64, covariance_type="full", reg_covar=1e-6, tol=1e-3):
    """Run the compiled core directly (all fits, no restart selection), as the estimator does.

    Returns the :class:`BatchResult` (numpy) and the :class:`AffineScaling` used.
    """
    import jax
    import jax.numpy as jnp

    from bayesgmm.core.covariance import get_family
    from bayesgmm.core.em import InitOverride, fit_batch
    from bayesgmm.core.init import init_draws
    from bayesgmm.engine.preprocessing import AffineScaling, compute_context, to_blocks

    family = get_family(covariance_type)
    scaling = AffineScaling.fit(x)
    internal = scaling.transform(x)
    with compute_context(dtype):
        draws = jnp.asarray(init_draws(seed, n_fits, init, n_components), dtype)
        result = fit_batch(
            draws, jnp.ones((n_fits, n_components), bool), to_blocks(internal, dtype, family),
            jnp.asarray(reg_covar / scaling.scale**2, dtype), jnp.asarray(tol, dtype),
            jnp.asarray(internal.var(axis=0), dtype), InitOverride(), family=family, init=init,
            max_iter=max_iter)
        return jax.device_get(result), scaling


@pytest.fixture(scope="session")
def faithful():
    return load_faithful()


DATASETS = {
    "synthetic": lambda: make_mixture()[0],
    "faithful": lambda: load_faithful().to_numpy(),
    "iris": lambda: load_iris().data,
    "wine": lambda: load_wine().data,
}
