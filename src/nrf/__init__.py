"""Neural Response Functions: continuous MNI-space fMRI encoding models."""

__version__ = "0.1.0"
