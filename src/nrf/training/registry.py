"""One dispatch point for encoder kinds: adding a model touches this file only.

Every encoder is a ``torch.nn.Module`` with a ``config`` dataclass (``to_dict``)
and ``forward(features, coords_mm)`` -> (n_images, n_voxels); a voxel-locked
model ignores ``coords_mm``. Its :class:`EncoderKind` says

    feature_keys : the cached feature arrays it reads (read once, nothing more)
    uses_coords  : whether it needs the voxels' MNI coordinates
    build        : model_config dict (a checkpoint's) -> untrained module
    fit          : (train, val, coords_mm, TrainConfig, model_options, model, log, source)
                   -> (trained module, history); ``model`` continues training
                   an existing one (finetuning), else a new one is built

Saving and loading are the same for every kind (nrf.training.encoders: a ``.pt``
checkpoint holding kind, model_config and state_dict), and so is prediction
(nrf.training.loop.predict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from nrf.features.base import FEATURE_KEYS, MAPS, TOKEN_GRIDS
from nrf.models.fwrf import FWRF, FWRFConfig, fit_fwrf
from nrf.models.linear import LinearConfig, LinearEncoder
from nrf.models.nrf import NRF, NRFConfig
from nrf.models.ridge import RidgeConfig, RidgeEncoder, fit_ridge
from nrf.models.universal import UniversalConfig, UniversalEncoder
from nrf.training.loop import train_linear, train_nrf
from nrf.training.universal import SubjectData, train_universal


@dataclass(frozen=True)
class EncoderKind:
    name: str
    feature_keys: tuple[str, ...]
    uses_coords: bool
    build: Callable[[dict], nn.Module]
    fit: Callable


def _fit_nrf(train, val, coords_mm, config, *, model_options, model=None, log=None, source="the training data"):
    if model is not None:
        return train_nrf(train, val, coords_mm, config, model=model, log=log, source=source)
    shallow = train.features["tokens_shallow"]
    model_config = NRFConfig(
        token_dim=int(shallow.shape[2]), n_tokens=int(shallow.shape[1]),
        embedding_dim=int(train.features["embedding"].shape[1]), **model_options,
    )
    return train_nrf(train, val, coords_mm, config, model_config=model_config, log=log, source=source)


def _fit_linear(train, val, coords_mm, config, *, model_options, model=None, log=None, source="the training data"):
    if model is not None and model.config.n_voxels != train.responses.shape[1]:
        raise ValueError(
            f"the linear model predicts {model.config.n_voxels} voxels, the data have {train.responses.shape[1]}"
        )
    return train_linear(train, val, config, model=model, log=log, source=source)



def _fit_fwrf(train, val, coords_mm, config, *, model_options, model=None, log=None, source="the training data"):

    if model is not None:
        raise ValueError("fWRF is fit in closed form and cannot continue from a checkpoint")
    layers = [k for k in train.features if k.startswith(MAPS + "/")]  # fine to coarse, as the cache lists them
    fwrf_config = FWRFConfig(
        layer_keys=layers, layer_shape=tuple(tuple(train.features[k].shape[1:]) for k in layers),
        n_voxels=train.responses.shape[1], **model_options,
    )
    return fit_fwrf(train.features, train.responses, fwrf_config, seed=config.seed, log=log)


def _fit_ridge(train, val, coords_mm, config, *, model_options, model=None, log=None, source="the training data"):

    if model is not None:
        raise ValueError("ridge is fit in closed form and cannot continue from a checkpoint")
    emb = train.features["embedding"]
    ridge_config = RidgeConfig(embedding_dim=int(emb.shape[1]), n_voxels=train.responses.shape[1], **model_options)
    return fit_ridge(emb, train.responses, ridge_config, log=log)


#: the embedding name of a Universal encoder trained on one subject by train_encoder
SINGLE_SUBJECT = "subject"


def _fit_universal(train, val, coords_mm, config, *, model_options, model=None, log=None,
                   source="the training data"):
    name = SINGLE_SUBJECT if model is None else model.config.subject
    return train_universal([SubjectData(name, train, val)], config, model_options=model_options, model=model,
                           log=log, source=source)


def _build_fwrf(c):

    return FWRF(FWRFConfig(**c))


def _build_ridge(c):

    return RidgeEncoder(RidgeConfig(**c))


def _build_universal(c):
    return UniversalEncoder(UniversalConfig(**c))


REGISTRY: dict[str, EncoderKind] = {
    "nrf": EncoderKind("nrf", FEATURE_KEYS, True, lambda c: NRF(NRFConfig(**c)), _fit_nrf),
    "linear": EncoderKind("linear", ("embedding",), False, lambda c: LinearEncoder(LinearConfig(**c)), _fit_linear),
    "fwrf": EncoderKind("fwrf", (MAPS,), False, _build_fwrf, _fit_fwrf),
    "ridge": EncoderKind("ridge", ("embedding",), False, _build_ridge, _fit_ridge),
    "universal": EncoderKind("universal", TOKEN_GRIDS, False, _build_universal, _fit_universal),
}


def get_kind(name: str) -> EncoderKind:
    """The registered encoder kind ``name``; the error lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown encoder kind {name!r}; known: {', '.join(REGISTRY)}") from None


def register(kind: EncoderKind) -> None:
    """Add an encoder kind (the models of later work register themselves here)."""
    REGISTRY[kind.name] = kind
