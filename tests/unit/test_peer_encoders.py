"""fWRF, ridge and the Universal Brain Encoder: the RF grid, agreement with
reference solvers, shapes across subjects, and the shared file round trip
(fit -> save -> load -> predict gives the same predictions)."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from sklearn.linear_model import Ridge

from nrf.data import nsd_layout
from nrf.data.prepared import PreparedSubject, write_prepared
from nrf.data.prepared import Split as PreparedSplit
from nrf.features.cache import read_features
from nrf.models.fwrf import FWRF, FWRFConfig, fit_fwrf, pooling_fields, rf_candidates
from nrf.models.universal import UniversalConfig, UniversalEncoder
from nrf.training.loop import EncodingSplit, TrainConfig, predict
from nrf.training.universal import SubjectData, train_universal
from nrf.training import encoders as encoding

CONFIG_YAML = Path(__file__).resolve().parents[2] / "config.yaml"
GRID, TOK, EMB = 3, 5, 6
FINE = 6  # the side of the finer layer map


def make_problem(rng, n_img=80, n_vox=30, k=3):
    """Latent factors z drive the token grids, two layer maps (6 x 6 and 3 x 3),
    the embedding and the responses."""
    z = rng.normal(size=(n_img, k))
    a, b = rng.normal(size=(2, k, GRID * GRID * TOK))
    features = {
        "tokens_shallow": (z @ a).reshape(n_img, GRID * GRID, TOK).astype(np.float16),
        "tokens_deep": np.tanh(z @ b).reshape(n_img, GRID * GRID, TOK).astype(np.float16),
        "embedding": (z @ rng.normal(size=(k, EMB)) + 0.1 * rng.normal(size=(n_img, EMB))).astype(np.float32),
        "maps/fine": (z @ rng.normal(size=(k, FINE * FINE * 4))).reshape(n_img, FINE * FINE, 4).astype(np.float16),
    }
    features["maps/coarse"] = features["tokens_deep"]
    responses = (z @ rng.normal(size=(k, n_vox)) + 0.3 * rng.normal(size=(n_img, n_vox))).astype(np.float32)
    return features, responses


def write_files(tmp_path, rng, n_img=80, n_vox=30, subject="subj01"):
    features, responses = make_problem(rng, n_img, n_vox)
    ids = np.arange(n_img, dtype=np.int64) * 2 + 5
    split = lambda s: PreparedSplit(responses[s], ids[s])  # noqa: E731
    n_test = n_img // 5
    prepared = tmp_path / f"{subject}.hdf5"
    write_prepared(prepared, PreparedSubject(
        coords=rng.uniform(-40, 40, size=(n_vox, 3)).astype(np.float32), voxel_ijk=np.zeros((n_vox, 3), np.int32),
        rois={a: np.zeros(n_vox, np.int16) for a in nsd_layout.ROI_ATLASES}, ncsnr=np.ones(n_vox),
        train=split(slice(0, n_img - n_test)), val=None, test=split(slice(n_img - n_test, None)),
        attrs=dict(subject=subject, protocol="paper", grid_shape=(4, 4, 4), sessions=[1], val_is_test=True),
    ))
    feats = tmp_path / "features.hdf5"
    with h5py.File(feats, "w") as f:
        f["image_ids"] = ids
        for key, value in features.items():
            f[key] = value
        f["maps"].attrs["layers"] = ["fine", "coarse"]
        f.attrs["extractor"] = "synthetic"
        f.attrs["layers"] = [0, 1]
    return prepared, feats


# -- fWRF --------------------------------------------------------------------------
def test_rf_grid_matches_the_stated_sizes():
    cand = rf_candidates(3, 0.8, (0.15, 0.25), 2)
    assert cand.shape == (18, 3)  # 3 x 3 centres x 2 sizes
    np.testing.assert_allclose(np.unique(cand[:, 0]), [-0.4, 0.0, 0.4])
    np.testing.assert_allclose(np.unique(cand[:, 1]), [-0.4, 0.0, 0.4])
    np.testing.assert_allclose(np.unique(cand[:, 2]), [0.15, 0.25])  # 2 log-spaced = the two ends
    three = np.unique(rf_candidates(3, 0.8, (0.15, 0.25), 3)[:, 2])
    assert three[1] == pytest.approx(np.sqrt(0.15 * 0.25))  # log spacing: the geometric mean between
    assert FWRFConfig(("a",), ((16, 4),), 1).n_candidates == 18


def test_pooling_fields_are_normalised_gaussians_at_their_centres():
    cand = np.array([[0.0, 0.0, 0.15], [-0.4, 0.4, 0.25]])
    fields = pooling_fields(cand, 13)
    np.testing.assert_allclose(fields.sum(1), 1.0)
    grid = fields.reshape(2, 13, 13)
    assert np.unravel_index(grid[0].argmax(), (13, 13)) == (6, 6)  # centre of the image
    iy, ix = np.unravel_index(grid[1].argmax(), (13, 13))
    assert iy > 6 and ix < 6  # y = +0.4 is a lower row, x = -0.4 a left column
    # the Gaussian's spread on the grid is its sd in image units
    cell = (np.arange(13) + 0.5) / 13 - 0.5
    marginal = grid[0].sum(0)
    assert np.sqrt(np.sum(marginal * cell**2)) == pytest.approx(0.15, rel=0.05)


def test_fwrf_weights_equal_sklearn_ridge_for_the_chosen_field(rng):
    features, responses = make_problem(rng, n_img=60, n_vox=12)
    keys = ("maps/fine", "maps/coarse")  # two layers at their own resolutions
    config = FWRFConfig(keys, ((FINE * FINE, 4), (GRID * GRID, TOK)), 12, n_top=3, lambdas=(30.0, 1.0))
    model, history = fit_fwrf(features, responses, config, seed=0)
    assert len(model.channels_0) == 3 and history[0]["holdout_images"] == 12
    assert config.lambdas == (1.0, 30.0)  # ascending: the grid's ends are its first and last
    # top channels by variance
    var = features["maps/fine"].astype(np.float64).var(axis=(0, 1))
    assert set(model.channels_0.tolist()) == set(np.argsort(-var)[:3].tolist())
    x = model.pooled({k: torch.as_tensor(v) for k, v in features.items()}).double()  # standardised
    for v in (0, 5, 11):
        k, lam = int(model.candidate[v]), float(model.lam[v])
        ref = Ridge(alpha=lam).fit(x[:, k].numpy(), responses[:, v].astype(np.float64))
        np.testing.assert_allclose(model.weight[:, v].numpy(), ref.coef_, rtol=1e-4, atol=1e-6)
        assert model.bias[v].item() == pytest.approx(ref.intercept_, abs=1e-5)


LAYER_SIDES = (27, 13, 4)  # AlexNet's conv1/2 and conv3-5 grids, the filter bank's coarsest


def test_a_field_sums_to_one_on_each_layers_grid_over_the_same_part_of_the_image():
    config = FWRFConfig([f"maps/l{s}" for s in LAYER_SIDES], [(s * s, 8) for s in LAYER_SIDES], 5, n_top=6)
    model = FWRF(config)
    assert config.grid_sides == LAYER_SIDES and config.feature_dim == 18
    centres = []
    for i, side in enumerate(LAYER_SIDES):
        fields = getattr(model, f"fields_{i}").double().numpy()
        assert fields.shape == (18, side * side)
        np.testing.assert_allclose(fields.sum(1), 1.0, rtol=1e-6)
        cell = (np.arange(side) + 0.5) / side - 0.5
        gy, gx = np.meshgrid(cell, cell, indexing="ij")
        centres.append(np.stack([fields @ gx.ravel(), fields @ gy.ravel()], axis=1))  # centre of mass
    for other in centres[1:]:  # the same Gaussian on every grid (a 4 x 4 grid resolves it coarsely)
        np.testing.assert_allclose(other, centres[0], atol=0.05)
    np.testing.assert_allclose(centres[0][4], [0.0, 0.0], atol=1e-9)  # candidate 4: the image's centre


def test_fwrf_shapes_with_layers_at_their_own_resolutions(rng):
    config = FWRFConfig(["maps/a", "maps/b"], [(36, 5), (9, 3)], 7, n_top=4)
    model = FWRF(config)
    feats = {"maps/a": torch.randn(10, 36, 5), "maps/b": torch.randn(10, 9, 3)}
    assert config.kept_channels == (4, 3)
    assert model.pooled(feats).shape == (10, 18, 7)
    assert model(feats).shape == (10, 7)
    with pytest.raises(ValueError, match="square"):
        FWRFConfig(["maps/a"], [(35, 5)], 7)


def test_fwrf_recovers_the_layer_and_the_field_that_drive_a_voxel(rng):
    """Each voxel responds to one channel of one layer pooled by one candidate
    field; the fit finds that field and puts its largest weight on that feature."""
    n_img, channels = 400, 4
    config = FWRFConfig([f"maps/l{s}" for s in LAYER_SIDES], [(s * s, channels) for s in LAYER_SIDES], 5,
                        lambdas=(1e-3, 0.1, 10.0))
    maps = {k: rng.normal(size=(n_img, s * s, channels)).astype(np.float16)
            for k, s in zip(config.layer_keys, LAYER_SIDES)}
    drivers = [(0, 2, 1), (1, 8, 3), (2, 15, 0), (1, 4, 2), (0, 13, 2)]  # (layer, candidate, channel) per voxel
    cand = rf_candidates()
    responses = np.stack([
        maps[config.layer_keys[layer]][:, :, c].astype(np.float64) @ pooling_fields(cand, LAYER_SIDES[layer])[k]
        for layer, k, c in drivers], axis=1)
    responses = responses / responses.std(0) + 0.05 * rng.normal(size=responses.shape)
    model, _ = fit_fwrf(maps, responses, config, seed=0)
    for v, (layer, k, c) in enumerate(drivers):
        assert int(model.candidate[v]) == k
        assert int(model.weight[:, v].abs().argmax()) == layer * channels + c


# -- Universal -----------------------------------------------------------------------
def test_universal_shapes_with_different_voxel_counts():
    config = UniversalConfig(("tokens_shallow", "tokens_deep"), GRID * GRID, TOK, ("a", "b"), (7, 19),
                             channels=4, embedding_dim=8, chunk_voxels=5)
    model = UniversalEncoder(config, init_seed=0)
    feats = {k: torch.randn(3, GRID * GRID, TOK) for k in ("tokens_shallow", "tokens_deep")}
    assert model(feats, subject="a").shape == (3, 7)
    assert model(feats, subject="b").shape == (3, 19)
    assert model.select("b")(feats).shape == (3, 19)
    # chunking over voxels changes nothing; per-image voxel sets give the same numbers
    values, keys = model.image_code(feats)
    emb = model.embeddings["b"]
    whole = model.respond(values, keys, emb)
    torch.testing.assert_close(model(feats, subject="b"), whole)
    rows = torch.tensor([[0, 3], [4, 1], [18, 2]])
    torch.testing.assert_close(model.respond(values, keys, emb[rows]), whole.gather(1, rows))
    shared = {k: v for k, v in model.state_dict().items() if not k.startswith("embeddings.")}
    model.add_subject("c", 11, seed=1)
    assert model(feats).shape == (3, 11) and model.config.subjects == ("a", "b", "c")
    for k, v in shared.items():
        assert torch.equal(model.state_dict()[k], v)


def test_universal_transfer_learns_only_the_new_embeddings(rng):
    features, responses = make_problem(rng, n_img=40, n_vox=10)
    data = SubjectData("a", EncodingSplit(features, responses))
    cfg = TrainConfig(batch_images=8, batch_voxels=6, lr=1e-2, max_steps=5, patience=None)
    model, _ = train_universal([data], cfg, model_options=dict(channels=4, embedding_dim=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.add_subject("b", 10, seed=0)
    new = model.embeddings["b"].detach().clone()
    model, _ = train_universal([SubjectData("b", EncodingSplit(features, responses))], cfg, model=model,
                               trainable="embeddings")
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v), k
    assert not torch.equal(model.embeddings["b"].detach(), new)


# -- the shared file round trip --------------------------------------------------------
OPTIONS = {
    "fwrf": ({"n_top": 4, "lambdas": [1.0, 100.0]}, {}),
    "ridge": ({"alphas": [0.1, 10.0, 1000.0], "cv": 3}, {}),
    "universal": ({"channels": 4, "embedding_dim": 8},
                  {"batch_images": 8, "batch_voxels": 16, "lr": 1e-2, "max_steps": 6, "eval_every": 3,
                   "patience": None}),
}


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_fit_save_load_predict_round_trip(tmp_path, rng, kind):
    prepared, feats = write_files(tmp_path, rng)
    model_options, train_options = OPTIONS[kind]
    ckpt_path = tmp_path / f"{kind}.pt"
    ckpt = encoding.train_encoder(kind, prepared, feats, ckpt_path, model_options=model_options,
                                  train_options=train_options, seed=3)
    assert ckpt["kind"] == kind and ckpt["n_voxels"] == 30
    out = tmp_path / "pred.hdf5"
    encoding.predict_test(ckpt_path, prepared, feats, out)
    with h5py.File(out, "r") as f:
        from_file = f["predictions"][()]
    assert from_file.shape == (16, 30)
    # the model in memory, rebuilt from the checkpoint dict without the file
    model, _ = encoding.load_encoder(ckpt_path)
    again = encoding.get_kind(kind).build(ckpt["model_config"])
    again.load_state_dict(ckpt["state_dict"])
    with h5py.File(feats, "r") as f:
        test_ids = f["image_ids"][64:]
    test = read_features(feats, test_ids, encoding.get_kind(kind).feature_keys)
    np.testing.assert_array_equal(predict(again, test), from_file)
    np.testing.assert_array_equal(predict(model, test), from_file)
    if kind != "universal":  # the closed-form fits predict the test images above chance
        r = [np.corrcoef(from_file[:, v], h5py.File(prepared, "r")["test/responses"][:, v])[0, 1] for v in range(30)]
        assert np.median(r) > 0.5


def test_ridge_matches_per_voxel_sklearn_at_the_chosen_alpha(rng):
    from nrf.models.ridge import RidgeConfig, fit_ridge

    features, responses = make_problem(rng, n_img=70, n_vox=8)
    emb = features["embedding"].astype(np.float64)
    model, history = fit_ridge(emb, responses, RidgeConfig(EMB, 8, alphas=(0.01, 1.0, 100.0), cv=5))
    x = (emb - emb.mean(0)) / emb.std(0)
    for v in range(8):
        ref = Ridge(alpha=float(model.alpha[v])).fit(x, responses[:, v].astype(np.float64))
        np.testing.assert_allclose(model.weight[:, v].numpy(), ref.coef_, rtol=1e-4, atol=1e-5)
    assert sum(history[0]["alpha_counts"].values()) == 8


def test_closed_form_kinds_refuse_to_continue(tmp_path, rng):
    prepared, feats = write_files(tmp_path, rng)
    ckpt = tmp_path / "f.pt"
    encoding.train_encoder("fwrf", prepared, feats, ckpt, model_options=OPTIONS["fwrf"][0])
    with pytest.raises(ValueError, match="closed form"):
        encoding.train_encoder("fwrf", prepared, feats, tmp_path / "g.pt", init_checkpoint=ckpt)


# -- AlexNet for fWRF on NSD -----------------------------------------------------------
def test_alexnet_without_weights_stops_with_what_to_do(tmp_path, monkeypatch):
    from nrf.features.extractors import get_extractor

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    with pytest.raises(RuntimeError, match="AlexNet ImageNet weights could not be loaded.*alexnet-owt-7be5be79.pth"):
        get_extractor("alexnet", weights=str(tmp_path / "missing.pth"))


def test_alexnet_maps_every_conv_layer_at_its_own_grid(monkeypatch):
    """Shapes only: a random-weight torchvision AlexNet stands in for the
    ImageNet one inside this test (the extractor itself never builds one)."""
    import torchvision

    from nrf.features import alexnet
    from nrf.features.base import check_features

    monkeypatch.setattr(alexnet, "load_alexnet", lambda weights: torchvision.models.alexnet(weights=None).eval())
    ext = alexnet.AlexNetExtractor(weights="unused")
    images = np.random.default_rng(0).integers(0, 256, size=(2, 40, 40, 3), dtype=np.uint8)
    out = ext.extract(images)
    check_features(out, 2)
    assert ext.map_layers == ("conv1", "conv2", "conv3", "conv4", "conv5")
    shapes = {layer: out[f"maps/{layer}"].shape for layer in ext.map_layers}
    assert shapes == {"conv1": (2, 27 * 27, 64), "conv2": (2, 27 * 27, 192), "conv3": (2, 13 * 13, 384),
                      "conv4": (2, 13 * 13, 256), "conv5": (2, 13 * 13, 256)}
    assert (out["maps/conv1"] >= 0).all()  # after ReLU (and max-pool)
    np.testing.assert_array_equal(out["tokens_shallow"], out["maps/conv4"])
    np.testing.assert_array_equal(out["tokens_deep"], out["maps/conv5"])
    assert out["embedding"].shape == (2, 4096)


def test_alexnet_refuses_random_weights(tmp_path, monkeypatch):
    from nrf.features.extractors import get_extractor

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    with pytest.raises(RuntimeError, match="never computed from random weights"):
        get_extractor("alexnet", weights=None)


# -- fWRF's ridge grid on the simulator ------------------------------------------------------
@pytest.fixture(scope="module")
def small_simulation():
    """400 simulated images through the filter bank, 300 voxels of the
    simulated field with noise as the default's (ncsnr ~0.35, 3 repeats)."""
    from nrf.data.sim_images import render_images
    from nrf.data.sim_model import SimulatedBrain, SimulationParams, sample_in_nsdgeneral
    from nrf.features.filterbank import FilterBankExtractor

    n_img, n_vox = 400, 300
    brain = SimulatedBrain(SimulationParams(subjects=("subj01",), n_train_images=n_img, n_test_images=100))
    ids = np.arange(n_img)
    features = FilterBankExtractor().extract(render_images({k: v[ids] for k, v in brain.images.items()}))
    maps = {k: v.astype(np.float16) for k, v in features.items() if k.startswith("maps/")}
    g = np.random.default_rng(0)
    signal = brain.responses(ids, sample_in_nsdgeneral(g, n_vox))
    ncsnr = 0.35 * np.exp(0.25 * g.standard_normal(n_vox))
    return maps, ncsnr * signal + g.standard_normal((n_img, n_vox)) / np.sqrt(3)


def test_the_simulated_lambda_grid_brackets_the_voxels_best_penalties(small_simulation):
    """Under 10% of voxels at either end of the default's grid; the old grid
    [10 .. 1e5] put most at its smallest λ."""
    lambdas = yaml.safe_load(CONFIG_YAML.read_text())["presets"]["simulated"]["fwrf"]["lambdas"]
    maps, responses = small_simulation
    keys = list(maps)
    fit = lambda grid: fit_fwrf(maps, responses, FWRFConfig(  # noqa: E731
        keys, [maps[k].shape[1:] for k in keys], responses.shape[1], lambdas=grid), seed=0)[1][0]
    record = fit(lambdas)
    assert record["at_smallest_lambda"] < 0.1 and record["at_largest_lambda"] < 0.1, record
    assert sum(record["lambda_counts"]) == responses.shape[1]
    assert fit([10.0, 100.0, 1e3, 1e4, 1e5])["at_smallest_lambda"] > 0.3
