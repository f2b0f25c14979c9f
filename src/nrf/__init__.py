"""Neural Response Functions: continuous MNI-space fMRI encoding models."""

from nrf.reproducible import hold_cpu_kernels

__version__ = "0.1.0"

#: torch's CPU kernels held to AVX2, so a rerun on another x86-64 machine gives
#: the same numbers (nrf.reproducible); set before any convolution runs
REPRODUCIBLE_MATH = hold_cpu_kernels()
