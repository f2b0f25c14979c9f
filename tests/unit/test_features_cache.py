"""The features cache: stimuli reads, the features file, atomic writes, errors."""

import h5py
import numpy as np
import pytest

from nrf.features.base import Extractor
from nrf.features.cache import (
    MissingImagesError,
    extract_to_hdf5,
    read_feature_info,
    read_features,
    read_stimuli,
)

N_BRICK = 12
SIZE = 8


class FakeExtractor(Extractor):
    """Features that encode the image: every value is a function of pixel (0, 0)."""

    name = "fake"
    layers = (2, 5)

    def __init__(self, fail_after=None):
        self.fail_after = fail_after
        self.seen = []

    def extract(self, images):
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise RuntimeError("extractor failed mid-way")
        self.seen.append(images.copy())
        value = images[:, 0, 0, 0].astype(np.float32)
        n = len(images)
        return {
            "tokens_shallow": np.broadcast_to(value[:, None, None] + 0.25, (n, 4, 3)).copy(),
            "tokens_deep": np.broadcast_to(-value[:, None, None], (n, 4, 3)).copy(),
            "embedding": np.broadcast_to(value[:, None] + 0.1, (n, 5)).copy(),
        }


def brick_images(ids):
    """The image stored for each id: every pixel equals the id (+ a channel offset)."""
    ids = np.asarray(ids)
    img = np.broadcast_to(ids[:, None, None, None], (len(ids), SIZE, SIZE, 3)).astype(np.uint8)
    return img + np.array([0, 100, 50], dtype=np.uint8)


@pytest.fixture
def full_brick(tmp_path):
    path = tmp_path / "nsd_stimuli.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("imgBrick", data=brick_images(np.arange(N_BRICK)), chunks=(1, SIZE, SIZE, 3))
    return path


@pytest.fixture
def subset_file(tmp_path):
    path = tmp_path / "subset.hdf5"
    ids = np.array([3, 7, 20, 41, 55], dtype=np.int64)
    with h5py.File(path, "w") as f:
        f.create_dataset("imgBrick", data=brick_images(ids))
        f.create_dataset("image_ids", data=ids)
    return path


def test_read_stimuli_full_brick_in_requested_order(full_brick):
    ids = [9, 2, 5, 2]
    np.testing.assert_array_equal(read_stimuli(full_brick, ids), brick_images(ids))
    assert read_stimuli(full_brick, ids).dtype == np.uint8


def test_read_stimuli_subset_file_maps_ids_to_rows(subset_file):
    ids = [55, 3, 20]
    np.testing.assert_array_equal(read_stimuli(subset_file, ids), brick_images(ids))


