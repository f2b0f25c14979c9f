"""The methods of the few-image experiments, as the paper names them.

Torch-free, so a table or figure job that only needs the names imports no
torch; display names and colours of every method are :mod:`nrf.reporting.style`.
"""

ENSEMBLE = "NRF finetune ensemble"
HELDOUT = "NRF finetune ensemble (held-out λ)"
AVERAGE = "NRF finetune average"
SCRATCH = "NRF scratch"
LINEAR = "Linear Regression"


def base_label(base: str, target: str) -> str:
    return f"NRF finetune base {base}->{target}"
