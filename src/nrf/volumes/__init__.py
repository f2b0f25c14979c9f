"""Query a trained NRF anywhere: MNI volumes at any resolution, for any image.

- :mod:`~nrf.volumes.grid`: the MNI152 grid at any voxel size and the mask of points evaluated
- :mod:`~nrf.volumes.images`: the images a volume is queried for (a folder; the pipeline's sets)
- :mod:`~nrf.volumes.query`: evaluating a checkpoint on the grid, chunked, into a 4-D NIfTI + sidecar
- :mod:`~nrf.volumes.contrasts`: an in-silico contrast (t and difference maps) between two image sets
- :mod:`~nrf.volumes.cli`: ``nrf-volume``, the command line (also ``python -m nrf.volumes``)

Submodules are imported by name, so reading a grid never imports torch.
"""
