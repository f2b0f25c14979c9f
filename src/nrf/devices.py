"""Where torch work runs: the config says auto, cpu or cuda."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> str:
    """``auto`` is cuda where a GPU is visible, else cpu; ``cuda`` without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device 'cuda': no CUDA GPU is visible; use 'auto' or 'cpu'")
    return device
