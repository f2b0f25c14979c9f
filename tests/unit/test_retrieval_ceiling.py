"""Retrieval ranks, noise ceilings and the tables that report them."""

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from nrf.data import nsd_layout
from nrf.frames import read_frame, write_frame
from nrf.noise_ceiling import normalised_accuracy, nsd_noise_ceiling, true_noise_ceiling
from nrf.retrieval import pattern_correlations, retrieval_ranks, retrieval_summary


def test_pattern_correlations_match_scipy(rng):
    m, p = rng.normal(size=(2, 6, 40))
    corr = pattern_correlations(m, p)
    assert corr[2, 4] == pytest.approx(pearsonr(m[2], p[4])[0])


def test_perfect_predictions_rank_first_and_noise_ranks_at_chance(rng):
    truth = rng.normal(size=(50, 200))
    assert retrieval_summary(retrieval_ranks(truth, truth))["top1"] == 1.0
    ranks = np.concatenate([retrieval_ranks(rng.normal(size=(50, 200)), truth) for _ in range(20)])
    s = retrieval_summary(ranks[:50])
    assert s["chance_top1"] == pytest.approx(0.02) and s["chance_mean_rank"] == 25.5
    assert np.mean(ranks) == pytest.approx(25.5, abs=2.0)  # 1000 random ranks of 50
    # noisier predictions rank worse
    few = truth[:, :20]
    good = retrieval_ranks(few + 1.0 * rng.normal(size=few.shape), few)
    bad = retrieval_ranks(few + 4.0 * rng.normal(size=few.shape), few)
    assert good.mean() < bad.mean()


def test_constant_prediction_never_retrieves_by_a_tie(rng):
    truth = rng.normal(size=(5, 10))
    ranks = retrieval_ranks(truth, np.ones((5, 10)))
    assert (ranks == 5).all()  # every image ties with all 4 others


def test_nsd_ceiling_formula():
    nc = nsd_noise_ceiling([0.0, 1.0], 3)
    np.testing.assert_allclose(nc, [0.0, 100 * 1 / (1 + 1 / 3)])
    assert nsd_noise_ceiling([0.5], 1)[0] == pytest.approx(100 * 0.25 / 1.25)


def test_noiseless_responses_score_100_percent_of_the_true_ceiling(rng):
    signal = rng.normal(size=(100, 30))
    measured = signal + rng.uniform(0.3, 3, size=30) * rng.normal(size=(100, 30))
    nc = true_noise_ceiling(signal, measured)
    r = np.array([pearsonr(signal[:, v], measured[:, v])[0] for v in range(30)])
    np.testing.assert_allclose(normalised_accuracy(r, nc), 100.0)
    # a worse model scores less, an anti-correlated one negative; no ceiling, no score
    assert np.all(normalised_accuracy(0.5 * r, nc) < 100)
    assert normalised_accuracy(np.array([-0.2]), np.array([50.0]))[0] == pytest.approx(-8.0)
    assert np.isnan(normalised_accuracy(np.array([0.2]), np.array([0.0]))[0])


def test_voxel_table_on_the_simulator_layout(tmp_path, rng):
    from nrf.data.prepared import PreparedSubject, Split, write_prepared
    from nrf.experiments.voxels import write_voxel_table

    n_vox, ijk = 6, np.arange(18, dtype=np.int32).reshape(6, 3)
    signal = rng.normal(size=(12, n_vox)).astype(np.float32)
    measured = (signal + rng.normal(size=signal.shape)).astype(np.float32)
    ids = np.arange(12, dtype=np.int64) * 3
    rois = {a: np.zeros(n_vox, np.int16) for a in nsd_layout.ROI_ATLASES}
    rois["prf-visualrois"][:3] = 1
    prepared = tmp_path / "p.hdf5"
    write_prepared(prepared, PreparedSubject(
        coords=rng.normal(size=(n_vox, 3)).astype(np.float32), voxel_ijk=ijk, rois=rois, ncsnr=np.ones(n_vox),
        train=Split(measured[:8], ids[:8]), val=None, test=Split(measured[8:], ids[8:]),
        attrs=dict(subject="subj01", protocol="paper", grid_shape=(9, 9, 9), sessions=[1], val_is_test=True),
    ))
    noiseless = tmp_path / "n.hdf5"
    order = np.array([5, 2, 0, 1, 3, 4])  # the noiseless file lists voxels in its own order
    with h5py.File(noiseless, "w") as f:
        f["image_ids"], f["responses"], f["voxel_ijk"] = ids, signal[:, order], ijk[order]
    table = write_voxel_table(prepared, tmp_path / "v.csv", noiseless=noiseless)
    r = np.array([pearsonr(signal[8:, v], measured[8:, v])[0] for v in range(n_vox)])
    np.testing.assert_allclose(table["noise_ceiling"], 100 * r**2, rtol=1e-5)
    assert "region" not in table and list(table["prf-visualrois"]) == [1, 1, 1, 0, 0, 0]
    with h5py.File(noiseless, "a") as f:
        f["regions"] = np.array([7, 7, 7, 8, 8, 9])[order]
    table = write_voxel_table(prepared, tmp_path / "v.csv", noiseless=noiseless)
    assert list(table["region"]) == [7, 7, 7, 8, 8, 9]
    with h5py.File(noiseless, "a") as f:
        del f["voxel_ijk"]
    with pytest.raises(ValueError, match="n.hdf5: lacks \\['voxel_ijk'\\]"):
        write_voxel_table(prepared, tmp_path / "v.csv", noiseless=noiseless)
    nsd = write_voxel_table(prepared, tmp_path / "w.csv")
    np.testing.assert_allclose(nsd["noise_ceiling"], 75.0)  # ncsnr 1, 3 repeats


