"""The methods of the few-image experiments, as the paper names them, and the
methods the continuous-space experiment (:mod:`nrf.experiments.continuous`) scores.

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


# -- the continuous-space experiment (issue 23): NRF between the voxels -----------------
NRF_ONE = "NRF queried (one subject)"
NRF_TRILINEAR = "NRF trilinear (one subject's voxels)"
LINEAR_TRILINEAR = "Linear trilinear (one subject's voxels)"
NRF_POOLED = "NRF queried (pooled subjects)"
NRF_POOLED_TRILINEAR = "NRF pooled, trilinear (one subject's voxels)"
NRF_POOLED_FT = "NRF queried (pooled, finetuned on subject)"
TRUTH_TRILINEAR = "Truth trilinear (one subject's voxels)"
#: the continuous-space methods in the table's and the figure's order
CONTINUOUS_METHODS = (NRF_ONE, NRF_TRILINEAR, LINEAR_TRILINEAR, NRF_POOLED, NRF_POOLED_TRILINEAR, NRF_POOLED_FT,
                      TRUTH_TRILINEAR)
