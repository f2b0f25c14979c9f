"""Neural Response Functions: continuous MNI-space fMRI encoding models.

Importing nrf holds torch's CPU kernels to AVX2, so that a rerun on another
x86-64 machine gives the same numbers. torch's CPU builds pick float32 kernels
by the CPU they find, and a training that starts one rounding apart ends
elsewhere. Measured on two of this project's machines (AMD EPYC with and
without AVX-512): oneDNN's convolutions (the filter-bank features) rounded
differently, and that alone moved the default run's shuffle comparison from
-0.040 ± 0.025 (undecided) to -0.075 ± 0.009 (reversed); with oneDNN held to
AVX2 the AVX-512 machine gives -0.040 ± 0.025 again. MKL's matrix products
agreed on the two AMD machines; on Intel CPUs MKL's own dispatch differs
between AVX2 and AVX-512, and its Conditional Numerical Reproducibility mode
holds it to AVX2. On other vendors Intel documents that mode as falling back
to an automatic, CPU-dependent branch, and it changed this AMD machine's
numbers, so it is set on Intel only.

Both libraries read their setting at their first call, so it is set when nrf
is imported, before any convolution or matrix product; a value the user set
wins. CUDA, and builds without oneDNN or MKL (e.g. aarch64), ignore them.
"""

import os

__version__ = "0.1.0"


def cpu_vendor(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's vendor_id (GenuineIntel, AuthenticAMD), or "" where it cannot be read."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def kernel_settings(vendor: str) -> dict[str, str]:
    """The environment that holds this vendor's CPU kernels to AVX2."""
    settings = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    if vendor == "GenuineIntel":
        settings["MKL_CBWR"] = "AVX2"
    return settings


def hold_cpu_kernels(vendor: str | None = None) -> dict[str, str]:
    """Set :func:`kernel_settings` where the user has not; return what is in force."""
    settings = kernel_settings(cpu_vendor() if vendor is None else vendor)
    for var, value in settings.items():
        os.environ.setdefault(var, value)
    return {var: os.environ[var] for var in settings}


#: the CPU kernel settings in force (logged by every job, nrf.runlog)
REPRODUCIBLE_MATH = hold_cpu_kernels()
