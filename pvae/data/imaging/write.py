"""Writing voxel images in the formats users exchange them in."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from pvae.core.atomic import atomic_file
from pvae.core.errors import PvaeError
from pvae.data.imaging.vti import write_vti


def write_bmp_stack(image: np.ndarray, folder: str | Path) -> Path:
    """Write an image as the research code's BMP stack: one 8-bit slice per z.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, written as 255 (white); solid as 0.
    folder : str or Path
        Created if missing; slices are named ``0001.bmp``, ``0002.bmp``, ...

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(image.shape[0])))
    for k, page in enumerate(np.asarray(image, dtype=np.uint8) * np.uint8(255), start=1):
        Image.fromarray(page, mode="L").save(folder / f"{k:0{width}d}.bmp")
    return folder


def write_image(image: np.ndarray, path: str | Path, voxel_size: float | None = None) -> Path:
    """Write an image as ``.npy`` (bool), multi-page ``.tif`` (uint8, pore = 255) or ``.vti``.

    The file appears only once complete (written under a temporary name, then renamed).

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axis order (z, y, x).
    path : str or Path
        Target file; the suffix picks the format. ``.vti`` is VTK ImageData for ParaView
        (:func:`pvae.data.imaging.vti.write_vti`: cell array ``pore``, one cell per voxel).
    voxel_size : float, optional
        Voxel edge in metres: the spacing of a ``.vti`` file (1 when not given); the other
        formats do not store it.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    image = np.asarray(image, dtype=bool)
    suffix = path.suffix.lower()
    if suffix == ".vti":
        return write_vti(image, path, voxel_size)
    if suffix not in (".npy", ".tif", ".tiff"):
        raise ValueError(f"{path}: write_image supports .npy, .tif and .vti")
    with atomic_file(path) as temp:
        if suffix == ".npy":
            with open(temp, "wb") as handle:  # np.save on a name would append ".npy"
                np.save(handle, image)
        else:
            tifffile.imwrite(temp, image.astype(np.uint8) * np.uint8(255), photometric="minisblack")
    return path


STRUCTURE_FORMATS = ("npy", "tif", "bmp", "vti")
"""Formats :func:`write_structure` writes: ``.npy``, ``.tif``, a BMP slice folder, ``.vti``."""


def structure_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """Validated formats of designed structures, ``npy`` always first.

    Parameters
    ----------
    formats : str or sequence of str
        Names from :data:`STRUCTURE_FORMATS`, or one comma-separated string of them
        (``"npy,tif,vti"``). ``npy`` is added when missing: result tables refer to it.

    Returns
    -------
    tuple of str
        ``("npy", ...)`` in the given order, without repeats.

    Raises
    ------
    PvaeError
        One line naming an unknown format.
    """
    if isinstance(formats, str):
        formats = formats.split(",")
    names = [name.strip().lower().lstrip(".") for name in formats if name.strip()]
    unknown = [name for name in names if name not in STRUCTURE_FORMATS]
    if unknown:
        raise PvaeError(
            f"--formats {','.join(unknown)}: unknown; choose from {','.join(STRUCTURE_FORMATS)}"
        )
    return tuple(dict.fromkeys(["npy", *names]))


def write_structure(
    image: np.ndarray,
    folder: str | Path,
    stem: str,
    formats: str | Sequence[str] = STRUCTURE_FORMATS,
    voxel_size: float | None = None,
) -> Path:
    """Write one structure in several formats: ``stem.npy``, ``stem.tif``, ``stem_bmp/``
    (the research code's slice folder) and ``stem.vti`` (ParaView), as asked.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axis order (z, y, x).
    folder : str or Path
        Existing folder.
    stem : str
        File name without extension.
    formats : str or sequence of str
        See :func:`structure_formats` (``npy`` is always written).
    voxel_size : float, optional
        Voxel edge in metres: the spacing of the ``.vti`` (else 1).

    Returns
    -------
    Path
        The ``.npy`` file.
    """
    folder = Path(folder)
    for fmt in structure_formats(formats):
        if fmt == "bmp":
            write_bmp_stack(image, folder / f"{stem}_bmp")
        else:
            write_image(image, folder / f"{stem}.{fmt}", voxel_size)
    return folder / f"{stem}.npy"
