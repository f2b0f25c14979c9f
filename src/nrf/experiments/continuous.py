"""The continuous-space claim, scored against the truth between the voxels (issue 23).

NRF is a function of a continuous MNI coordinate. Two questions, on the
simulator, whose noiseless response is known at every point
(``nrf.data.sim_model.SimulatedBrain.responses``):

(a) one subject: is NRF queried between that subject's voxels closer to the
    truth there than trilinear interpolation of voxel-locked predictions
    (its own at the voxels, and the linear baseline's)?
(b) several subjects: subjects' func grids sit at different sub-voxel
    offsets in MNI (``sim_model.subject_geometry``), so together they sample
    the field more densely than any one grid. Does one NRF trained on all
    subjects' (coordinate, response) pairs jointly recover structure finer
    than one subject's voxels — i.e. beat what that subject's own grid can
    hold, the noiseless truth at its voxels interpolated trilinearly?

Both are asked as a function of how fine the field is: the smooth 12 mm
field alone, then with the simulator's shared fine-scale part
(``simulation.fine_scale_mm``: 6, 3, 2 mm against 4.0-4.6 mm voxels).

Design. One simulated dataset is needed per fine length scale, so the
experiment builds its own small ones and runs the pipeline's own functions on
each, in a scratch folder: ``simulate_nsd_tree`` (the simulate rule),
``prepare_subject`` (the prepare rule), ``extract_seen_images`` (the features
rule; the images do not depend on the field, so once, checked by the stimuli'
digest), the encoder registry's ``fit`` and ``nrf.training.loop.predict``
(the train/predict rules). The pipeline's own ``simulated`` dataset has one
field per run; feeding this sweep from its rules would need a field wildcard
through the data rules. The pooled NRF trains with the loop every encoder
shares (``fit_steps``, ``nrf_loss``, ``sample_voxels``, ``evaluate``); only the
batch differs: each step draws images from all subjects' training images and,
for each image, voxels of the subject who saw it (subjects saw different
images, so no single responses matrix holds them all).

Scoring: held-out points on a ``spacing_mm`` MNI lattice inside the target's
nsdgeneral, within one voxel of its voxels (``resolution.heldout_lattice``)
and at least ``min_distance_mm`` from every voxel centre; Pearson r across the
test images per point against the noiseless truth of the target subject
(its registration error and individual field included), mean ± SEM over points.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from nrf.atomic import atomic_output
from nrf.checks import file_sha256
from nrf.data import nsd_layout
from nrf.data.prepare import prepare_subject
from nrf.data.sim_model import SimulatedBrain, SimulationParams
from nrf.data.simulate import simulate_nsd_tree
from nrf.experiments.methods import (
    CONTINUOUS_METHODS,
    LINEAR_TRILINEAR,
    NRF_ONE,
    NRF_POOLED,
    NRF_POOLED_FT,
    NRF_POOLED_TRILINEAR,
    NRF_TRILINEAR,
    TRUTH_TRILINEAR,
)
from nrf.experiments.resolution import heldout_lattice, interpolate_voxels, score
from nrf.features.cache import read_features
from nrf.features.pipeline import extract_seen_images
from nrf.frames import write_frame
from nrf.metrics import pearson_per_voxel
from nrf.models.nrf import NRF, NRFConfig, code_wavelengths_mm
from nrf.training.loop import (
    EncodingSplit,
    TrainConfig,
    adamw,
    evaluate,
    fit_steps,
    nrf_loss,
    predict,
    sample_voxels,
)
from nrf.training.registry import get_kind
from nrf.volumes.grid import func_grid_affine

logger = logging.getLogger(__name__)

KEYS = ("tokens_shallow", "tokens_deep", "embedding")

#: the methods in the table's and the figure's order (their labels are nrf.experiments.methods',
#: so the figure's styles need no torch)
METHODS = CONTINUOUS_METHODS
#: (queried, the same model's voxel predictions read trilinearly): the pairs that ask whether
#: a model holds structure between the voxels beyond what the voxels themselves hold
PAIRS = ((NRF_ONE, NRF_TRILINEAR), (NRF_POOLED, NRF_POOLED_TRILINEAR))
#: tidy CSV columns
COLUMNS = ("seed", "subject", "field", "fine_scale_mm", "fine_amplitude", "method", "r_mean", "r_sem", "r_median",
           "n_points", "r_at_voxels", "gap_vs_trilinear", "gap_sem", "voxel_mm", "steps", "seconds",
           "code_wavelength_min_mm", "code_wavelength_median_mm")


#: the experiment's small datasets (per subject: 300 training and 50 shared test images, seen twice),
#: so the whole sweep runs in minutes on 2 cores; the rule passes config's simulation section
#: updated with these
SMALL_SIMULATION = {"n_train_images": 300, "n_test_images": 50, "repeats": 2, "trials_per_session": 350}
#: the sweep's fields: the smooth field alone, then fine parts of 6, 3 and 2 mm
FINE_SCALES = (None, 6.0, 3.0, 2.0)
#: steps: each NRF early-stops on its validation split (patience 5, every 60 steps) within these caps
STEPS = {"single": 600, "pooled": 1200, "finetune": 300}


def field_label(fine_scale_mm) -> str:
    """How a field is named in tables: 'smooth' or 'fine 3 mm'."""
    return "smooth" if fine_scale_mm is None else f"fine {fine_scale_mm:g} mm"


# -- data: the pipeline's functions on one small simulated dataset ---------------------
@dataclasses.dataclass
class SubjectData:
    subject: str
    train: EncodingSplit
    val: EncodingSplit
    test: EncodingSplit
    coords: np.ndarray  # (n_vox, 3) float32 as the prepared file stores them
    voxel_ijk: np.ndarray
    test_ids: np.ndarray



def build_dataset(workdir: Path, params: SimulationParams, *, features_options: dict, extractor: str,
                  val_fraction: float, features_path: Path | None = None, features_digest: str | None = None,
                  log=None) -> tuple[dict[str, SubjectData], Path, str]:
    """Simulate a tree, prepare every subject (clean protocol) and extract features (unless
    ``features_path`` holds those of the same stimuli, checked by ``features_digest``).
    Returns ({subject: SubjectData}, features path, stimuli digest)."""
    log = log or logger
    root = workdir / "tree"
    simulate_nsd_tree(root, params)
    stimuli = root / nsd_layout.STIMULI
    digest = file_sha256(stimuli)
    if features_path is None or digest != features_digest:
        features_path = workdir / "features.hdf5"
        extract_seen_images(extractor, features_options, stimuli_path=stimuli,
                            expdesign_path=root / nsd_layout.EXPDESIGN,
                            sessions={s: params.n_sessions for s in params.subjects},
                            trials_per_session=params.trials_per_session, out_path=features_path, device="cpu",
                            log=log)
    data = {}
    for s in params.subjects:
        path = workdir / f"{s}.hdf5"
        prep = prepare_subject(root, s, sessions=list(range(1, params.n_sessions + 1)), protocol="clean",
                               val_fraction=val_fraction, seed=params.seed, out_path=path, log=log.debug)
        splits = {}
        for name in ("train", "val", "test"):
            sp = prep.split(name)
            splits[name] = EncodingSplit(read_features(features_path, sp.image_ids, KEYS), sp.responses)
        data[s] = SubjectData(s, splits["train"], splits["val"], splits["test"], prep.coords, prep.voxel_ijk,
                              prep.test.image_ids)
    return data, features_path, digest


# -- the pooled NRF ----------------------------------------------------------------
def train_nrf_pooled(parts: list[tuple[EncodingSplit, EncodingSplit | None, np.ndarray]], config: TrainConfig, *,
                     model_config: NRFConfig, log: logging.Logger | None = None) -> tuple[NRF, list[dict]]:
    """One NRF trained on several subjects' (coordinate, response) pairs at once.

    parts : one (train, val, coords_mm) per subject; subjects may have different
            images and voxels. Each step draws ``batch_images`` images from all
            subjects' training images together and, per image, ``batch_voxels``
            of its own subject's voxels (capped by the smallest subject); the loss
            is the pipeline's (nrf_loss). Validation: the mean over subjects of
            the median voxel r on their val splits (early stopping as ``config`` says).
    """
    log = log or logger
    if config.voxel_sampling != "per_image":
        raise ValueError("the pooled NRF draws voxels per image (each image has its own subject's voxels)")
    device = torch.device(config.device)
    model = NRF(model_config, init_seed=config.seed).to(device).train()
    opt = adamw(model.parameters(), config, device)
    gen = torch.Generator().manual_seed(config.seed)
    feats = [{k: torch.as_tensor(np.asarray(tr.features[k])) for k in KEYS} for tr, _, _ in parts]
    resp = [torch.as_tensor(np.asarray(tr.responses, np.float32)) for tr, _, _ in parts]
    coords = [torch.as_tensor(np.asarray(c, np.float32)).to(device) for _, _, c in parts]
    owner = np.concatenate([np.full(tr.n_images, k) for k, (tr, _, _) in enumerate(parts)])
    local = np.concatenate([np.arange(tr.n_images) for tr, _, _ in parts])
    owner_t, local_t = torch.as_tensor(owner), torch.as_tensor(local)
    n_img_step = min(config.batch_images, len(owner))
    n_vox_step = min(config.batch_voxels, *(len(c) for c in coords))
    log.info("pooled NRF: %d subjects, %d training images, %s voxels, batch %d x %d, %d steps max",
             len(parts), len(owner), [len(c) for c in coords], n_img_step, n_vox_step, config.max_steps)

    def step_loss(step: int) -> torch.Tensor:
        pick = torch.randperm(len(owner), generator=gen)[:n_img_step]
        preds, targets = [], []
        for k in range(len(parts)):
            rows = local_t[pick[owner_t[pick] == k]]
            if len(rows) == 0:
                continue
            cols = sample_voxels(len(coords[k]), n_vox_step, len(rows), "per_image", gen)
            targets.append(torch.gather(resp[k][rows], 1, cols))
            batch = {key: v[rows].to(device).float() for key, v in feats[k].items()}
            preds.append(model(batch, coords[k][cols.to(device)]))
        return nrf_loss(torch.cat(preds).float(), torch.cat(targets).to(device), config.alpha)

    def validate():
        scores = [evaluate(model, va, c, config) for _, va, c in parts if va is not None]
        if not scores:
            return None
        return {"median_r": float(np.mean([s["median_r"] for s in scores]))}

    history = fit_steps(model, step_loss, opt, validate, config,
                        steps_per_epoch=math.ceil(len(owner) / n_img_step), name="pooled NRF", log=log,
                        source="the pooled subjects", keep_best=None if config.patience is None else "val_median_r")
    model.eval()
    return model, history


# -- held-out points and scoring -----------------------------------------------------
def between_voxels(points, voxel_mni, min_distance_mm: float) -> np.ndarray:
    """The points at least ``min_distance_mm`` from every voxel centre."""
    dist = cKDTree(np.asarray(voxel_mni, np.float64)).query(points)[0]
    return np.asarray(points)[dist >= min_distance_mm]


def score_methods(truth_points, truth_voxels, *, queried: dict, voxel_locked: dict, voxel_ijk, grid_affine,
                  points) -> list[dict]:
    """One row per method: r with the truth at the held-out points (mean, sem, median, n)
    and at the training voxels; for a queried method of :data:`PAIRS` whose partner is
    given, the paired gap (queried − the same model's voxel predictions read trilinearly)
    over points, mean and SEM.

    queried      : {method: (pred at points (n_img, m), pred at voxels (n_img, n_vox))}
    voxel_locked : {method: pred at voxels (n_img, n_vox)}, read at the points trilinearly
    """
    rows, per_point = [], {}
    for method, (at_points, at_voxels) in queried.items():
        per_point[method] = pearson_per_voxel(np.asarray(at_points, np.float32), np.asarray(truth_points, np.float32))
        rows.append({"method": method, **score(at_points, truth_points),
                     "r_at_voxels": score(at_voxels, truth_voxels)["r_mean"]})
    for method, at_voxels in voxel_locked.items():
        pred = interpolate_voxels(at_voxels, voxel_ijk, grid_affine, points, "trilinear")
        per_point[method] = pearson_per_voxel(pred, np.asarray(truth_points, np.float32))
        rows.append({"method": method, **score(pred, truth_points),
                     "r_at_voxels": score(at_voxels, truth_voxels)["r_mean"]})
    for row in rows:
        partner = dict(PAIRS).get(row["method"])
        gap = np.nan, np.nan
        if partner in per_point:
            d = per_point[row["method"]] - per_point[partner]
            d = d[np.isfinite(d)]
            gap = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
        row["gap_vs_trilinear"], row["gap_sem"] = gap
    return rows


# -- the experiment ------------------------------------------------------------------
def _steps(history) -> int:
    return int(history[-1]["step"]) if history else 0


def run_field(workdir: Path, params: SimulationParams, *, target: str, nrf_options: dict, train_options: dict,
              linear_options: dict, pooled_options: dict, finetune_options: dict, features_options: dict,
              extractor: str, val_fraction: float, spacing_mm: float, max_points: int, min_distance_mm: float,
              methods=METHODS, features=None, log=None) -> tuple[list[dict], tuple]:
    """Every method on one simulated field; rows without the field's columns, and the
    (features path, digest) to reuse for the next field."""
    log = log or logger
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fpath, fdigest = features or (None, None)
    data, fpath, fdigest = build_dataset(workdir, params, features_options=features_options, extractor=extractor,
                                         val_fraction=val_fraction, features_path=fpath, features_digest=fdigest,
                                         log=log)
    log.info("%s: data in %.1f s", field_label(params.fine_scale_mm), time.perf_counter() - t0)
    brain = SimulatedBrain(params)
    tgt = data[target]
    geo = brain.geometry(target)
    voxel_mni = geo["mni"][tuple(tgt.voxel_ijk.T)]  # exact float64 voxel centres
    grid_affine = func_grid_affine(tgt.voxel_ijk, voxel_mni)
    points = heldout_lattice(voxel_mni, lambda p: brain.anatomy(p, target)["nsdgeneral"], spacing_mm=spacing_mm,
                             max_points=10 * max_points, seed=params.seed)
    points = between_voxels(points, voxel_mni, min_distance_mm)
    if len(points) > max_points:
        points = points[np.sort(np.random.default_rng(params.seed).choice(len(points), max_points, replace=False))]
    truth_points = brain.responses(tgt.test_ids, points, target)
    truth_voxels = brain.responses(tgt.test_ids, voxel_mni, target)
    models, timings, steps = {}, {}, {}
    nrf_kind, linear_kind = get_kind("nrf"), get_kind("linear")

    def fit(name, fn):
        t = time.perf_counter()
        models[name], hist = fn()
        timings[name], steps[name] = time.perf_counter() - t, _steps(hist)

    if {NRF_ONE, NRF_TRILINEAR} & set(methods):
        fit("one", lambda: nrf_kind.fit(tgt.train, tgt.val, tgt.coords, TrainConfig(**train_options, seed=params.seed),
                                        model_options=nrf_options, log=log, source=f"{target} (one subject)"))
    if LINEAR_TRILINEAR in methods:
        fit("linear", lambda: linear_kind.fit(tgt.train, tgt.val, tgt.coords,
                                              TrainConfig(**linear_options, seed=params.seed), model_options={},
                                              log=log, source=f"{target} (linear)"))
    if {NRF_POOLED, NRF_POOLED_TRILINEAR, NRF_POOLED_FT} & set(methods):
        shallow = tgt.train.features["tokens_shallow"]
        model_config = NRFConfig(token_dim=int(shallow.shape[2]), n_tokens=int(shallow.shape[1]),
                                 embedding_dim=int(tgt.train.features["embedding"].shape[1]), **nrf_options)
        parts = [(d.train, d.val, d.coords) for d in data.values()]
        fit("pooled", lambda: train_nrf_pooled(parts, TrainConfig(**pooled_options, seed=params.seed),
                                               model_config=model_config, log=log))
    if NRF_POOLED_FT in methods:
        fit("tuned", lambda: nrf_kind.fit(tgt.train, tgt.val, tgt.coords,
                                          TrainConfig(**finetune_options, seed=params.seed), model_options={},
                                          model=copy.deepcopy(models["pooled"]), log=log,
                                          source=f"{target} (pooled, finetuned)"))

    feats = tgt.test.features
    model_of = {NRF_ONE: "one", NRF_TRILINEAR: "one", LINEAR_TRILINEAR: "linear", NRF_POOLED: "pooled",
                NRF_POOLED_TRILINEAR: "pooled", NRF_POOLED_FT: "tuned"}
    queried, voxel_locked = {}, {}
    for method in methods:
        if method == TRUTH_TRILINEAR:
            voxel_locked[method] = truth_voxels
        elif method in (NRF_ONE, NRF_POOLED, NRF_POOLED_FT):
            model = models[model_of[method]]
            queried[method] = (predict(model, feats, points), predict(model, feats, voxel_mni))
        else:
            voxel_locked[method] = predict(models[model_of[method]], feats, None if method == LINEAR_TRILINEAR
                                           else tgt.coords)
    rows = score_methods(truth_points, truth_voxels, queried=queried, voxel_locked=voxel_locked,
                         voxel_ijk=tgt.voxel_ijk, grid_affine=grid_affine, points=points)
    # the NRFs' coordinate code: what length scales it can hold (the claims page reads it)
    code = {f.name: f.default for f in dataclasses.fields(NRFConfig) if f.default is not dataclasses.MISSING}
    code.update(nrf_options)
    waves = code_wavelengths_mm(code["fourier_features"], code["fourier_scale"], code["fourier_seed"],
                                code["coord_box"])
    for row in rows:
        name = model_of.get(row["method"])
        row.update(voxel_mm=float(geo["voxel_size"]), steps=steps.get(name, 0), seconds=timings.get(name, 0.0),
                   code_wavelength_min_mm=float(waves.min()), code_wavelength_median_mm=float(np.median(waves)))
    rows.sort(key=lambda r: METHODS.index(r["method"]))
    log.info("%s: %d held-out points, done in %.1f s: %s", field_label(params.fine_scale_mm), len(points),
             time.perf_counter() - t0, {r["method"]: round(r["r_mean"], 3) for r in rows})
    return rows, (fpath, fdigest)


def run_continuous(*, simulation: dict, subjects, target: str, seeds, fine_scales, fine_amplitude: float,
                   nrf_options: dict, train_options: dict, linear_options: dict, pooled_options: dict | None = None,
                   finetune_options: dict | None = None, features_options: dict, extractor: str = "filterbank",
                   val_fraction: float = 0.1, spacing_mm: float = 1.0, max_points: int = 2000,
                   min_distance_mm: float = 1.0, methods=METHODS, workdir,
                   log: logging.Logger | None = None) -> pd.DataFrame:
    """The whole sweep: for each seed and each fine length scale (None = the smooth field
    alone), simulate, prepare, train every method and score it between ``target``'s voxels.

    simulation      : SimulationParams fields (e.g. config's simulation section); subjects,
                      seed and the fine-scale keys are set here
    train_options   : TrainConfig fields of the single-subject NRF (early stopping on the
                      clean validation split); pooled_options / finetune_options those of the
                      pooled NRF and of its finetuning on the target (default: train_options)
    methods         : which of :data:`METHODS` to score (only the models they need are trained)
    Returns the tidy table (:data:`COLUMNS`).
    """
    log = log or logger
    workdir = Path(workdir)
    pooled_options = pooled_options or train_options
    finetune_options = finetune_options or train_options
    subjects = sorted(subjects)
    if target not in subjects:
        raise ValueError(f"target {target!r} is not among the subjects {subjects}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(METHODS)}")
    methods = [m for m in METHODS if m in methods]
    rows = []
    for seed in seeds:
        features = None
        for fine in fine_scales:
            fine = None if fine is None else float(fine)
            params = SimulationParams.from_keywords(**dict(simulation, subjects=subjects, seed=int(seed),
                                                           fine_scale_mm=fine, fine_amplitude=fine_amplitude))
            label = field_label(fine)
            found, features = run_field(
                workdir / f"seed{seed}" / label.replace(" ", "_"), params, target=target, nrf_options=nrf_options,
                train_options=train_options, linear_options=linear_options, pooled_options=pooled_options,
                finetune_options=finetune_options, features_options=features_options, extractor=extractor,
                val_fraction=val_fraction, spacing_mm=spacing_mm, max_points=max_points,
                min_distance_mm=min_distance_mm, methods=methods, features=features, log=log)
            for row in found:
                rows.append({"seed": int(seed), "subject": target, "field": label,
                             "fine_scale_mm": np.nan if fine is None else fine,
                             "fine_amplitude": 0.0 if fine is None else float(fine_amplitude), **row})
    return pd.DataFrame(rows, columns=list(COLUMNS))


# -- reporting -------------------------------------------------------------------------
def field_order(table: pd.DataFrame) -> list[str]:
    """Fields from the smooth one to the finest."""
    scales = table.drop_duplicates("field").set_index("field")["fine_scale_mm"]
    return sorted(scales.index, key=lambda f: -np.inf if np.isnan(scales[f]) else -scales[f])


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per (field, method): mean r over seeds, its SEM over seeds (over points with one
    seed), and the mean r at the training voxels."""
    out = []
    for (field, method), part in table.groupby(["field", "method"], sort=False):
        n = len(part)
        sem = part["r_mean"].std(ddof=1) / np.sqrt(n) if n > 1 else float(part["r_sem"].iloc[0])
        out.append({"field": field, "fine_scale_mm": part["fine_scale_mm"].iloc[0], "method": method,
                    "r_mean": part["r_mean"].mean(), "r_sem": sem, "sem_over": "seeds" if n > 1 else "points",
                    "n_seeds": n, "r_at_voxels": part["r_at_voxels"].mean(), "n_points": int(part["n_points"].mean())})
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    """The sweep as a Markdown table: methods down, fields across, mean ± SEM."""
    summ = summarise(table)
    fields = field_order(table)
    methods = [m for m in METHODS if m in set(summ["method"])]
    cell = {(r.field, r.method): f"{r.r_mean:.3f} ± {r.r_sem:.3f}" for r in summ.itertuples()}
    header = "| method | " + " | ".join(fields) + " |"
    lines = [header, "|" + "---|" * (len(fields) + 1)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(cell.get((f, m), "n/a") for f in fields) + " |")
    seeds = sorted(table["seed"].unique())
    over = f"{len(seeds)} seeds" if len(seeds) > 1 else "held-out points"
    voxel_mm = table.groupby("seed")["voxel_mm"].first()
    subject = table["subject"].iloc[0]
    n_points = int(table["n_points"].median())
    amp = table.loc[table["fine_amplitude"] > 0, "fine_amplitude"]
    lines_txt = "\n".join(lines)
    gap = _pooled_gap(summ, fields, table)
    return (
        f"# Continuous space: predictions between the voxels ({subject})\n\n{lines_txt}\n\n"
        f"Pearson r across the test images with the simulator's noiseless response of {subject}, at about "
        f"{n_points} held-out points of a 1 mm MNI lattice between {subject}'s voxels (at least a fixed distance "
        f"from every voxel centre; voxels {', '.join(f'{v:.2f}' for v in voxel_mm)} mm); mean ± SEM over {over} "
        f"(seed {', '.join(map(str, seeds))}). Columns: the smooth 12 mm field alone, then with a shared "
        f"fine-scale part of the given length scale"
        + (f" at {amp.iloc[0]:g}x the smooth part's RMS" if len(amp) else "")
        + ". 'queried': an NRF evaluated at the point; 'trilinear': predictions at the subject's voxels "
        "interpolated on its func grid. 'pooled': one NRF trained on every subject's (coordinate, response) "
        "pairs at once (their grids sit at different sub-voxel offsets); 'finetuned': that NRF finetuned on the "
        "subject. 'Truth trilinear' interpolates the noiseless truth at the subject's voxels: the most any "
        "method locked to this subject's grid can reach, so a method above it has recovered structure "
        "finer than this subject's voxels. The paired gap 'queried − its own trilinear' (the same model, read "
        "at the point or interpolated from its predictions at the voxels; mean ± SEM over points per seed, "
        "over seeds when several) asks whether a model holds anything between the voxels beyond its voxel "
        "predictions." + _code_sentence(table) + "\n\n" + gap + "\n"
    )


def _code_sentence(table: pd.DataFrame) -> str:
    """The NRFs' coordinate code against the finest field: a model holds little structure finer than
    its code's shortest wavelength ("" for a table without the wavelength columns)."""
    if "code_wavelength_min_mm" not in table.columns or not table["code_wavelength_min_mm"].notna().any():
        return ""
    shortest = table["code_wavelength_min_mm"].min()
    return (f" Every NRF here codes its coordinate with sinusoids of wavelength {shortest:.1f} mm and longer"
            f" (median {table['code_wavelength_median_mm'].median():.0f} mm; nrf.fourier_scale sets "
            "them): structure much finer than that is beyond what the code can represent, however many seeds.")


def gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Per (field, pair of :data:`PAIRS`): the gap queried − trilinear of the same model,
    mean and SEM over seeds (over points with one seed), and the best queried NRF's gap
    to the truth-trilinear ceiling."""
    out = []
    for field, part in table.groupby("field", sort=False):
        for queried, _ in PAIRS:
            g = part.loc[part["method"] == queried, ["gap_vs_trilinear", "gap_sem"]].dropna()
            if g.empty:
                continue
            n = len(g)
            sem = g["gap_vs_trilinear"].std(ddof=1) / np.sqrt(n) if n > 1 else float(g["gap_sem"].iloc[0])
            out.append({"field": field, "method": queried, "gap": float(g["gap_vs_trilinear"].mean()),
                        "sem": float(sem), "n_seeds": n})
    return pd.DataFrame(out, columns=["field", "method", "gap", "sem", "n_seeds"])


def _pooled_gap(summ: pd.DataFrame, fields, table: pd.DataFrame) -> str:
    by = summ.set_index(["field", "method"])
    g = gaps(table).set_index(["field", "method"])
    parts = []
    for f in fields:
        bits = []
        for queried, _ in PAIRS:
            if (f, queried) in g.index:
                row = g.loc[(f, queried)]
                who = "pooled" if queried == NRF_POOLED else "one subject's"
                bits.append(f"{who} NRF queried − its own trilinear {row['gap']:+.4f} ± {row['sem']:.4f}")
        best = [by.at[(f, m), "r_mean"] for m in (NRF_ONE, NRF_POOLED, NRF_POOLED_FT) if (f, m) in by.index]
        if best and (f, TRUTH_TRILINEAR) in by.index:
            bits.append(f"best queried NRF − truth trilinear {max(best) - by.at[(f, TRUTH_TRILINEAR), 'r_mean']:+.3f}")
        if bits:
            parts.append(f"{f}: " + ", ".join(bits))
    return ("This run: " + "; ".join(parts) + ".") if parts else ""


def write_outputs(table: pd.DataFrame, *, out_csv, out_md) -> None:
    """The tidy CSV and the Markdown table (the figure is
    :func:`nrf.reporting.fig_continuous_space.continuous_space_figure`'s)."""
    write_frame(table, out_csv, "table", float_format="%.4f")
    with atomic_output(out_md) as tmp:
        tmp.write_text(markdown(table))
