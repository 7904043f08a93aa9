"""Reading one sample's volume from disk.

Supported layouts, each holding one sample:

* a folder of BMP slices (the research code's layout): ``*.bmp`` files sorted by the
  last number in the file name, slice k becoming z = k; 1-bit, 8-bit grey/palette and
  24-bit RGB slices (RGB is converted to grey by luminance);
* a multi-page TIFF (``.tif`` / ``.tiff``), pages along z;
* a NumPy ``.npy`` array of shape (Z, Y, X);
* a VTK ImageData ``.vti`` file (:mod:`pvae.data.imaging.vti`): its ``pore`` cell array,
  or the first scalar cell (else point) array of a file from another program.

The sample ID is the folder name or the file name without its extension.
"""

import logging
import re
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from pvae.core.errors import PvaeError
from pvae.data.imaging.binarize import Binarization, binarize
from pvae.data.imaging.vti import read_vti_grey

TIFF_SUFFIXES = (".tif", ".tiff")
VOLUME_SUFFIXES = (".npy", *TIFF_SUFFIXES, ".vti")
_NUMBER = re.compile(r"(\d+)")


def sample_id_of(path: Path) -> str:
    """Sample ID of a sample path: folder name, or file name without extension."""
    path = Path(path)
    return path.name if path.is_dir() else path.stem


def natural_key(path: Path) -> tuple[int, str]:
    """Sort key: the last number in the file stem, then the name (``2.bmp`` < ``10.bmp``)."""
    numbers = _NUMBER.findall(path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


def bmp_slices(folder: Path) -> list[Path]:
    """BMP slice files of a folder, ordered by the last number in their names."""
    slices = sorted(
        (p for p in Path(folder).iterdir() if p.suffix.lower() == ".bmp"), key=natural_key
    )
    if not slices:
        raise PvaeError(f"{folder}: no .bmp slices in this folder")
    return slices


def _read_slice(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "1":
                return np.asarray(im, dtype=np.uint8) * np.uint8(255)
            if im.mode not in ("L", "I", "I;16", "F"):
                im = im.convert("L")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PvaeError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def _read_bmp_folder(folder: Path) -> np.ndarray:
    slices = bmp_slices(folder)
    first = _read_slice(slices[0])
    volume = np.empty((len(slices), *first.shape), dtype=first.dtype)
    volume[0] = first
    for k, path in enumerate(slices[1:], start=1):
        page = _read_slice(path)
        if page.shape != first.shape:
            raise PvaeError(
                f"{path}: slice is {page.shape[1]}x{page.shape[0]} pixels, expected "
                f"{first.shape[1]}x{first.shape[0]} like {slices[0].name}"
            )
        volume[k] = page
    return volume


def _read_tiff(path: Path) -> np.ndarray:
    logging.getLogger("tifffile").setLevel(logging.ERROR)  # we report problems ourselves
    try:
        volume = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise PvaeError(f"{path}: not a readable TIFF ({exc.__class__.__name__})") from None
    if volume.size == 0:
        raise PvaeError(f"{path}: not a readable TIFF (no image data)")
    if volume.ndim == 4 and volume.shape[-1] in (3, 4):  # RGB(A) pages -> luminance
        volume = volume[..., :3] @ np.array([0.299, 0.587, 0.114])
        volume = np.rint(volume).astype(np.uint8)
    if volume.ndim == 2:
        volume = volume[None]
    return volume


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise PvaeError(f"{path}: not a readable .npy array ({exc})") from None


def read_grey(path: str | Path) -> np.ndarray:
    """Read one sample's raw volume (before binarisation).

    Parameters
    ----------
    path : str or Path
        A BMP slice folder, a ``.tif``/``.tiff``, ``.npy`` or ``.vti`` file.

    Returns
    -------
    np.ndarray, shape (Z, Y, X)
        Grey values as stored, axis 0 = slice index (z), axis 2 = x.
    """
    path = Path(path)
    if not path.exists():
        raise PvaeError(f"{path}: no such file or folder")
    if path.is_dir():
        volume = _read_bmp_folder(path)
    elif path.suffix.lower() in TIFF_SUFFIXES:
        volume = _read_tiff(path)
    elif path.suffix.lower() == ".npy":
        volume = _read_npy(path)
    elif path.suffix.lower() == ".vti":
        volume = read_vti_grey(path)
    else:
        raise PvaeError(
            f"{path}: unsupported image type (expected a BMP slice folder, .tif/.tiff, .npy "
            "or .vti)"
        )
    if volume.ndim != 3 or min(volume.shape) == 0:
        raise PvaeError(f"{path}: expected a 3D volume (Z, Y, X), got shape {volume.shape}")
    if volume.dtype.kind not in "biuf":
        raise PvaeError(f"{path}: unsupported array type {volume.dtype}")
    return volume


def read_image(path: str | Path, rule: Binarization | None = None) -> np.ndarray:
    """Read one sample as a boolean voxel image.

    Parameters
    ----------
    path : str or Path
        A BMP slice folder, a ``.tif``/``.tiff``, ``.npy`` or ``.vti`` file.
    rule : Binarization
        How grey values become pore; see :mod:`pvae.data.imaging.binarize`.

    Returns
    -------
    np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axis order (z, y, x).
    """
    return binarize(read_grey(path), rule or Binarization(), path)
