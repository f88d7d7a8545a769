"""Label-free summaries (issue #20): the loss-optimal partition against brute force, the
similarity matrix against raw assignment draws, belonging against its definition, and the
prior on K+ against simulation from the prior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import adjusted_rand_score, mutual_info_score

from bayesgmm import BayesianGaussianMixture
from bayesgmm.app.workflow import SMALL_SETTINGS
from bayesgmm.core.partition import WeightPrior, log_k_prior, occupied_count_distribution
from bayesgmm.core.salso import expected_loss, search, starting_partitions
from bayesgmm.engine.bayes.cluster_prior import (
    StickBreakingPrior,
    occupied_prior,
    simulated_occupied_prior,
)
from bayesgmm.engine.bayes.coclustering import (
    canonical_labels,
    sample_assignments,
    similarity_from_labels,
    similarity_from_memberships,
)


# ---------------------------------------------------------------- the partition search
def _set_partitions(n):
    """Every partition of n points as restricted growth strings."""
    def grow(prefix, blocks):
        if len(prefix) == n:
            yield np.array(prefix)
            return
        for k in range(blocks + 1):
            yield from grow([*prefix, k], max(blocks, k + 1))
    yield from grow([0], 1)


def _one_hot(labels, width):
    return (labels[..., None] == np.arange(width)).astype(float)


def _brute_expected_vi(partitions, draws):
    """Mean VI in bits of every partition (P, n) against every draw (S, n): entropies and
    mutual information from the joint label frequencies, not the search's tables."""
    n = partitions.shape[1]
    left, right = _one_hot(partitions, n), _one_hot(draws, draws.max() + 1)
    joint = np.einsum("pib,sil->psbl", left, right) / n
    p_left, p_right = left.sum(axis=1) / n, right.sum(axis=1) / n

    def entropy(p):
        return -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=-1)

    outer = p_left[:, None, :, None] * p_right[None, :, None, :]
    mutual = np.sum(joint * np.log(np.where(joint > 0, joint / np.where(outer > 0, outer, 1),
                                            1.0)), axis=(2, 3))
    vi = entropy(p_left)[:, None] + entropy(p_right)[None, :] - 2.0 * mutual
    return vi.mean(axis=1) / np.log(2.0)


def _brute_expected_binder(partitions, draws):
    """Mean share of pairs on which each partition and each draw disagree."""
    upper = np.triu_indices(partitions.shape[1], 1)
    same_p = (partitions[:, :, None] == partitions[:, None, :])[:, upper[0], upper[1]]
    same_d = (draws[:, :, None] == draws[:, None, :])[:, upper[0], upper[1]]
    disagree = same_p.astype(float) @ (1.0 - same_d).T + (1.0 - same_p) @ same_d.T
    return disagree.mean(axis=1) / len(upper[0])


def _sklearn_vi_bits(a, b):
    entropy = stats.entropy(np.bincount(a)) + stats.entropy(np.bincount(b))
    return (entropy - 2.0 * mutual_info_score(a, b)) / np.log(2.0)


@pytest.mark.parametrize("seed", [0, 2, 3, 9])
def test_search_finds_the_brute_force_minimum(seed):
    """On 7 points (877 partitions) with ambiguous draws, the search's best partition has the
    smallest expected loss of all partitions, for both losses, and the loss it reports equals
    the brute-force one. (Seeds 2 and 3 defeated single-point moves from sequential
    allocation alone: they need the merge step or the one-cluster start.)"""
    rng = np.random.default_rng(seed)
    n, n_draws = 7, 60
    truth = rng.integers(0, 3, n)
    draws = np.where(rng.random((n_draws, n)) < 0.45, rng.integers(0, 4, (n_draws, n)), truth)
    similarity = similarity_from_labels(draws)
    partitions = np.array(list(_set_partitions(n)))
    brute = {"vi": _brute_expected_vi(partitions, draws),
             "binder": _brute_expected_binder(partitions, draws)}
    for loss, values in brute.items():
        with jax.enable_x64(True):
            key = jax.random.PRNGKey(seed)
            device_draws = jnp.asarray(draws, jnp.int32)
            starts = starting_partitions(key, device_draws, 8, 4)
            labels, losses, _ = search(jax.random.split(key, 8), starts, device_draws,
                                       jnp.asarray(similarity), loss=loss, n_blocks=n,
                                       n_draw_labels=4, max_sweeps=50)
            best = int(np.argmin(losses))
            assert float(losses[best]) == pytest.approx(values.min(), abs=1e-12)
            for j in rng.choice(len(partitions), 5, replace=False):
                value = expected_loss(jnp.asarray(partitions[j]), device_draws,
                                      jnp.asarray(similarity), loss, n, 4)
                assert float(value) == pytest.approx(values[j], abs=1e-12)
        if loss == "vi":  # the brute force itself against scikit-learn's information
            found = np.asarray(labels)[best]
            assert np.mean([_sklearn_vi_bits(found, d) for d in draws]) == pytest.approx(
                values.min(), abs=1e-12)