def test_read_stimuli_reads_only_requested_rows(subset_file, monkeypatch):
    reads = []
    getitem = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name == "/imgBrick":
            reads.append(key)
        return getitem(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    read_stimuli(subset_file, [41, 3])
    # rows 0 and 3 (ids 3 and 41) and nothing else, one slice per contiguous run
    assert reads == [slice(0, 1), slice(3, 4)]


def test_read_stimuli_missing_ids_name_the_file(full_brick, subset_file):
    with pytest.raises(MissingImagesError, match=r"subset\.hdf5.*2 requested image id\(s\).*: 4, 99"):
        read_stimuli(subset_file, [3, 4, 99])
    with pytest.raises(MissingImagesError, match=r"nsd_stimuli\.hdf5.*ids 0\.\.11.*: -1, 12"):
        read_stimuli(full_brick, [12, 0, -1])
    # a KeyError, so callers can catch it as one
    with pytest.raises(KeyError):
        read_stimuli(subset_file, [8])


def test_round_trip_dtypes_order_and_attrs(tmp_path, subset_file):
    out = tmp_path / "features" / "fake.hdf5"
    extractor = FakeExtractor()
    extract_to_hdf5(extractor, subset_file, [55, 3, 41, 20, 3], out, batch_size=2)
    assert [len(batch) for batch in extractor.seen] == [2, 2]  # 4 unique ids
    with h5py.File(out, "r") as f:
        assert f["image_ids"].dtype == np.int64
        np.testing.assert_array_equal(f["image_ids"][()], [3, 20, 41, 55])
        assert f["tokens_shallow"].dtype == np.float16 and f["tokens_shallow"].shape == (4, 4, 3)
        assert f["tokens_deep"].dtype == np.float16
        assert f["embedding"].dtype == np.float32 and f["embedding"].shape == (4, 5)
        assert f.attrs["extractor"] == "fake"
        np.testing.assert_array_equal(f.attrs["layers"], [2, 5])

    ids = [41, 3, 55, 41]
    got = read_features(out, ids)
    assert set(got) == {"tokens_shallow", "tokens_deep", "embedding"}
    assert got["embedding"].dtype == np.float32
    assert got["tokens_shallow"].dtype == got["tokens_deep"].dtype == np.float16  # halves memory
    np.testing.assert_array_equal(got["tokens_shallow"][:, 0, 0], np.array(ids) + 0.25)
    np.testing.assert_array_equal(got["tokens_deep"][:, 2, 1], -np.array(ids, dtype=np.float32))
    np.testing.assert_allclose(got["embedding"][:, 3], np.array(ids) + 0.1, rtol=1e-6)

    only = read_features(out, [20], keys=("embedding",))
    assert list(only) == ["embedding"] and only["embedding"].shape == (1, 5)

    info = read_feature_info(out)
    assert info["extractor"] == "fake" and info["layers"] == (2, 5)
    assert info["tokens_shallow_shape"] == (4, 3) and info["embedding_shape"] == (5,)


class MapsExtractor(FakeExtractor):
    """FakeExtractor plus two layer maps at different resolutions, listed coarse first."""

    map_layers = ("coarse", "fine")

    def extract(self, images):
        out = super().extract(images)
        value = images[:, 0, 0, 0].astype(np.float32)
        out["maps/fine"] = np.broadcast_to(value[:, None, None] * 2, (len(images), 16, 2)).copy()
        out["maps/coarse"] = np.broadcast_to(value[:, None, None] + 1, (len(images), 4, 7)).copy()
        return out


def test_layer_maps_round_trip_in_the_extractors_order(tmp_path, subset_file):
    out = tmp_path / "maps.hdf5"
    extract_to_hdf5(MapsExtractor(), subset_file, [55, 3, 41], out, batch_size=2)
    with h5py.File(out, "r") as f:
        assert f["maps/fine"].dtype == np.float16 and f["maps/fine"].shape == (3, 16, 2)
        assert f["maps/fine"].fletcher32 and f["maps/fine"].chunks == (1, 16, 2)
    got = read_features(out, [41, 3], keys=("maps",))
    assert list(got) == ["maps/coarse", "maps/fine"]  # the extractor's order, not the alphabet's
    np.testing.assert_array_equal(got["maps/fine"][:, 5, 1], [82, 6])
    assert got["maps/coarse"].dtype == np.float16 and got["maps/coarse"].shape == (2, 4, 7)
    assert list(read_features(out, [3], keys=("maps/fine",))) == ["maps/fine"]
    info = read_feature_info(out)
    assert info["map_layers"] == ("coarse", "fine") and info["maps/fine_shape"] == (16, 2)
    # a cache without maps (CLIP's) names what fWRF needs
    plain = tmp_path / "plain.hdf5"
    extract_to_hdf5(FakeExtractor(), subset_file, [3], plain)
    assert read_feature_info(plain)["map_layers"] == ()
    with pytest.raises(KeyError, match="no layer maps.*'fake'"):
        read_features(plain, [3], keys=("maps",))


def test_extraction_reads_only_requested_rows(tmp_path, full_brick):
    extractor = FakeExtractor()
    extract_to_hdf5(extractor, full_brick, [7, 1, 4], tmp_path / "fake.hdf5", batch_size=8)
    (images,) = extractor.seen
    np.testing.assert_array_equal(images, brick_images([1, 4, 7]))


def test_crash_leaves_no_output(tmp_path, full_brick):
    out = tmp_path / "fake.hdf5"
    with pytest.raises(RuntimeError, match="mid-way"):
        extract_to_hdf5(FakeExtractor(fail_after=1), full_brick, np.arange(6), out, batch_size=2)
    assert list(tmp_path.iterdir()) == [full_brick]  # neither the file nor its temporary


def test_crash_keeps_a_previous_file(tmp_path, full_brick):
    out = tmp_path / "fake.hdf5"
    extract_to_hdf5(FakeExtractor(), full_brick, [1, 2], out)
    with pytest.raises(RuntimeError):
        extract_to_hdf5(FakeExtractor(fail_after=0), full_brick, [3, 4], out)
    np.testing.assert_array_equal(read_feature_info(out)["image_ids"], [1, 2])


def test_missing_stimuli_ids_fail_before_writing(tmp_path, subset_file):
    out = tmp_path / "fake.hdf5"
    with pytest.raises(MissingImagesError, match=r"subset\.hdf5.*: 4"):
        extract_to_hdf5(FakeExtractor(), subset_file, [3, 4], out)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_read_features_missing_ids_name_the_file(tmp_path, full_brick):
    out = tmp_path / "fake.hdf5"
    extract_to_hdf5(FakeExtractor(), full_brick, [1, 2, 3], out)
    with pytest.raises(MissingImagesError, match=r"fake\.hdf5.*2 requested image id\(s\).*: 0, 9"):
        read_features(out, [9, 1, 0])


def test_float16_overflow_is_refused(tmp_path, full_brick):
    class Huge(FakeExtractor):
        def extract(self, images):
            features = super().extract(images)
            features["tokens_deep"][:] = 1e6
            return features

    out = tmp_path / "huge.hdf5"
    with pytest.raises(ValueError, match="non-finite"):
        extract_to_hdf5(Huge(), full_brick, [1], out)
    assert not out.exists()
