"""The ``mindeye2`` decoding backend: MindEye2's pretrained per-subject model.

MindEye2 (Scotti et al. 2024; code: the git submodule ``vendor/MindEyeV2``,
not initialised by default) is what the paper decodes predicted responses
with. Its checkpoints come from the Hugging Face dataset
``pscotti/mindeyev2``; the config key ``decoder.mindeye2.checkpoint_dir``
names the local folder holding (MindEye2's ``cache_dir`` layout):

    train_logs/final_subj0N_pretrained_40sess_24bs/last.pth   per-subject model
    unclip6_epoch0_step110000.ckpt                          SDXL unCLIP
    sd_image_var_autoenc.pth                                 low-level (blurry) decoder
    bigG_to_L_epoch8.pth                                     bigG -> CLIP-L tokens for captions
    zavychromaxl_v30.safetensors                             SDXL base for the enhancement

plus GIT (``microsoft/git-large-coco``) in the Hugging Face cache. Inference
itself (GPU) is ``nrf.decoding.mindeye2_inference``.

Input assembly, the part this module checks before any GPU work:

- Voxel order. MindEye2 flattens each session's func1pt8mm betas volume in
  C-order and keeps the nsdgeneral voxels (``dataset_creation.ipynb``). The
  prepared files store voxels in the same C-order (``voxel_ijk`` sorted by
  their flat index, asserted here), so row r of our responses is MindEye2's
  input unit r. The count is asserted against the checkpoint's first layer
  (``ridge.linears.0.weight``: (hidden, n_voxels)).
- Scaling. MindEye2 was trained on single-trial betas z-scored per voxel
  within each session; at test time it runs each of an image's 3 repeats
  through the network and averages the outputs. Our responses are in the
  same z units (betas / 300, z-scored per voxel and session; the division
  cancels) and averaged over repeats. We feed them as they are, as one
  "repeat" (``scaling: as_is``, the default): MindEye2's first layer is
  linear, so the repeat-average in z units is the average of its first-layer
  outputs over repeats. The alternative ``unit_variance`` rescales each
  voxel to unit standard deviation over the test images, matching the
  spread of single-trial z-scores that the network saw in training
  (a repeat-average or a model prediction has a smaller spread).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5
from nrf.data.predictions import read_predictions
from nrf.data.prepared import load_prepared
from nrf.decoding import MEASURED

logger = logging.getLogger(__name__)

SCALINGS = ("as_is", "unit_variance")
RIDGE_KEY = "ridge.linears.0.weight"
UNCLIP = "unclip6_epoch0_step110000.ckpt"
AUTOENCODER = "sd_image_var_autoenc.pth"
CONVERTER = "bigG_to_L_epoch8.pth"
REFINER = "zavychromaxl_v30.safetensors"
#: MindEye2 scores a 0.75 / 0.25 blend of the enhanced and the blurry reconstruction
ENHANCED_WEIGHT = 0.75
HF_DATASET = "https://huggingface.co/datasets/pscotti/mindeyev2"


def model_name(subject: str, sessions: int = 40) -> str:
    """MindEye2's name of the fine-tuned per-subject model, e.g. final_subj01_pretrained_40sess_24bs."""
    return f"final_{subject}_pretrained_{sessions}sess_24bs"


def required_files(checkpoint_dir, subject: str) -> dict[str, Path]:
    root = Path(checkpoint_dir)
    return {
        "model": root / "train_logs" / model_name(subject) / "last.pth",
        "unclip": root / UNCLIP,
        "autoencoder": root / AUTOENCODER,
        "converter": root / CONVERTER,
        "refiner": root / REFINER,
    }


def check_checkpoint_dir(checkpoint_dir, subject: str) -> dict[str, Path]:
    """The checkpoint files of ``subject``; a clear error naming what is missing."""
    if not checkpoint_dir:
        raise FileNotFoundError(
            "decoding=mindeye2 needs config key decoder.mindeye2.checkpoint_dir: a folder with MindEye2's "
            f"checkpoints, downloaded from {HF_DATASET} (see nrf.decoding.mindeye2)"
        )
    files = required_files(checkpoint_dir, subject)
    if not Path(checkpoint_dir).is_dir():
        raise FileNotFoundError(
            f"MindEye2 checkpoint folder {checkpoint_dir} (config decoder.mindeye2.checkpoint_dir) does not exist; "
            f"download {', '.join(str(p.relative_to(checkpoint_dir)) for p in files.values())} from {HF_DATASET}"
        )
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"MindEye2 checkpoint folder {checkpoint_dir} lacks {', '.join(missing)}; download them from {HF_DATASET}"
        )
    return files


def checkpoint_voxel_count(model_path) -> int:
    """Input voxels of a MindEye2 per-subject checkpoint (its first, linear layer)."""
    checkpoint = torch.load(model_path, map_location="cpu", weights_only=False, mmap=True)
    state = checkpoint.get("model_state_dict", checkpoint)
    if RIDGE_KEY not in state:
        raise KeyError(f"{model_path}: no {RIDGE_KEY!r} in the model state; is this a MindEye2 last.pth?")
    return int(state[RIDGE_KEY].shape[1])


