"""Saving and loading: bit-identical round trips, and clear refusals of damaged files."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from bayesgmm import (
    AutoGaussianMixture,
    BayesianGaussianMixture,
    GaussianMixture,
    ModelFileError,
    load,
    select_model,
)
from bayesgmm.base.io import FORMAT_VERSION, METADATA, _metadata_digest
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def vi_model(faithful):
    return BayesianGaussianMixture(6, method="vi", max_steps=200, random_state=0,
                                   progress_bar=False).fit(faithful)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_mixture_round_trip_is_identical(faithful, tmp_path, covariance_type):
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(faithful)
    loaded = load(model.save(tmp_path / "m.bgmm"))
    assert type(loaded) is GaussianMixture
    assert loaded.get_params() == model.get_params()
    assert list(loaded.feature_names_in_) == ["eruptions", "waiting"]
    np.testing.assert_array_equal(loaded.predict_proba(faithful), model.predict_proba(faithful))
    np.testing.assert_array_equal(loaded.score_samples(faithful), model.score_samples(faithful))
    np.testing.assert_array_equal(loaded.sample(5)[0], model.sample(5)[0])
    assert loaded.bic(faithful) == model.bic(faithful)


def test_selection_result_and_auto_round_trip(faithful, tmp_path):
    # One small program serves both fits (persistence is what is tested).
    result = select_model(faithful, range(1, 3), ("diag", "tied"), n_init=1, random_state=0)
    loaded = load(result.save(tmp_path / "s.bgmm"))
    assert loaded.table.equals(result.table) and loaded.criterion == "bic"
    for row in result.table.itertuples():
        a = result.model(row.covariance_type, row.n_components)
        b = loaded.model(row.covariance_type, row.n_components)
        np.testing.assert_array_equal(a.means_, b.means_)
        np.testing.assert_array_equal(a.covariances_, b.covariances_)
    with pytest.raises(ValueError, match="not in the sweep"):
        loaded.model("full", 2)
    auto = AutoGaussianMixture(range(1, 3), covariance_types=("diag", "tied"), n_init=1,
                               random_state=0).fit(faithful)
    auto_loaded = load(auto.save(tmp_path / "a.bgmm"))
    assert auto_loaded.get_params()["n_components"] == range(1, 3)
    np.testing.assert_array_equal(auto_loaded.predict(faithful), auto.predict(faithful))


def test_bayesian_round_trip_keeps_the_posterior(vi_model, faithful, tmp_path):
    loaded = load(vi_model.save(tmp_path / "b.bgmm"))
    np.testing.assert_array_equal(loaded.predict_proba(faithful),
                                  vi_model.predict_proba(faithful))
    np.testing.assert_array_equal(loaded.score_samples(faithful),
                                  vi_model.score_samples(faithful))
    assert loaded.n_clusters_posterior().equals(vi_model.n_clusters_posterior())
    assert loaded.assignment_uncertainty().equals(vi_model.assignment_uncertainty())
    for a, b in zip(loaded.posterior_draws_, vi_model.posterior_draws_, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def saved(faithful, tmp_path):
    return GaussianMixture(2, random_state=0).fit(faithful).save(tmp_path / "m.bgmm")


def _rewrite(path, edit):
    """Rewrite the archive at ``path`` with ``edit(name, bytes) -> bytes``."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, edit(name, data))


def _edit_metadata(path, change, *, fix_digest=False):
    """Apply ``change(metadata)`` to the archive's metadata, optionally re-signing it."""
    def edit(name, data):
        if name != METADATA:
            return data
        metadata = json.loads(data)
        change(metadata)
        if fix_digest:
            metadata["digest"] = _metadata_digest(metadata)
        return json.dumps(metadata).encode()

    _rewrite(path, edit)


def test_truncated_file_is_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        load(saved)