def test_canonical_labels_order_by_size():
    assert canonical_labels(np.array([5, 2, 2, 7, 2, 5])).tolist() == [1, 0, 0, 2, 0, 1]


# ---------------------------------------------------------------- similarity
def test_rao_blackwellised_similarity_matches_raw_assignment_draws():
    """The similarity from per-draw memberships equals the co-clustering frequency of
    assignments drawn from them, within Monte Carlo error."""
    rng = np.random.default_rng(3)
    n_draws, n_points, n_components = 20_000, 6, 3
    membership = rng.dirichlet(np.full(n_components, 0.7), size=(n_draws, n_points))
    raw = similarity_from_labels(sample_assignments(membership, seed=4))
    exact = similarity_from_memberships(membership)
    error = np.sqrt(exact * (1 - exact) / n_draws) + 1e-12
    assert np.all(np.abs(raw - exact) <= 5 * error)
    assert np.allclose(np.diag(exact), 1.0)


@pytest.fixture(scope="module")
def faithful_fit(faithful):
    x = faithful.to_numpy()
    model = BayesianGaussianMixture(10, random_state=0, progress_bar=False,
                                    **SMALL_SETTINGS["gibbs"])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x)
    return model, x


def test_fitted_summaries(faithful_fit):
    """On Old Faithful: the similarity agrees with raw assignment draws; the VI-optimal
    partition separates the two eruption types (as k-means with 2 clusters does); belonging
    equals its definition from per-draw memberships; new rows join the cluster of their
    nearest training twins."""
    model, x = faithful_fit
    similarity = model.posterior_similarity()
    assert similarity.shape == (len(x), len(x))
    membership = model._per_draw_memberships(x)                      # (S, n, T)
    raw = similarity_from_labels(sample_assignments(membership, seed=1))
    exact = similarity.to_numpy()
    n_draws = membership.shape[0]
    # Binomial error, plus three counts of slack for the nearly-never pairs.
    assert np.all(np.abs(raw - exact) <= 5 * np.sqrt(exact * (1 - exact) / n_draws)
                  + 3.0 / n_draws)

    table = model.estimate_partition()
    assert table.attrs["loss"] == "vi" and table["searched"].all()
    from sklearn.cluster import KMeans
    two = KMeans(2, n_init=10, random_state=0).fit_predict((x - x.mean(0)) / x.std(0))
    big = table["cluster"].isin([0, 1]).to_numpy()
    assert big.mean() > 0.95
    assert adjusted_rand_score(two[big], table["cluster"][big]) > 0.9

    # Belonging from its definition: mean over draws of the mean co-clustering probability
    # with the other members of the row's cluster.
    labels = table["cluster"].to_numpy()
    pair = np.einsum("sit,sjt->sij", membership, membership)         # (S, n, n)
    for i in np.argsort(table["belonging"].to_numpy())[:5]:
        others = np.flatnonzero((labels == labels[i]) & (np.arange(len(x)) != i))
        per_draw = pair[:, i, others].mean(axis=1)
        assert table["belonging"].iloc[i] == pytest.approx(per_draw.mean(), rel=1e-9)
        assert table["belonging_lower"].iloc[i] == pytest.approx(
            np.quantile(per_draw, 0.05), rel=1e-9)

    new = model.estimate_partition(x[:20] + 1e-3)
    assert not new["searched"].any()
    assert (new["cluster"].to_numpy() == labels[:20]).mean() >= 0.9
    binder = model.estimate_partition(loss="binder")
    assert binder.attrs["n_clusters"] >= table.attrs["n_clusters"] - 1


