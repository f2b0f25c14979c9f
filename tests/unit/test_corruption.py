"""Issue 20: every file one rule hands another is checked when read.

For each kind of intermediate file, a small valid file is written with the
project's own writer, then copies are damaged three ways (a block of zeros in
the middle, random bytes in the middle, truncation) and the project's own
reader must raise an error naming the damaged copy, never return numbers.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from nrf.checks import CorruptFileError, open_hdf5, write_json
from nrf.data.compact_betas import read_compact_betas, write_compact_betas
from nrf.data.nsd_layout import ROI_ATLASES
from nrf.data.predictions import read_predictions, write_predictions
from nrf.data.prepared import PreparedSubject, Split, load_prepared, write_prepared
from nrf.decoding.image_metrics import METRICS
from nrf.decoding.mindeye2 import read_inputs, write_inputs
from nrf.decoding.offline import RidgeDecoder, read_decoder, write_decoder
from nrf.decoding.reconstructions import (
    Reconstructions,
    read_reconstructions,
    write_reconstructions,
)
from nrf.experiments.ablations import training_summary, write_strategy_rows
from nrf.experiments.adaptation import read_cell, write_cell
from nrf.experiments.probes import write_rows
from nrf.experiments.scoring import score_predictions
from nrf.experiments.voxels import write_voxel_table
from nrf.features.base import Extractor
from nrf.features.cache import extract_to_hdf5, read_features
from nrf.frames import FrameError, read_frame, write_frame
from nrf.models.nrf import NRF, NRFConfig
from nrf.reporting import claims
from nrf.reporting.ablation_tables import _training_summary
from nrf.reporting.adaptation_tables import paper_cells, read_cells
from nrf.reporting.encoders import median_normalised, retrieval_of
from nrf.reporting.figure4 import read_rows
from nrf.reporting.semantic import read_metrics
from nrf.reporting.tables import paper_values, subject_summary
from nrf.retrieval import write_retrieval
from nrf.training.encoders import load_encoder, save_checkpoint
from nrf.volumes.grid import mni_grid, read_volume
from nrf.volumes.query import save_mni_nifti, write_sidecar

N_VOXELS, N_TRAIN, N_TEST = 300, 400, 50
PAPER_NUMBERS = Path(__file__).resolve().parents[2] / "reference" / "nrf_paper_tables.csv"
CORRUPTIONS = ("zeros", "random", "truncated")


def corrupt(path, how: str):
    """A damaged copy of ``path`` beside it, named ``{how}-{name}``: 64 KB (at most an eighth
    of the file) of zeros or random bytes in the middle, or the first two thirds only."""
    raw = path.read_bytes()
    n = len(raw)
    block = min(65536, max(1, n // 8))
    start = n // 2 - block // 2
    if how == "zeros":
        raw = raw[:start] + bytes(block) + raw[start + block:]
    elif how == "random":
        noise = np.random.default_rng(20).integers(0, 256, block, dtype=np.uint8).tobytes()
        raw = raw[:start] + noise + raw[start + block:]
    else:
        raw = raw[: n * 2 // 3]
    copy = path.with_name(f"{how}-{path.name}")
    copy.write_bytes(raw)
    sidecar = path.with_name(path.name + ".json")  # a volume's, intact
    if sidecar.exists():
        copy.with_name(copy.name + ".json").write_bytes(sidecar.read_bytes())
    return copy


class RandomExtractor(Extractor):
    """Features that are random numbers seeded by the image's first pixel."""

    name = "random"
    layers = (1, 2)

    def extract(self, images):
        out = {"tokens_shallow": [], "tokens_deep": [], "embedding": []}
        for image in images:
            rng = np.random.default_rng(int(image[0, 0, 0]))
            out["tokens_shallow"].append(rng.normal(size=(16, 32)))
            out["tokens_deep"].append(rng.normal(size=(16, 32)))
            out["embedding"].append(rng.normal(size=64))
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One valid file of every kind, each written by the project's own writer."""
    d = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    test = Split(rng.normal(size=(N_TEST, N_VOXELS)).astype(np.float32), np.arange(N_TEST) * 2)
    train = Split(rng.normal(size=(N_TRAIN, N_VOXELS)).astype(np.float32), np.arange(N_TRAIN) * 2 + 1)
    out = {"prepared": d / "prepared.hdf5"}
    write_prepared(out["prepared"], PreparedSubject(
        coords=rng.uniform(-50, 50, (N_VOXELS, 3)).astype(np.float32),
        voxel_ijk=np.c_[np.arange(N_VOXELS), np.zeros((N_VOXELS, 2), int)].astype(np.int32),
        rois={a: rng.integers(0, 3, N_VOXELS).astype(np.int16) for a in ROI_ATLASES},
        ncsnr=rng.uniform(0.1, 1, N_VOXELS).astype(np.float32), train=train, val=None, test=test,
        attrs=dict(subject="subj01", protocol="paper", grid_shape=(N_VOXELS, 1, 1), sessions=[1], val_is_test=True)))

    out["predictions"] = d / "predictions.hdf5"
    pred = test.responses + rng.normal(size=test.responses.shape).astype(np.float32)
    pred[:, 0] = 1.0  # a constant prediction: its r is undefined (NaN) by design
    write_predictions(out["predictions"], pred, test.image_ids)

    stimuli = d / "stimuli.hdf5"
    with h5py.File(stimuli, "w") as f:  # NSD's file, not the pipeline's: written plainly
        f["imgBrick"] = np.arange(100, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    out["features"] = d / "features.hdf5"
    extract_to_hdf5(RandomExtractor(), stimuli, np.arange(100), out["features"], batch_size=32)

    out["cell"], out["cell_csv"] = d / "n20_draw0.hdf5", d / "n20_draw0.csv"
    results = {m: {"predictions": rng.normal(size=(N_TEST, N_VOXELS)).astype(np.float32),
                   "r": rng.uniform(-0.2, 0.5, N_VOXELS), "pearson": 0.1 * k, "mse": 1.0 + k, "steps": 3 * k}
               for k, m in enumerate(("NRF scratch", "Linear Regression", "NRF finetune average"))}
    results["NRF finetune average"]["lambda"] = 0.5
    write_cell(results, target="subj01", n_train=20, draw=0, protocol="paper", test_ids=test.image_ids,
               out_hdf5=out["cell"], out_csv=out["cell_csv"])

    out["checkpoint"] = d / "nrf.pt"
    config = NRFConfig(token_dim=32, n_tokens=16, embedding_dim=64, merger_token_dim=8, merger_dim=16,
                       fourier_features=8, depth=3, width=64)
    model = NRF(config, init_seed=0)
    save_checkpoint({"kind": "nrf", "model_config": config.to_dict(), "state_dict": model.state_dict(),
                     "history": [{"step": 10, "val_median_r": 0.25}], "subject": "subj01"}, out["checkpoint"])

    out["volume"] = d / "volume.nii.gz"
    shape, affine = mni_grid(8.0)
    save_mni_nifti(rng.normal(size=(*shape, 2)).astype(np.float32), affine, out["volume"])
    write_sidecar(out["volume"], {"images": [{"file": "000002.png"}, {"file": "000004.png"}]})

    out["decoder"] = d / "decoder.hdf5"
    write_decoder(out["decoder"], RidgeDecoder(coef=rng.normal(size=(N_VOXELS, 3 * 8 * 8 + 16)).astype(np.float32),
                                               intercept=np.zeros(3 * 8 * 8 + 16, np.float32),
                                               alphas=np.ones(3 * 8 * 8 + 16, np.float32), image_size=8,
                                               embedding_dim=16))
    out["reconstructions"] = d / "reconstructions.hdf5"
    write_reconstructions(out["reconstructions"], Reconstructions(
        images=rng.integers(0, 256, (N_TEST, 16, 16, 3), dtype=np.uint8), image_ids=test.image_ids,
        embedding=rng.normal(size=(N_TEST, 16)).astype(np.float32), attrs={"backend": "offline"}))
    out["mindeye2_inputs"] = d / "inputs.hdf5"
    write_inputs(out["mindeye2_inputs"], test.responses[:, None, :], test.image_ids, source="nrf")
    out["compact_betas"] = d / "betas_session01.nsdgeneral.hdf5"
    write_compact_betas(out["compact_betas"], rng.integers(-3000, 3000, (N_TEST, N_VOXELS), dtype=np.int16),
                        np.c_[np.arange(N_VOXELS), np.zeros((N_VOXELS, 2), int)], source_key="betas.nii.gz",
                        grid_shape=(N_VOXELS, 1, 1))

    out["scores"] = d / "scores.csv"
    score_predictions(out["predictions"], out["prepared"], out["scores"])
    out["retrieval"] = d / "retrieval.csv"
    write_retrieval(out["predictions"], out["prepared"], out["retrieval"])
    out["voxels"] = d / "voxels.csv"
    write_voxel_table(out["prepared"], out["voxels"])
    out["probes"] = d / "probes.csv"
    write_rows(pd.DataFrame([{"panel": "a", "subject": "subj01", "condition": "coordinates intact", "n_train": n,
                              "draw": k, "pearson": 0.1 * k, "mse": 1.0, "steps": 5, "n_voxels": N_VOXELS}
                             for n in (20, 200) for k in range(3)]), out["probes"])
    out["strategies"] = d / "strategies.csv"
    write_strategy_rows(pd.DataFrame([{"method": "finetune both", "subject": "subj07", "n_train": 20, "draw": k,
                                       "pearson": 0.3 + 0.01 * k, "mse": 0.5, "steps": 4} for k in range(4)]),
                        out["strategies"])
    out["metrics"] = d / "metrics.csv"
    write_frame(pd.DataFrame([{"metric": m, "value": np.nan if m == "alex2" else 0.5, "note": "n/a: no weights"
                               if m == "alex2" else "ok", "backend": "offline", "source": "nrf", "subject": "subj01"}
                              for m in METRICS]), out["metrics"], "decoding_metrics")
    out["cell_decoding"] = d / "cell_decoding.csv"
    write_frame(pd.DataFrame([{"target": "subj01", "n_train": 20, "draw": 0, "method": "NRF scratch", "metric": m,
                               "value": 0.5, "note": "", "backend": "offline"} for m in METRICS]),
                out["cell_decoding"], "adaptation_decoding")
    # how an ablation training ended (Tables 5-6 read its steps and whether the cap cut it off)
    out["training"] = d / "training.json"
    write_json(out["training"], training_summary([{"step": s, "val_median_r": 0.1 + s / 1e4}
                                                  for s in range(60, 660, 60)], max_steps=600))
    # a paper table (every table and figure CSV is written so); n/a cells are empty
    out["table"] = d / "table1.csv"
    write_frame(pd.DataFrame([{"method": m, "train_images": "full", "pearson_mean": r, "pearson_sem": s}
                              for m, r, s in (("NRF", 0.31, 0.01), ("Linear Regression", 0.27, 0.012),
                                              ("MindSimulator (Trials=1)", np.nan, np.nan))]), out["table"], "table")
    # the paper's numbers: the run's copy of the shipped reference (rule paper_tables)
    out["paper"] = d / "nrf_paper_tables.csv"
    shutil.copyfile(PAPER_NUMBERS, out["paper"])
    return out


#: kind -> (file key, the project's reader of it)
READERS = {
    "prepared": ("prepared", load_prepared),
    "features": ("features", lambda p: read_features(p, np.arange(100))),
    "predictions": ("predictions", read_predictions),
    "adaptation cell HDF5": ("cell", read_cell),
    "decoder": ("decoder", read_decoder),
    "reconstructions": ("reconstructions", read_reconstructions),
    "MindEye2 inputs": ("mindeye2_inputs", read_inputs),
    "compact betas": ("compact_betas", read_compact_betas),
    "checkpoint": ("checkpoint", load_encoder),
    "NIfTI volume": ("volume", lambda p: np.asarray(read_volume(p)[0].dataobj)),
    "scores CSV": ("scores", subject_summary),
    "retrieval CSV": ("retrieval", retrieval_of),
    "adaptation cell CSV": ("cell_csv", lambda p: read_cells([p])),
    "probe CSV": ("probes", lambda p: read_rows([p])),
    "finetune strategy CSV": ("strategies", lambda p: read_frame(p, "finetune_strategies")),
    "decoding metrics CSV": ("metrics", read_metrics),
    "adaptation decoding CSV": ("cell_decoding", lambda p: read_frame(p, "adaptation_decoding")),
    "training summary JSON": ("training", _training_summary),
    "paper table CSV (claims page)": ("table", lambda p: claims._read(p.parent, p.name)),
    "paper table CSV (HTML page)": ("table", lambda p: read_frame(p, "table")),
    "paper's numbers (Tables 1, 4-6)": ("paper", lambda p: paper_values(p, "table1")),
    "paper's numbers (Tables 2, 3, 7-9)": ("paper", lambda p: paper_cells(p, "table2")),
    "paper's numbers (claims page)": ("paper", claims.Paper),
}


@pytest.mark.parametrize("kind", READERS)
def test_valid_files_read(files, kind):
    key, reader = READERS[kind]
    assert reader(files[key]) is not None


def test_voxel_table_reads_with_its_scores(files):
    assert np.isfinite(median_normalised(files["scores"], files["voxels"]))


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize("kind", READERS)
def test_damaged_file_stops_its_reader_naming_it(files, kind, how):
    key, reader = READERS[kind]
    damaged = corrupt(files[key], how)
    with pytest.raises(CorruptFileError) as error:
        reader(damaged)
    assert str(damaged) in str(error.value) and "corrupt" in str(error.value)
    assert f"snakemake --cores 1 --force {damaged}" in str(error.value)


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_damaged_voxel_table_stops_median_normalised(files, how):
    damaged = corrupt(files["voxels"], how)
    with pytest.raises(CorruptFileError, match=str(damaged)):
        median_normalised(files["scores"], damaged)


def test_every_hdf5_dataset_the_pipeline_writes_has_a_checksum(files):
    def check(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape and obj.size:
            assert obj.fletcher32, f"{path}: {name} has no Fletcher-32 checksum"

    for key in ("prepared", "predictions", "features", "cell", "decoder", "reconstructions", "mindeye2_inputs",
                "compact_betas"):
        path = files[key]
        with h5py.File(path, "r") as f:
            assert f.id.get_create_plist().get_version()[0] >= 2  # a superblock that carries a checksum
            f.visititems(check)


def test_nan_in_half_of_a_scores_csv_stops_table1(files, tmp_path):
    """The issue's case: NaN written over half the (nullable) pearson column."""
    lines = files["scores"].read_text().splitlines(keepends=True)
    for i in range(1, len(lines) // 2):
        voxel, _, mse = lines[i].rstrip("\n").split(",")
        lines[i] = f"{voxel},nan,{mse}\n"
    damaged = tmp_path / "scores.csv"
    damaged.write_text("".join(lines))
    with pytest.raises(CorruptFileError, match="scores.csv: this scores CSV is corrupt"):
        subject_summary(damaged)


def test_a_changed_digit_stops_the_reader(files, tmp_path):
    lines = files["retrieval"].read_text().splitlines(keepends=True)
    image_id, rank = lines[1].strip().split(",")
    lines[1] = f"{image_id},{int(rank) + 1}\n"  # still a valid table, with another number
    damaged = tmp_path / "retrieval.csv"
    damaged.write_text("".join(lines))
    with pytest.raises(CorruptFileError, match="retrieval.csv.*changed after it was written"):
        retrieval_of(damaged)


def test_an_edited_paper_number_stops_the_tables(files, tmp_path):
    """The paper column of a table is only as good as the copy it is read from: one changed value in
    the run's copy of the paper's numbers (Table 1's NRF r, 0.358 -> 0.958) stops every reader."""
    text = files["paper"].read_bytes()
    row = b"table1,\"subj01,subj02,subj05,subj07 (mean)\",,full,NRF,pearson,0.358,"
    assert text.count(row) == 1
    damaged = tmp_path / "nrf_paper_tables.csv"
    damaged.write_bytes(text.replace(row, row.replace(b"0.358", b"0.958")))
    for reader in (lambda p: paper_values(p, "table1"), lambda p: paper_cells(p, "table2"), claims.Paper):
        with pytest.raises(CorruptFileError, match="nrf_paper_tables.csv.*changed after it was written"):
            reader(damaged)
    assert paper_values(files["paper"], "table1").at["NRF", "pearson"] == pytest.approx(0.358)


def test_garbled_training_summary_is_named(tmp_path):
    path = tmp_path / "w64.json"
    path.write_text('{"steps": 4')
    with pytest.raises(CorruptFileError, match="w64.json: this training summary is corrupt"):
        _training_summary(path)


def test_an_edited_training_summary_stops_the_table(files, tmp_path):
    """Valid JSON with another number (steps 600 -> 300) still fails its checksum."""
    edited = tmp_path / "training.json"
    edited.write_text(files["training"].read_text().replace('"steps": 600', '"steps": 300'))
    assert edited.read_text() != files["training"].read_text()
    with pytest.raises(CorruptFileError, match="training.json.*changed after it was written"):
        _training_summary(edited)


def test_garbled_or_empty_csv_names_the_file(tmp_path):
    garbled = tmp_path / "table1.csv"
    garbled.write_text('method,pearson\nNRF,0.3\n"Linear,0.2\nx,1,2,3\n')
    with pytest.raises(CorruptFileError, match="table1.csv.*checksum line"):
        read_frame(garbled, "table")
    body = garbled.read_bytes()  # garbled before its checksum was taken: the parse fails instead
    garbled.write_bytes(body + b"# sha256=" + hashlib.sha256(body).hexdigest().encode() + b"\n")
    with pytest.raises(CorruptFileError, match="table1.csv.*ParserError"):
        read_frame(garbled, "table")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CorruptFileError, match="empty.csv"):
        read_frame(empty, "table")
    with pytest.raises(CorruptFileError, match="empty.csv"):
        read_frame(empty, "scores")


def test_a_checksummed_file_that_breaks_its_kind_is_named(tmp_path):
    """A file whose checksum holds but whose values break the kind (a writer of another
    version): a missing column, a NaN where none may be, a word for a number."""
    def checksummed(body: bytes):
        path = tmp_path / "scores.csv"
        path.write_bytes(body + b"# sha256=" + hashlib.sha256(body).hexdigest().encode() + b"\n")
        return path

    with pytest.raises(FrameError, match=r"scores.csv: this scores CSV lacks column\(s\) \['mse'\]"):
        read_frame(checksummed(b"voxel,pearson\n0,0.1\n"), "scores")
    with pytest.raises(FrameError, match="column 'mse' has 1 empty or NaN"):
        read_frame(checksummed(b"voxel,pearson,mse\n0,0.1,1\n1,,nan\n"), "scores")
    with pytest.raises(FrameError, match="column 'mse' must hold numbers"):
        read_frame(checksummed(b"voxel,pearson,mse\n0,0.1,1\n1,0.2,one\n"), "scores")
    with pytest.raises(FrameError, match="column 'voxel' must hold integers"):
        read_frame(checksummed(b"voxel,pearson,mse\n0,0.1,1\n1.5,0.2,1\n"), "scores")
    with pytest.raises(FrameError, match="column 'mse' has 1 infinite"):
        read_frame(checksummed(b"voxel,pearson,mse\n0,0.1,1\n1,0.2,inf\n"), "scores")


def test_csv_content_is_what_pandas_wrote_before(files):
    """The checksum is one line appended: the rows above it are ``DataFrame.to_csv``'s."""
    table = read_frame(files["scores"], "scores")
    text = files["scores"].read_text()
    body, last = text[: text.rindex("# sha256=")], text[text.rindex("# sha256="):]
    assert body == table.to_csv(index=False, float_format="%.9g")
    assert last == f"# sha256={hashlib.sha256(body.encode()).hexdigest()}\n"
    assert pd.read_csv(files["scores"], comment="#").equals(table)
    assert np.isnan(table["pearson"].iloc[0])  # the constant prediction: NaN by design, allowed


def test_an_hdf5_error_on_another_file_is_not_blamed_on_this_one(files, tmp_path):
    other = tmp_path / "other.hdf5"
    with pytest.raises((OSError, ValueError)) as error:
        with open_hdf5(files["predictions"], what="predictions file") as f, h5py.File(other, "w") as g:
            assert f["image_ids"].shape == (N_TEST,)
            g["x"] = 1
            g["x"] = 2  # h5py: the name exists
    assert not isinstance(error.value, CorruptFileError)
