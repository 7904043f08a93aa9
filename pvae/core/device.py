"""Choosing the torch device: a parameter of every torch code path, never a global."""

import torch

from pvae.core.errors import PvaeError


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA name without CUDA is an error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PvaeError(f"device {name}: no CUDA device available")
    return torch.device(name)
