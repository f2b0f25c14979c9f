"""The offline decoding backend: ridge regression from responses to images.

A decoder is fitted per subject on the subject's *measured* training
responses (prepared file, ``train`` split) and maps a response vector to

- a low-resolution image: the seen image box-averaged to ``image_size`` x
  ``image_size`` pixels (3 x s x s targets), and
- the image's feature vector: the cached features' ``embedding``.

It is then applied unchanged to the measured test responses (the "Measured
fMRI" reference) and to each model's predicted test responses. Ridge
penalties are chosen per target by K-fold cross-validation on the training
images (himalaya's KernelRidgeCV with a linear kernel; folds in order, so reruns reproduce). Predicted
and measured responses share the prepared file's units (betas / 300,
z-scored per voxel and session, averaged over repeats), so no rescaling is
needed. The decoder needs no downloaded weights, so the simulated default
run produces reconstructions offline; it is a stand-in for MindEye2, not a
reproduction of it.

Decoder file (``results/{dataset}/decoding/offline/decoders/{subject}.hdf5``):
    coef      : (n_voxels, n_targets) float32
    intercept : (n_targets,) float32
    alphas    : (n_targets,) float32, the penalty chosen for each target
    attrs     : image_size, embedding_dim, n_voxels, subject, cv, n_train
Targets are the 3 * image_size**2 pixels (channel-first, C-order) then the
embedding_dim feature values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5
from nrf.data.predictions import read_predictions
from nrf.data.prepared import load_prepared
from nrf.decoding import MEASURED
from nrf.decoding.reconstructions import (
    Reconstructions,
    to_uint8,
    to_unit,
    write_reconstructions,
)
from nrf.features.cache import read_features, read_stimuli

logger = logging.getLogger(__name__)


def low_resolution_images(stimuli_path, image_ids, size: int, *, chunk: int = 256) -> np.ndarray:
    """Seen images ``image_ids``, box-averaged to (n, 3, size, size) float32 in [0, 1].

    Read ``chunk`` images at a time, so the 9,000 training images of a real
    subject never sit in memory at full resolution.
    """
    out = []
    for start in range(0, len(image_ids), chunk):
        images = to_unit(read_stimuli(stimuli_path, image_ids[start : start + chunk]))
        out.append(F.adaptive_avg_pool2d(torch.from_numpy(images), size).numpy())
    return np.concatenate(out)


@dataclass
class RidgeDecoder:
    """Linear map responses -> (low-resolution image, embedding).

    coef (n_voxels, n_targets), intercept (n_targets,), alphas (n_targets,).
    """

    coef: np.ndarray
    intercept: np.ndarray
    alphas: np.ndarray
    image_size: int
    embedding_dim: int

    @property
    def n_voxels(self) -> int:
        return self.coef.shape[0]

    def predict(self, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """responses (n, n_voxels) -> images (n, 3, s, s) clipped to [0, 1], embedding (n, D)."""
        responses = np.asarray(responses, dtype=np.float32)
        if responses.ndim != 2 or responses.shape[1] != self.n_voxels:
            raise ValueError(f"responses must be (n, {self.n_voxels}) for this decoder, got {responses.shape}")
        out = responses @ self.coef + self.intercept
        n_pixels = 3 * self.image_size**2
        images = out[:, :n_pixels].reshape(len(out), 3, self.image_size, self.image_size)
        return np.clip(images, 0.0, 1.0), out[:, n_pixels:]


def fit_decoder(responses, images, embedding, *, alphas, cv: int = 5) -> RidgeDecoder:
    """Fit the ridge decoder.

    responses : (n, n_voxels) measured training responses
    images    : (n, 3, s, s) low-resolution seen images in [0, 1]
    embedding : (n, D) the seen images' features
    alphas    : candidate penalties; one is chosen per target by ``cv``-fold CV
    """
    from himalaya.kernel_ridge import KernelRidgeCV  # himalaya: optional; only fitting the decoder needs it

    responses = np.asarray(responses, dtype=np.float32)
    n, size = len(images), images.shape[-1]
    if len(responses) != n or len(embedding) != n:
        raise ValueError(f"{len(responses)} responses, {n} images and {len(embedding)} embeddings must agree")
    targets = np.concatenate([images.reshape(n, -1), embedding], axis=1).astype(np.float32)
    # centre by hand: himalaya fits no intercept
    x_mean, y_mean = responses.mean(0), targets.mean(0)
    x = responses - x_mean
    # fewer images than voxels: solve in the (n x n) linear-kernel space, then
    # turn the dual coefficients into one weight per voxel
    model = KernelRidgeCV(alphas=np.asarray(alphas, dtype=np.float32), kernel="linear", cv=cv, warn=False)
    model.fit(x, targets - y_mean)
    coef = np.asarray(model.get_primal_coef(), dtype=np.float32)
    return RidgeDecoder(
        coef=coef,
        intercept=(y_mean - x_mean @ coef).astype(np.float32),
        alphas=np.asarray(model.best_alphas_, dtype=np.float32),
        image_size=size,
        embedding_dim=embedding.shape[1],
    )


def write_decoder(path, decoder: RidgeDecoder, **attrs) -> None:
    with atomic_output(path) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "coef", decoder.coef)
        add_dataset(f, "intercept", decoder.intercept)
        add_dataset(f, "alphas", decoder.alphas)
        f.attrs["image_size"] = decoder.image_size
        f.attrs["embedding_dim"] = decoder.embedding_dim
        f.attrs["n_voxels"] = decoder.n_voxels
        for key, value in attrs.items():
            f.attrs[key] = value


def read_decoder(path) -> RidgeDecoder:
    with open_hdf5(path, what="decoder") as f:
        return RidgeDecoder(
            coef=f["coef"][()],
            intercept=f["intercept"][()],
            alphas=f["alphas"][()],
            image_size=int(f.attrs["image_size"]),
            embedding_dim=int(f.attrs["embedding_dim"]),
        )


def train_offline_decoder(prepared_path, features_path, stimuli_path, out_path, *, image_size: int, alphas,
                          cv: int, log: logging.Logger = logger) -> RidgeDecoder:
    """Fit a subject's decoder on its measured training responses and write it."""
    subject = load_prepared(prepared_path, splits=("train",))
    train = subject.train
    images = low_resolution_images(stimuli_path, train.image_ids, image_size)
    embedding = read_features(features_path, train.image_ids, keys=("embedding",))["embedding"]
    log.info("%s: fitting a ridge decoder on %d training images x %d voxels -> %d pixels + %d features",
             subject.subject, train.n_images, subject.n_voxels, images[0].size, embedding.shape[1])
    decoder = fit_decoder(train.responses, images, embedding, alphas=alphas, cv=cv)
    log.info("chosen penalties: median %.3g (range %.3g..%.3g)", np.median(decoder.alphas),
             decoder.alphas.min(), decoder.alphas.max())
    write_decoder(out_path, decoder, subject=subject.subject, cv=cv, n_train=train.n_images)
    return decoder


def decode_offline(decoder_path, prepared_path, out_path, *, source: str, predictions_path=None,
                   feature_space: str = "", log: logging.Logger = logger) -> Reconstructions:
    """Decode the measured test responses (source ``measured``) or a model's predictions."""
    decoder = read_decoder(decoder_path)
    subject = load_prepared(prepared_path, splits=("test",))
    if source == MEASURED:
        responses, image_ids = subject.test.responses, subject.test.image_ids
    else:
        if predictions_path is None:
            raise ValueError(f"source {source!r} needs its predictions file")
        responses, image_ids = read_predictions(predictions_path)
        if not np.array_equal(image_ids, subject.test.image_ids):
            raise ValueError(f"{predictions_path}: image_ids differ from the test images of {prepared_path}")
    images, embedding = decoder.predict(responses)
    log.info("%s %s: decoded %d test images to %dx%d", subject.subject, source, len(images),
             decoder.image_size, decoder.image_size)
    recon = Reconstructions(
        images=to_uint8(images),
        image_ids=image_ids,
        embedding=embedding,
        attrs={"backend": "offline", "source": source, "subject": subject.subject, "feature_space": feature_space},
    )
    write_reconstructions(out_path, recon)
    return recon