def check_voxel_order(voxel_ijk: np.ndarray, grid_shape) -> None:
    """Raise unless voxels run in C-order of the func grid (MindEye2's order)."""
    flat = np.ravel_multi_index(tuple(np.asarray(voxel_ijk, dtype=np.int64).T), tuple(grid_shape))
    if len(flat) > 1 and np.any(np.diff(flat) <= 0):
        raise ValueError("voxels are not in C-order of the func grid; MindEye2 reads nsdgeneral voxels in C-order")


def scale_responses(responses: np.ndarray, scaling: str) -> np.ndarray:
    """responses (n, n_voxels) -> MindEye2's input units (see the module docstring)."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    responses = np.asarray(responses, dtype=np.float32)
    if scaling == "as_is":
        return responses
    std = responses.std(axis=0, keepdims=True)
    return (responses - responses.mean(axis=0, keepdims=True)) / np.where(std > 0, std, 1.0)


def assemble_inputs(
    responses, voxel_ijk, grid_shape, n_checkpoint_voxels: int, *, scaling: str = "as_is"
) -> np.ndarray:
    """MindEye2's input: (n_images, 1, n_voxels) float32, one "repeat" per image.

    responses : (n_images, n_voxels) in the prepared file's voxel order
    voxel_ijk : (n_voxels, 3) func-grid indices of those voxels
    """
    responses = np.asarray(responses, dtype=np.float32)
    if responses.ndim != 2 or responses.shape[1] != len(voxel_ijk):
        raise ValueError(f"responses {responses.shape} do not match {len(voxel_ijk)} voxels")
    if responses.shape[1] != n_checkpoint_voxels:
        raise ValueError(
            f"{responses.shape[1]} voxels but the MindEye2 checkpoint expects {n_checkpoint_voxels} "
            "(nsdgeneral voxels of func1pt8mm); was the subject prepared from the full nsdgeneral mask?"
        )
    check_voxel_order(voxel_ijk, grid_shape)
    return scale_responses(responses, scaling)[:, None, :]


def write_inputs(path, voxels: np.ndarray, image_ids: np.ndarray, **attrs) -> None:
    """The assembled input: ``voxels`` (n, 1, n_voxels) float32, ``image_ids`` (n,) int64."""
    with atomic_output(path) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "voxels", np.asarray(voxels, dtype=np.float32))
        add_dataset(f, "image_ids", np.asarray(image_ids, dtype=np.int64))
        for key, value in attrs.items():
            f.attrs[key] = value


def read_inputs(path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(voxels, image_ids, attrs) of an input file written by :func:`write_inputs`."""
    with open_hdf5(path, what="MindEye2 input file") as f:
        return f["voxels"][()], f["image_ids"][()], dict(f.attrs)


def prepare_mindeye2_inputs(responses, image_ids, voxel_ijk, grid_shape, *, checkpoint_dir, subject: str,
                            scaling: str, out_path, log: logging.Logger = logger) -> Path:
    """Check the checkpoints, assemble and write the input; returns the checkpoint path.

    Everything here runs before the GPU is touched, so a wrong voxel count or
    a missing folder fails in seconds.
    """
    files = check_checkpoint_dir(checkpoint_dir, subject)
    n_expected = checkpoint_voxel_count(files["model"])
    voxels = assemble_inputs(responses, voxel_ijk, grid_shape, n_expected, scaling=scaling)
    write_inputs(out_path, voxels, image_ids, subject=subject, scaling=scaling, model=str(files["model"]))
    log.info("%s: %d test images x %d voxels assembled for MindEye2 (%s, scaling %s)", subject, len(voxels),
             voxels.shape[-1], files["model"], scaling)
    return files["model"]


def prepare_mindeye2_inputs_from_files(prepared_path, predictions_path, out_path, *, source: str, checkpoint_dir,
                                       scaling: str, log: logging.Logger = logger) -> Path:
    """The rule's entry: measured test responses (``source`` measured) or a model's predictions."""

    subject = load_prepared(prepared_path, splits=("test",))
    check_checkpoint_dir(checkpoint_dir, subject.subject)  # fail before reading predictions
    if source == MEASURED:
        responses, image_ids = subject.test.responses, subject.test.image_ids
    else:
        responses, image_ids = read_predictions(predictions_path)
        if not np.array_equal(image_ids, subject.test.image_ids):
            raise ValueError(f"{predictions_path}: image_ids differ from the test images of {prepared_path}")
    return prepare_mindeye2_inputs(responses, image_ids, subject.voxel_ijk, subject.attrs["grid_shape"],
                                   checkpoint_dir=checkpoint_dir, subject=subject.subject, scaling=scaling,
                                   out_path=out_path, log=log)

