"""Training NRF and the linear baseline on a tiny synthetic problem, and the
file-level glue (train -> predict -> score) on tiny files.

The problem: 3 latent image factors z drive the features (tokens, embedding)
and the responses, response(image, x) = sum_k w_k(x) z_k + noise with w_k
smooth in the voxel's coordinate x, so a coordinate-conditioned model can
learn it from the features and coordinates alone.
"""

import csv

import h5py
import numpy as np
import pytest
import torch

from nrf.data import nsd_layout
from nrf.data.prepared import PreparedSubject, write_prepared
from nrf.data.prepared import Split as PreparedSplit
from nrf.experiments.scoring import score_predictions
from nrf.models.nrf import NRF, NRFConfig
from nrf.training.loop import (
    EncodingSplit,
    TrainConfig,
    evaluate,
    nrf_loss,
    predict,
    train_linear,
    train_nrf,
)
from nrf.training import encoders as encoding

N_TOK, TOK, EMB = 4, 6, 8
MODEL = NRFConfig(TOK, N_TOK, EMB, merger_token_dim=4, merger_dim=8, depth=3, width=32, fourier_scale=4.0)
FAST = dict(batch_images=16, batch_voxels=64, lr=3e-3)


def make_problem(rng, n_img=150, n_vox=120, k=3):
    z = rng.normal(size=(n_img, k))
    a, b = rng.normal(size=(2, k, N_TOK * TOK))
    noise = lambda *shape: 0.3 * rng.normal(size=shape)  # noqa: E731
    features = {
        "tokens_shallow": (z @ a + noise(n_img, N_TOK * TOK)).reshape(n_img, N_TOK, TOK).astype(np.float16),
        "tokens_deep": (np.tanh(z @ b) + noise(n_img, N_TOK * TOK)).reshape(n_img, N_TOK, TOK).astype(np.float16),
        "embedding": (z @ rng.normal(size=(k, EMB)) + noise(n_img, EMB)).astype(np.float32),
    }
    coords = rng.uniform(-40, 40, size=(n_vox, 3)).astype(np.float32)
    w = np.sin(coords @ rng.normal(size=(3, k)) / 25 + rng.uniform(0, 2 * np.pi, k))
    responses = (z @ w.T + noise(n_img, n_vox)).astype(np.float32)
    return features, responses, coords


@pytest.fixture(scope="module")
def problem():
    features, responses, coords = make_problem(np.random.default_rng(7))
    split = lambda s: EncodingSplit({k: v[s] for k, v in features.items()}, responses[s])  # noqa: E731
    return split(slice(0, 110)), split(slice(110, None)), coords


def test_loss_formula(rng):
    p, t = rng.normal(size=(2, 4, 9))
    cos = np.mean([np.dot(p[i], t[i]) / np.linalg.norm(p[i]) / np.linalg.norm(t[i]) for i in range(4)])
    ref = 0.8 * np.mean((p - t) ** 2) - 0.2 * cos
    assert float(nrf_loss(torch.as_tensor(p), torch.as_tensor(t), alpha=0.2)) == pytest.approx(ref, abs=1e-10)


def test_nrf_learns(problem):
    train, val, coords = problem
    cfg = TrainConfig(**FAST, max_steps=300, eval_every=50, patience=None, seed=0)
    model, history = train_nrf(train, val, coords, cfg, model_config=MODEL)
    assert [h["step"] for h in history] == [50, 100, 150, 200, 250, 300]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_median_r"] > 0.6
    # fixed budget: the final state is kept, and its score is the last record's
    assert evaluate(model, val, coords, cfg)["median_r"] == pytest.approx(history[-1]["val_median_r"])


def test_same_seed_same_weights(problem):
    train, val, coords = problem
    cfg = TrainConfig(**FAST, max_steps=15, eval_every=5, patience=None, seed=3)
    a, _ = train_nrf(train, None, coords, cfg, model_config=MODEL)
    b, _ = train_nrf(train, None, coords, cfg, model_config=MODEL)
    c, _ = train_nrf(train, None, coords, TrainConfig(**{**cfg.to_dict(), "seed": 4}), model_config=MODEL)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["predictor.0.weight"], sc["predictor.0.weight"])