def test_not_a_model_file_is_refused(tmp_path):
    path = tmp_path / "notes.bgmm"
    path.write_text("eruptions,waiting\n1,2\n")
    with pytest.raises(ModelFileError):
        load(path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.bgmm")


def test_changed_array_is_refused(saved):
    def flip_last_byte(name, data):
        return data[:-1] + bytes([data[-1] ^ 1]) if name.endswith(".npy") else data

    _rewrite(saved, flip_last_byte)
    with pytest.raises(ModelFileError, match="checksum"):
        load(saved)


def test_flipped_bytes_inside_a_compressed_member_are_refused(vi_model, tmp_path):
    """Damage inside a deflated entry makes zlib fail before the CRC check: the library's
    own error, not ``zlib.error``."""
    path = vi_model.save(tmp_path / "b.bgmm")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
        assert member.compress_type == zipfile.ZIP_DEFLATED
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    for offset in range(start + 10, start + member.compress_size - 10, 7):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupted"):
        load(path)


def test_caches_are_not_saved_and_are_rebuilt(vi_model, faithful, tmp_path):
    """The file holds the registered state (parameters, public attributes, the listed private
    ones), not the object's dictionary: the summary caches are left out and rebuilt."""
    assert vi_model.log_likelihood_draws_.shape  # fills the cache of training summaries
    assert vi_model._training_summary is not None
    path = vi_model.save(tmp_path / "b.bgmm")
    with zipfile.ZipFile(path) as archive:
        state = json.loads(archive.read(METADATA))["content"]["__object__"]["state"]
    saved = set(state["__dict__"]["attributes"]["__dict__"])
    private = {name for name in saved if name.startswith("_")}
    assert private <= set(type(vi_model)._private_state)
    assert "_training_summary" not in saved and "_partitions" not in saved
    assert {"posterior_draws_", "weights_", "_scaling"} <= saved
    loaded = load(path)
    assert loaded._training_summary is None and loaded._partitions == {}
    np.testing.assert_array_equal(loaded.log_likelihood_draws_, vi_model.log_likelihood_draws_)
    assert loaded.assignment_uncertainty().equals(vi_model.assignment_uncertainty())


def test_edited_metadata_is_refused(saved):
    def to_diag(metadata):
        state = metadata["content"]["__object__"]["state"]["__dict__"]
        state["params"]["__dict__"]["covariance_type"] = "diag"

    _edit_metadata(saved, to_diag)
    with pytest.raises(ModelFileError, match="modified"):
        load(saved)


def test_newer_format_version_is_refused_with_advice(saved):
    _edit_metadata(saved, lambda metadata: metadata.update(format_version=FORMAT_VERSION + 1),
                   fix_digest=True)
    with pytest.raises(ModelFileError, match="Upgrade bayesgmm"):
        load(saved)


class _Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Payload.marker),))


def test_pickled_array_is_never_unpickled(saved, tmp_path):
    """A file whose array entry is a pickle (object dtype), with valid checksums, is refused
    without running it."""
    _Payload.marker = str(tmp_path / "executed")
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Payload()], dtype=object), allow_pickle=True)
    evil = buffer.getvalue()
    np.load(io.BytesIO(evil), allow_pickle=True)  # the payload is live: it runs when unpickled
    assert (tmp_path / "executed").exists()
    (tmp_path / "executed").unlink()

    def edit(name, data):
        return evil if name.endswith(".npy") else data

    _rewrite(saved, edit)

    def point_digests_at_payload(metadata):
        metadata["arrays"] = {k: hashlib.sha256(evil).hexdigest() for k in metadata["arrays"]}

    _edit_metadata(saved, point_digests_at_payload, fix_digest=True)
    with pytest.raises(ModelFileError, match="unpickling"):
        load(saved)
    assert not (tmp_path / "executed").exists()


def test_saving_something_else_is_a_type_error(tmp_path):
    from bayesgmm.base.io import save

    with pytest.raises(TypeError, match="cannot save"):
        save({"weights": [1.0]}, tmp_path / "x.bgmm")


#: Files written by the format-1 code of commit 1db6d08 (before persistence went through a
#: registry of whitelisted state), with the first rows' predictions that code made.
FORMAT1 = ROOT / "tests" / "data" / "format1"


@pytest.mark.parametrize("name", ["gaussian_mixture", "auto", "variational", "bayesian_gibbs",
                                  "bayesian_vi", "clustering"])
def test_files_of_format_version_1_still_load(faithful, name):
    model = load(FORMAT1 / f"{name}.bgmm")
    expected = json.loads((FORMAT1 / "expected.json").read_text())[name]
    if "predict_proba_head" in expected:
        np.testing.assert_allclose(np.asarray(model.predict_proba(faithful))[:5],
                                   expected["predict_proba_head"], rtol=0, atol=1e-12)
    else:  # the workflow
        np.testing.assert_allclose(np.asarray(model.log_density(faithful))[:5],
                                   expected["log_density_head"], rtol=1e-12)
    if hasattr(model, "n_clusters_posterior"):
        posterior = model.n_clusters_posterior()
        assert posterior.to_numpy().sum() == pytest.approx(1.0)


def test_selection_file_of_format_version_1_still_loads(faithful):
    result = load(FORMAT1 / "selection.bgmm")
    assert sorted(result.table.n_components) == [1, 2]
    model = result.model("diag", 2)
    assert model.predict(faithful).shape == (len(faithful),)