def test_summaries_reject_bad_arguments(faithful_fit):
    model, _ = faithful_fit
    with pytest.raises(ValueError, match="loss"):
        model.estimate_partition(loss="l2")
    with pytest.raises(ValueError, match="max_rows"):
        model.posterior_similarity(max_rows=1)
    with pytest.raises(ValueError, match="n_samples"):
        model.n_clusters_prior(0)


# ---------------------------------------------------------------- the prior on K+
def _simulate_prior(weights, n_points, n_components, n_sims, rng):
    """K+ from the generative prior: K, c, weights, then multinomial counts."""
    p_k = np.exp(log_k_prior(weights, n_components))
    k = rng.choice(np.arange(1, n_components + 1), size=n_sims, p=p_k)
    kind, first, second = weights.concentration_prior
    c = (stats.f(first, second).rvs(n_sims, random_state=rng) if kind == "f"
         else rng.gamma(first, 1.0 / second, n_sims))
    gamma = c / k ** (1.0 if weights.dynamic else 0.0)
    occupied = np.empty(n_sims, int)
    for value in np.unique(k):
        rows = k == value
        # Dirichlet(gamma) through its log-gamma representation (gamma can be ~0.001).
        log_g = np.log(rng.gamma(gamma[rows, None] + 1.0, size=(rows.sum(), value))) + np.log(
            rng.random((rows.sum(), value))) / gamma[rows, None]
        w = np.exp(log_g - log_g.max(axis=1, keepdims=True))
        counts = rng.multinomial(n_points, w / w.sum(axis=1, keepdims=True))
        occupied[rows] = (counts > 0).sum(axis=1)
    return np.bincount(occupied, minlength=n_components + 1)[1:] / n_sims


@pytest.mark.parametrize("name", ["mixture_of_finite_mixtures", "dirichlet_process",
                                  "dirichlet_distribution"])
def test_prior_on_occupied_clusters_matches_simulation(name):
    rng = np.random.default_rng(5)
    weights, n_points, n_components, n_sims = WeightPrior.named(name), 40, 8, 200_000
    exact = occupied_prior(n_points, weights, n_components)
    simulated = _simulate_prior(weights, n_points, n_components, n_sims, rng)
    error = np.sqrt(exact * (1 - exact) / n_sims) + 1e-6
    assert np.all(np.abs(simulated - exact) <= 5 * error), (exact, simulated)
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)


def test_urn_recursion_matches_the_closed_form_and_the_simulated_dp():
    """For fixed K and gamma the urn equals the inclusion-exclusion sum (fine at these
    sizes); with K large and gamma = c / K it is the DP's K+ law, which the stick-breaking
    simulation must reproduce (truncation T = 40 is immaterial at N = 12)."""
    from scipy.special import comb, gammaln

    n_points, k, gamma = 12, 5, 0.7
    with jax.enable_x64(True):
        urn = np.asarray(occupied_count_distribution(jnp.asarray(n_points), jnp.asarray(k),
                                                     jnp.asarray(gamma), k))
    only = [0.0] + [np.exp(gammaln(k * gamma) + gammaln(n_points + j * gamma)
                           - gammaln(n_points + k * gamma) - gammaln(j * gamma))
                    for j in range(1, k + 1)]
    closed = [comb(k, m) * sum((-1) ** (m - j) * comb(m, j) * only[j] for j in range(m + 1))
              for m in range(k + 1)]
    assert np.allclose(urn, closed, atol=1e-12)

    c = 1.3
    with jax.enable_x64(True):
        dp = np.asarray(occupied_count_distribution(jnp.asarray(n_points), jnp.asarray(1e7),
                                                    jnp.asarray(c / 1e7), 40))[1:]
    simulated = simulated_occupied_prior(n_points, StickBreakingPrior(c), 40,
                                         n_simulations=100_000, seed=6)
    error = np.sqrt(dp * (1 - dp) / 100_000) + 1e-6
    assert np.all(np.abs(simulated - dp) <= 5 * error)


def test_saved_model_gives_the_same_partition(faithful_fit, tmp_path):
    """The searched partition is kept with the model, and a model saved before any partition
    was searched (no cache in its file) searches one on first use."""
    import bayesgmm

    model, _ = faithful_fit
    before = model.estimate_partition()
    model.save(tmp_path / "model.bgmm")
    reloaded = bayesgmm.load(tmp_path / "model.bgmm")
    assert reloaded.estimate_partition().equals(before)
    del reloaded._partitions
    assert reloaded.estimate_partition()["cluster"].equals(before["cluster"])
