"""Streaming exact EM over chunked sources (memmap, Parquet, callables) against the in-memory
fit of the same rows from the same start."""

import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.engine.streaming import ChunkedSource, chunked, predict_to, summarise
from tests.helpers import make_mixture

N_ROWS = 12_000
CHUNK = 2_500  # 5 chunks, the last one short


@pytest.fixture(scope="module")
def rows():
    x, _, _, _ = make_mixture(N_ROWS, seed=4)
    return x * np.array([1.0, 10.0, 0.1]) + np.array([0.0, 1e3, -5.0])


@pytest.fixture(scope="module")
def memmap(rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "rows.f64"
    out = np.memmap(path, dtype=np.float64, mode="w+", shape=rows.shape)
    out[:] = rows
    out.flush()
    return np.memmap(path, dtype=np.float64, mode="r", shape=rows.shape)


def _start(rows):
    """A shared start (weights, means, precisions) so both fits run the same EM."""
    return dict(weights_init=[0.3, 0.3, 0.4], means_init=rows[[0, 1, 2]],
                precisions_init=np.stack([np.diag(1 / rows.var(axis=0))] * 3))


@pytest.fixture(scope="module")
def in_memory(rows):
    return GaussianMixture(3, tol=1e-9, max_iter=300, **_start(rows)).fit(rows)


@pytest.fixture(scope="module")
def streamed(rows, memmap):
    return GaussianMixture(3, tol=1e-9, max_iter=300, **_start(rows)).fit(
        chunked(memmap, CHUNK))


def test_streamed_fit_equals_in_memory_fit(in_memory, streamed):
    assert streamed.n_iter_ == in_memory.n_iter_ > 5
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(streamed, name), getattr(in_memory, name),
                                   rtol=1e-8, atol=0)
    assert streamed.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=1e-12)
    np.testing.assert_allclose(streamed.lower_bounds_, in_memory.lower_bounds_, rtol=1e-10)
    assert streamed.n_rows_streamed_ == N_ROWS


def test_every_source_kind_gives_the_same_fit(rows, streamed, tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame(rows, columns=["a", "b", "c"]).to_parquet(path, row_group_size=3000)

    def generator():
        return (rows[i:i + 1000] for i in range(0, N_ROWS, 1000))

    for source in (path, chunked(path, 4096), generator):
        model = GaussianMixture(3, tol=1e-9, max_iter=300, **_start(rows)).fit(source)
        np.testing.assert_allclose(model.means_, streamed.means_, rtol=1e-9)
        np.testing.assert_allclose(model.covariances_, streamed.covariances_, rtol=1e-9)
        names = [] if source is generator else ["a", "b", "c"]  # Parquet carries its names
        assert list(getattr(model, "feature_names_in_", [])) == names


def test_streamed_predictions_equal_in_memory_ones(in_memory, streamed, memmap, rows, tmp_path):
    source = chunked(memmap, CHUNK)
    np.testing.assert_allclose(streamed.predict_proba(source), in_memory.predict_proba(rows),
                               atol=1e-9)
    np.testing.assert_allclose(streamed.score_samples(source), in_memory.score_samples(rows),
                               rtol=1e-9)
    np.testing.assert_array_equal(streamed.predict(source), in_memory.predict(rows))
    written = pd.read_parquet(predict_to(streamed, source, tmp_path / "p.parquet"))
    np.testing.assert_allclose(written.to_numpy(), in_memory.predict_proba(rows), atol=1e-9)
    labels = pd.read_parquet(predict_to(streamed, source, tmp_path / "l.parquet", "predict"))
    np.testing.assert_array_equal(labels["label"], in_memory.predict(rows))


def test_kmeans_start_from_the_reservoir_reaches_the_in_memory_optimum(memmap, in_memory):
    model = GaussianMixture(3, n_init=2, random_state=0).fit(memmap)
    assert model.lower_bound_ == pytest.approx(in_memory.lower_bound_, abs=1e-3)


def test_first_pass_moments_and_reservoir(rows):
    source = ChunkedSource(lambda: (rows[i:i + 777] for i in range(0, N_ROWS, 777)), "test")
    summary = summarise(source, seed=0, reservoir_rows=3000)
    np.testing.assert_allclose(summary.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(summary.var, rows.var(axis=0), rtol=1e-10)
    assert summary.n_rows == N_ROWS and summary.largest_chunk == 777
    # The reservoir is a uniform sample of distinct rows: its mean is within sampling error.
    assert len(np.unique(summary.sample, axis=0)) == 3000
    se = rows.std(axis=0) / np.sqrt(3000)
    assert np.all(np.abs(summary.sample.mean(axis=0) - rows.mean(axis=0)) < 4 * se)


def test_bad_chunks_are_reported_with_global_rows(rows):
    bad = rows.copy()
    bad[7_003, 1] = np.nan
    source = ChunkedSource(lambda: (bad[i:i + 2000] for i in range(0, N_ROWS, 2000)), "test")
    with pytest.raises(ValueError, match=r"test contains 1 NaN values in column 1 \(rows 7003\)"):
        GaussianMixture(2).fit(source)
    with pytest.raises(ValueError, match="not supported for chunked sources"):
        GaussianMixture(2, missing="marginalize").fit(source)
    with pytest.raises(ValueError, match="Parquet"):
        GaussianMixture(2).fit("rows.csv")
