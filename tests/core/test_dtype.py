"""float64 parity regardless of the user's JAX x64 setting; float32 close to float64."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.mixture import GaussianMixture as SklearnGMM

from bayesgmm import GaussianMixture

_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    {setup}
    before = jax.config.jax_enable_x64
    from bayesgmm import GaussianMixture, load_faithful
    from sklearn.mixture import GaussianMixture as SklearnGMM
    x = load_faithful().to_numpy()
    kw = dict(n_components=2, tol=1e-10, max_iter=500,
              means_init=np.array([[2.0, 55.0], [4.5, 80.0]]))
    ours = GaussianMixture(**kw).fit(x)
    ref = SklearnGMM(**kw).fit(x)
    assert ours.means_.dtype == np.float64
    assert abs(ours.lower_bound_ - ref.lower_bound_) < 1e-9 * abs(ref.lower_bound_), (
        ours.lower_bound_, ref.lower_bound_)
    assert jax.config.jax_enable_x64 == before, "global x64 flag changed"
    assert jnp.ones(1).dtype == (jnp.float64 if before else jnp.float32)
    print("ok", before)
""")


@pytest.mark.parametrize(("setup", "x64"), [
    ("", False),
    ("jax.config.update('jax_enable_x64', True)", True),
])
def test_float64_path_independent_of_user_x64(setup, x64):
    """Each case in a fresh interpreter: the global flag is the user's, as in real use."""
    result = subprocess.run([sys.executable, "-c", _SCRIPT.format(setup=setup)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"ok {x64}"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the reference
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_close_to_float64_on_standardised_data(covariance_type):
    x = load_iris().data
    x = (x - x.mean(0)) / x.std(0)
    start = SklearnGMM(3, covariance_type=covariance_type, max_iter=2, random_state=0).fit(x)
    kw = dict(covariance_type=covariance_type, weights_init=start.weights_,
              means_init=start.means_, precisions_init=start.precisions_, tol=1e-8,
              max_iter=1000)
    f64 = GaussianMixture(3, **kw).fit(x)
    f32 = GaussianMixture(3, dtype="float32", **kw).fit(x)
    assert f32.lower_bound_ == pytest.approx(f64.lower_bound_, rel=1e-4)
    np.testing.assert_allclose(f32.means_, f64.means_, atol=2e-3)
    np.testing.assert_allclose(f32.covariances_, f64.covariances_, atol=2e-3)
    assert np.mean(f32.predict(x) == f64.predict(x)) > 0.99


def test_float32_on_large_offset_small_spread(faithful):
    """Values near 1e6 with spreads of a few units: internal centring keeps float32 exact
    enough (without it, float32 cannot even represent the data's spread)."""
    x = faithful.to_numpy() + np.array([1e6, 2e6])
    f64 = GaussianMixture(2, random_state=0, tol=1e-8).fit(x)
    f32 = GaussianMixture(2, random_state=0, tol=1e-8, dtype="float32").fit(x)
    np.testing.assert_allclose(np.sort(f32.means_, 0), np.sort(f64.means_, 0), rtol=1e-9)
    assert f32.lower_bound_ == pytest.approx(f64.lower_bound_, rel=1e-4)