def test_patience_stops_early_and_restores_best(problem):
    train, val, coords = problem
    # lr 0: the first evaluation is never beaten
    cfg = TrainConfig(**{**FAST, "lr": 0.0}, max_steps=1000, eval_every=4, patience=2)
    _, history = train_nrf(train, val, coords, cfg, model_config=MODEL)
    assert [h["step"] for h in history] == [4, 8, 12]
    _, history = train_nrf(train, val, coords, TrainConfig(**{**cfg.to_dict(), "min_steps": 20}), model_config=MODEL)
    assert history[-1]["step"] == 20
    # with learning, the returned state is the best evaluation's
    cfg = TrainConfig(**{**FAST, "lr": 3e-2}, max_steps=120, eval_every=10, patience=3)
    model, history = train_nrf(train, val, coords, cfg, model_config=MODEL)
    best = max(h["val_median_r"] for h in history)
    assert evaluate(model, val, coords, cfg)["median_r"] == pytest.approx(best)


@pytest.mark.parametrize("trainable", ["predictor", "image_block"])
def test_finetune_freezes(problem, trainable):
    train, _, coords = problem
    base = NRF(MODEL, init_seed=0)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = TrainConfig(**FAST, max_steps=5, eval_every=5, patience=None, trainable=trainable)
    model, _ = train_nrf(train, None, coords, cfg, model=base)
    assert model is base
    after = model.state_dict()
    merger_same = all(torch.equal(before[k], after[k]) for k in after if k.startswith("merger_"))
    predictor_same = all(torch.equal(before[k], after[k]) for k in after if k.startswith("predictor."))
    assert torch.equal(before["fourier.B"], after["fourier.B"])
    assert (merger_same, predictor_same) == ((True, False) if trainable == "predictor" else (False, True))
    assert all(p.requires_grad for p in model.parameters())  # unfrozen on return


def test_linear_picks_best_val_mse(problem):
    train, val, _ = problem
    small = EncodingSplit({"embedding": train.features["embedding"][:12]}, train.responses[:12])
    cfg = TrainConfig(batch_images=4, lr=3e-2, epochs=40, seed=0)
    model, history = train_linear(small, val, cfg)
    assert len(history) == 40 and history[-1]["train_loss"] < history[0]["train_loss"]
    best = min(h["val_mse"] for h in history)
    assert evaluate(model, val, None, cfg)["mse"] == pytest.approx(best, rel=1e-5)
    assert max(h["val_median_r"] for h in history) > 0.5


def test_predict_chunks_agree(problem):
    _, val, coords = problem
    model = NRF(MODEL, init_seed=0)
    whole = predict(model, val.features, coords, chunk_images=1000, chunk_voxels=1000)
    chunked = predict(model, val.features, coords, chunk_images=7, chunk_voxels=33)
    assert whole.shape == val.responses.shape and whole.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


# -- files: train -> predict -> score --------------------------------------------
def _write_files(tmp_path, rng):
    features, responses, coords = make_problem(rng, n_img=60, n_vox=40)
    ids = np.arange(60, dtype=np.int64) * 3 + 1  # any sorted ids
    n_vox = len(coords)
    split = lambda s: PreparedSplit(responses[s], ids[s])  # noqa: E731
    prepared = tmp_path / "prepared.hdf5"
    write_prepared(prepared, PreparedSubject(
        coords=coords, voxel_ijk=np.zeros((n_vox, 3), np.int32),
        rois={a: np.zeros(n_vox, np.int16) for a in nsd_layout.ROI_ATLASES}, ncsnr=np.ones(n_vox),
        train=split(slice(0, 40)), val=split(slice(40, 50)), test=split(slice(50, 60)),
        attrs=dict(subject="subj01", protocol="clean", grid_shape=(4, 4, 4), sessions=[1], val_is_test=False),
    ))
    feats = tmp_path / "features.hdf5"
    with h5py.File(feats, "w") as f:
        f["image_ids"] = ids
        for k, v in features.items():
            f[k] = v
        f.attrs["extractor"] = "synthetic"
        f.attrs["layers"] = [0, 1]
    return prepared, feats, responses[50:60]


