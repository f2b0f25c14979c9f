"""nrf.decoding: the offline ridge decoder, the reconstruction file, MindEye2's input assembly."""

import h5py
import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from nrf.decoding import mindeye2
from nrf.decoding.offline import fit_decoder, read_decoder, write_decoder
from nrf.decoding.reconstructions import (
    Reconstructions,
    read_reconstructions,
    to_uint8,
    to_unit,
    write_reconstructions,
)


def linear_world(n, n_voxels=80, size=4, dim=6, noise=0.1, seed=0):
    """Responses that are a noisy linear function of the image and its features."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 3, size, size)).astype(np.float32)
    embedding = rng.standard_normal((n, dim)).astype(np.float32)
    targets = np.concatenate([images.reshape(n, -1), embedding], axis=1)
    mixing = np.random.default_rng(99).standard_normal((targets.shape[1], n_voxels))
    responses = targets @ mixing + noise * rng.standard_normal((n, n_voxels))
    return responses.astype(np.float32), images, embedding


def test_one_penalty_gives_sklearns_ridge():
    responses, images, embedding = linear_world(50)
    decoder = fit_decoder(responses, images, embedding, alphas=[3.0], cv=5)
    targets = np.concatenate([images.reshape(50, -1), embedding], axis=1)
    reference = Ridge(alpha=3.0).fit(responses, targets)
    test = linear_world(10, seed=1)[0]
    decoded_images, decoded_embedding = decoder.predict(test)
    expected = reference.predict(test)
    np.testing.assert_allclose(decoded_embedding, expected[:, 48:], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(decoded_images.reshape(10, -1), np.clip(expected[:, :48], 0, 1), atol=1e-3)


def test_decoder_recovers_held_out_images(tmp_path):
    responses, images, embedding = linear_world(150)
    decoder = fit_decoder(responses, images, embedding, alphas=[1e-2, 1.0, 1e2], cv=3)
    write_decoder(tmp_path / "d.hdf5", decoder, subject="subj01")
    decoder = read_decoder(tmp_path / "d.hdf5")
    test_responses, test_images, test_embedding = linear_world(20, seed=5)
    decoded_images, decoded_embedding = decoder.predict(test_responses)
    assert decoded_images.shape == (20, 3, 4, 4)
    assert np.corrcoef(decoded_images.ravel(), test_images.ravel())[0, 1] > 0.95
    assert np.corrcoef(decoded_embedding.ravel(), test_embedding.ravel())[0, 1] > 0.95
    with pytest.raises(ValueError, match="80"):
        decoder.predict(test_responses[:, :10])


def test_reconstruction_file_round_trip(tmp_path):
    images = np.random.default_rng(0).random((3, 3, 8, 8)).astype(np.float32)
    stack = to_uint8(images)
    assert stack.shape == (3, 8, 8, 3) and stack.dtype == np.uint8
    np.testing.assert_allclose(to_unit(stack), images, atol=0.5 / 255 + 1e-6)
    recon = Reconstructions(stack, np.array([4, 7, 9]), np.ones((3, 2)), {"backend": "offline", "source": "nrf"})
    write_reconstructions(tmp_path / "r.hdf5", recon)
    back = read_reconstructions(tmp_path / "r.hdf5")
    np.testing.assert_array_equal(back.images, stack)
    assert back.attrs["source"] == "nrf" and back.embedding.shape == (3, 2)
    with pytest.raises(ValueError, match="sorted"):
        write_reconstructions(tmp_path / "bad.hdf5", Reconstructions(stack, np.array([7, 4, 9])))


# -- MindEye2 ------------------------------------------------------------------

GRID = (4, 5, 6)


def c_order_voxels(n=20, seed=0):
    flat = np.sort(np.random.default_rng(seed).choice(np.prod(GRID), n, replace=False))
    return np.stack(np.unravel_index(flat, GRID), axis=1).astype(np.int32)


def fake_checkpoint_dir(root, subject, n_voxels):
    files = mindeye2.required_files(root, subject)
    files["model"].parent.mkdir(parents=True)
    torch.save({"model_state_dict": {mindeye2.RIDGE_KEY: torch.zeros(8, n_voxels)}}, files["model"])
    for key, path in files.items():
        if key != "model":
            path.write_bytes(b"")
    return files


def test_inputs_are_assembled_in_mindeye2_order_and_shape(tmp_path):
    ijk = c_order_voxels()
    responses = np.random.default_rng(1).standard_normal((7, 20)).astype(np.float32)
    fake_checkpoint_dir(tmp_path / "ckpt", "subj01", 20)
    mindeye2.prepare_mindeye2_inputs(responses, np.arange(7), ijk, GRID, checkpoint_dir=tmp_path / "ckpt",
                                     subject="subj01", scaling="as_is", out_path=tmp_path / "in.hdf5")
    with h5py.File(tmp_path / "in.hdf5") as f:
        assert f["voxels"].shape == (7, 1, 20)
        np.testing.assert_array_equal(f["voxels"][:, 0], responses)
    scaled = mindeye2.assemble_inputs(responses, ijk, GRID, 20, scaling="unit_variance")
    np.testing.assert_allclose(scaled[:, 0].std(axis=0), 1.0, rtol=1e-5)


def test_voxel_count_and_order_are_asserted(tmp_path):
    ijk = c_order_voxels()
    responses = np.zeros((3, 20), np.float32)
    fake_checkpoint_dir(tmp_path, "subj02", 15724)
    assert mindeye2.checkpoint_voxel_count(mindeye2.required_files(tmp_path, "subj02")["model"]) == 15724
    with pytest.raises(ValueError, match="expects 15724"):
        mindeye2.prepare_mindeye2_inputs(responses, np.arange(3), ijk, GRID, checkpoint_dir=tmp_path,
                                         subject="subj02", scaling="as_is", out_path=tmp_path / "in.hdf5")
    with pytest.raises(ValueError, match="C-order"):
        mindeye2.assemble_inputs(responses, ijk[::-1], GRID, 20)


def test_missing_checkpoint_folder_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*last.pth.*pscotti/mindeyev2"):
        mindeye2.check_checkpoint_dir(tmp_path / "nowhere", "subj01")
    with pytest.raises(FileNotFoundError, match="checkpoint_dir"):
        mindeye2.check_checkpoint_dir("", "subj01")
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(FileNotFoundError, match="final_subj05_pretrained_40sess_24bs/last.pth"):
        mindeye2.check_checkpoint_dir(tmp_path / "ckpt", "subj05")


def test_mindeye2_inference_checks_before_the_gpu(tmp_path):
    """Without the submodule, a file or a CUDA device, MindEye2 stops with the fix named."""
    from nrf.decoding import mindeye2_inference as inference

    with pytest.raises(FileNotFoundError, match="git submodule update --init vendor/MindEyeV2"):
        inference.vendor_src(tmp_path)
    files = fake_checkpoint_dir(tmp_path / "ckpt", "subj01", 20)
    files["converter"].unlink()
    with pytest.raises(FileNotFoundError, match="bigG_to_L_epoch8.pth"):
        inference.reconstruct(tmp_path / "in.hdf5", tmp_path / "ckpt", "subj01", tmp_path / "out.hdf5")
    with pytest.raises(RuntimeError, match="CUDA"):
        inference.run_mindeye2(np.zeros((1, 1, 20), np.float32), files, device="cpu")


def test_mindeye2_scored_image_blends_enhanced_and_blurry_at_256():
    from nrf.decoding.mindeye2_inference import blend

    enhanced, blurry = np.ones((2, 3, 768, 768), np.float32), np.zeros((2, 3, 64, 64), np.float32)
    out = blend(enhanced, blurry)
    assert out.shape == (2, 3, 256, 256)
    np.testing.assert_allclose(out, 0.75)
