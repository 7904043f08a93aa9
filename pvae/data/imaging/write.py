"""Writing voxel images in the formats users exchange them in."""

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


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


def write_image(image: np.ndarray, path: str | Path) -> Path:
    """Write an image as ``.npy`` (bool) or multi-page ``.tif`` (uint8, pore = 255).

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axis order (z, y, x).
    path : str or Path
        Target file; the suffix picks the format.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    image = np.asarray(image, dtype=bool)
    if path.suffix == ".npy":
        np.save(path, image)
    elif path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, image.astype(np.uint8) * np.uint8(255), photometric="minisblack")
    else:
        raise ValueError(f"{path}: write_image supports .npy and .tif")
    return path
