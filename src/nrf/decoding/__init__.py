"""Decoding responses back to images, for the paper's semantic-level columns.

Two backends write the same reconstruction file (:mod:`nrf.decoding.reconstructions`):

- ``offline`` (:mod:`nrf.decoding.offline`), the default: ridge regression
  from a subject's measured training responses to a low-resolution image
  and to the image feature space; needs no downloaded weights.
- ``mindeye2`` (:mod:`nrf.decoding.mindeye2`): MindEye2's pretrained
  per-subject model, as in the paper; needs its checkpoints and a GPU.

Both decode the measured test responses ("Measured fMRI", the reference
row) and every encoding model's predicted test responses.
"""

BACKENDS = ("offline", "mindeye2")
#: Decoding source holding the measured test responses rather than a model's predictions.
MEASURED = "measured"