@pytest.mark.parametrize("kind", ["nrf", "linear"])
def test_encoding_files(tmp_path, rng, kind):
    prepared, feats, test_responses = _write_files(tmp_path, rng)
    small = {k: v for k, v in MODEL.to_dict().items() if k not in ("token_dim", "n_tokens", "embedding_dim")}
    options = dict(batch_images=8, batch_voxels=16, max_steps=10, eval_every=5, patience=None, epochs=3)
    ckpt_path = tmp_path / f"{kind}.pt"
    ckpt = encoding.train_encoder(
        kind, prepared, feats, ckpt_path, model_options=small if kind == "nrf" else {},
        train_options=options, n_train=25, seed=1,
    )
    assert ckpt_path.is_file() and not list(tmp_path.glob("*.part*"))
    assert len(ckpt["train_image_ids"]) == 25 and ckpt["n_voxels"] == 40 and ckpt["history"]
    # the N-image subset is nested in a larger one drawn with the same seed
    assert set(encoding.subset_indices(40, 10, 1)) <= set(encoding.subset_indices(40, 25, 1))

    preds = tmp_path / "pred.hdf5"
    encoding.predict_test(ckpt_path, prepared, feats, preds, chunk_voxels=16)
    with h5py.File(preds, "r") as f:
        assert f["predictions"].shape == (10, 40) and f["predictions"].dtype == np.float32
        np.testing.assert_array_equal(f["image_ids"][()], np.arange(50, 60) * 3 + 1)
        pred = f["predictions"][()]

    scores = tmp_path / "scores.csv"
    summary = score_predictions(preds, prepared, scores)
    with open(scores) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["voxel", "pearson", "mse"] and len(rows) == 40
    assert float(rows[3]["mse"]) == pytest.approx(np.mean((pred[:, 3] - test_responses[:, 3]) ** 2), rel=1e-5)
    assert summary["n_voxels"] == 40

    # finetuning from the checkpoint starts from its weights
    if kind == "nrf":
        tuned = encoding.train_encoder(
            kind, prepared, feats, tmp_path / "ft.pt", train_options={**options, "lr": 0.0},
            n_train=10, seed=2, init_checkpoint=ckpt_path,
        )
        for k, v in ckpt["state_dict"].items():
            assert torch.equal(v, tuned["state_dict"][k]), k


def test_per_image_voxel_sampling_draws_a_set_per_image():
    from nrf.training.loop import sample_voxels

    gen = torch.Generator().manual_seed(0)
    cols = sample_voxels(500, 40, 8, "per_image", gen)
    assert cols.shape == (8, 40)
    assert all(len(set(row.tolist())) == 40 for row in cols)  # without replacement
    assert len({tuple(sorted(row.tolist())) for row in cols}) == 8  # a fresh set for each image
    shared = sample_voxels(500, 40, 8, "shared", gen)
    assert shared.shape == (40,)


@pytest.mark.parametrize("mode", ["per_image", "shared"])
def test_both_sampling_modes_learn(problem, mode):
    train, val, coords = problem
    cfg = TrainConfig(**FAST, max_steps=150, eval_every=50, patience=None, voxel_sampling=mode)
    model, history = train_nrf(train, val, coords, cfg, model_config=MODEL)
    assert history[-1]["val_median_r"] > 0.4, history[-1]


def test_non_finite_loss_stops_with_step_and_source(problem):
    train, val, coords = problem
    bad = EncodingSplit(train.features, train.responses.copy())
    bad.responses[:, ::2] = np.nan  # every sample of voxels meets one
    cfg = TrainConfig(**{**FAST, "batch_images": 110}, max_steps=5, eval_every=5, patience=None)
    with pytest.raises(FloatingPointError, match=r"step 1 on prepared/subj02.hdf5"):
        train_nrf(bad, val, coords, cfg, model_config=MODEL, source="prepared/subj02.hdf5")


def test_non_finite_loss_is_caught_before_the_update(problem):
    # finetuning updates the model in place: a NaN batch must not reach its weights
    train, val, coords = problem
    bad = EncodingSplit(train.features, np.full_like(train.responses, np.nan))
    model = NRF(MODEL, init_seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(**FAST, max_steps=3, patience=None)
    with pytest.raises(FloatingPointError, match="step 1"):
        train_nrf(bad, None, coords, cfg, model=model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_linear_epochs_reshuffle_and_replay(problem):
    # the shared loop walks whole epochs: every image once per epoch, same seed same weights
    train, val, _ = problem
    cfg = TrainConfig(batch_images=32, lr=1e-2, epochs=3, seed=5)
    a, history = train_linear(train, val, cfg)
    b, _ = train_linear(train, val, cfg)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["step"] for h in history] == [4, 8, 12]  # 110 images in batches of 32
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
