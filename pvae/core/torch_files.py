"""Torch record files: written atomically, read safely.

Every ``.pt`` file pvae writes (training checkpoints, surrogate bundles, latent priors,
denoiser training state) is a dict of plain values and tensors, written with
:func:`save_torch` and read back with :func:`load_torch` (``weights_only=True``: no
arbitrary unpickling), whose failures are one line naming the file.
"""

import io
from pathlib import Path

import torch

from pvae.core.atomic import atomic_write_bytes
from pvae.core.errors import PvaeError


def save_torch(record: dict, path: str | Path) -> Path:
    """``torch.save`` of ``record`` to ``path`` atomically (never half written)."""
    buffer = io.BytesIO()
    torch.save(record, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_torch(path: str | Path, what: str):
    """The record :func:`save_torch` wrote to ``path``, on the CPU.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file should be, for the error ("surrogate model", ...).

    Raises
    ------
    PvaeError
        ``PATH: no such WHAT`` or ``PATH: not a readable WHAT (ErrorClass)``.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PvaeError(f"{path}: no such {what}") from None
    except Exception as exc:  # corrupt file, foreign pickle, a directory, ...
        raise PvaeError(f"{path}: not a readable {what} ({exc.__class__.__name__})") from None