def test_table1_with_ceiling_retrieval_quoted_rows_and_roi_csv(tmp_path, rng):
    from nrf.reporting.tables import write_table1

    paper = tmp_path / "paper.csv"
    paper_rows = pd.DataFrame({"table": ["table1"] * 4, "method": ["NRF", "NRF", "MindSimulator (Trials=1)", "fWRF"],
                               "metric": ["pearson", "mse", "pearson", "pearson"],
                               "value": [0.358, 0.345, 0.345, 0.343]}
                              ).assign(target_subject="mean", base_subjects=None, train_images="full", note=None)
    write_frame(paper_rows, paper, "paper")
    subjects = ["subj01", "subj02"]
    scores, voxels, ranks = [], [], []
    for s in subjects:
        r = rng.uniform(0, 0.6, 20)
        write_frame(pd.DataFrame({"voxel": range(20), "pearson": r, "mse": 1 - r}), tmp_path / f"s{s}.csv", "scores")
        v = pd.DataFrame({"voxel": range(20), "x": 0, "y": 0, "z": 0, "noise_ceiling": 100 * r**2 / 0.5})
        for atlas in nsd_layout.ROI_ATLASES:
            v[atlas] = 0
        v.loc[:9, "prf-visualrois"] = 1
        write_frame(v, tmp_path / f"v{s}.csv", "voxels")
        write_frame(pd.DataFrame({"image_id": range(10), "rank": [1, 1, 2, 3, 6, 7, 1, 9, 10, 4]}),
                    tmp_path / f"r{s}.csv", "retrieval")
        scores.append(tmp_path / f"s{s}.csv")
        voxels.append(tmp_path / f"v{s}.csv")
        ranks.append(tmp_path / f"r{s}.csv")
    table = write_table1(
        {"NRF": scores}, paper_csv=paper, subjects=subjects, protocol="paper", dataset="simulated",
        test_images="seen_by_all", out_csv=tmp_path / "t.csv", out_md=tmp_path / "t.md",
        out_html=tmp_path / "t.html", voxel_csvs=voxels, retrieval_csvs={"NRF": ranks},
        quoted=("MindSimulator (Trials=1)",), out_roi_csv=tmp_path / "rois.csv",
    ).set_index("method")
    assert table.at["NRF", "nc_mean"] == pytest.approx(50.0, rel=1e-5)  # every voxel at half its ceiling (%.6g)
    assert table.at["NRF", "top1_mean"] == pytest.approx(0.3) and table.at["NRF", "top5_mean"] == pytest.approx(0.6)
    assert table.at["MindSimulator (Trials=1)", "quoted"]
    assert np.isnan(table.at["MindSimulator (Trials=1)", "pearson_mean"])
    md = (tmp_path / "t.md").read_text()
    assert "MindSimulator (Trials=1) (quoted from the paper)" in md and "50.0" in md and "% of noise ceiling" in md
    rois = read_frame(tmp_path / "rois.csv", "table")
    v1 = rois[(rois["roi"] == "V1v") & (rois["subject"] == "subj02")]
    assert len(v1) == 1 and v1["n_voxels"].item() == 10
    assert v1["median_r"].item() == pytest.approx(np.median(read_frame(scores[1], "scores")["pearson"][:10]))
    assert set(rois["atlas"]) == {"prf-visualrois"}  # empty ROIs are left out


def test_embedding_clusters_recover_planted_regions_better_than_chance(rng):
    from nrf.reporting.universal import cluster_embeddings, region_agreement, top_images

    centres = rng.normal(size=(3, 8)) * 4
    regions = [rng.integers(0, 3, size=n) for n in (40, 55)]  # two subjects, different voxel counts
    embeddings = [centres[r] + rng.normal(size=(len(r), 8)) for r in regions]
    labels = cluster_embeddings(embeddings, 3, seed=0)
    assert [len(x) for x in labels] == [40, 55]
    agreement = region_agreement(np.concatenate(labels), np.concatenate(regions), n_permutations=50)
    assert agreement["ari"] > 0.9 > agreement["chance_95"] and agreement["p_value"] < 0.05
    noise = region_agreement(rng.integers(0, 3, 95), np.concatenate(regions), n_permutations=50)
    assert noise["ari"] < 0.2
    # top images: the image that drives a cluster's voxels comes first
    responses = rng.normal(size=(10, 95))
    responses[7, np.concatenate(labels) == 1] += 5
    assert top_images(responses, np.concatenate(labels), 3, 2)[1][0] == 7
