"""The config's ``universal`` section split into what each call takes.

Kept free of torch so that the Snakefile can import it at parse time.
"""

from __future__ import annotations

#: keys of the ``universal`` section that build the model; the rest (but
#: ``transfer_*`` and ``clusters``) are TrainConfig fields. ``variant``
#: ("authors" | "compact") also picks the training recipe
#: (nrf.training.universal) and the transfer protocol (nrf.experiments.transfer).
UNIVERSAL_MODEL_KEYS = ("channels", "embedding_dim", "variant", "dropout")
#: keys read by the figures, not by training
UNIVERSAL_FIGURE_KEYS = ("clusters",)


def universal_options(section: dict) -> tuple[dict, dict, dict]:
    """(model options, train options, transfer options) of the config's
    ``universal`` section; transfer options drop the ``transfer_`` prefix."""
    model = {k: v for k, v in section.items() if k in UNIVERSAL_MODEL_KEYS}
    transfer = {k[len("transfer_"):]: v for k, v in section.items() if k.startswith("transfer_")}
    train = {
        k: v for k, v in section.items()
        if k not in model and k not in UNIVERSAL_FIGURE_KEYS and not k.startswith("transfer_")
    }
    return model, train, transfer
