"""Importing real image data (and optionally its property table) into a dataset."""

import warnings
from pathlib import Path

import numpy as np

from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.core.warnings import PvaeWarning
from pvae.data.imaging.binarize import Binarization
from pvae.data.imaging.read import VOLUME_SUFFIXES, natural_key, read_image, sample_id_of
from pvae.data.store.manifest import K_COLUMNS
from pvae.data.store.property_table import read_property_table, to_superficial
from pvae.data.store.writer import write_dataset

SIDE_FILES = (".csv", ".txt", ".md", ".json", ".yaml", ".yml")
POROSITY_TOLERANCE = 0.01


def discover_samples(images: str | Path) -> list[Path]:
    """Sample paths in an image directory, ordered by the number in their names.

    A sample is a sub-folder (of BMP slices), a ``.tif``/``.tiff`` or a ``.npy`` file.
    Hidden entries and side files (.csv, .txt, .md, .json, .yaml) are skipped; any
    other file is an error.
    """
    images = Path(images)
    if not images.is_dir():
        raise PvaeError(f"{images}: no such image directory")
    samples = []
    for entry in images.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.suffix.lower() in VOLUME_SUFFIXES:
            samples.append(entry)
        elif entry.suffix.lower() not in SIDE_FILES:
            raise PvaeError(
                f"{entry}: unsupported file in the image directory "
                "(expected sample folders of .bmp slices, .tif/.tiff, .npy or .vti files)"
            )
    if not samples:
        raise PvaeError(
            f"{images}: no samples found (expected sub-folders of .bmp slices, .tif/.tiff, "
            ".npy or .vti files)"
        )
    return sorted(samples, key=natural_key)


def _match(ids: list[str], table, properties: Path) -> None:
    """Every image needs a CSV row and every CSV row an image; report, never guess."""

    def listing(missing):
        shown = ", ".join(sorted(missing, key=lambda i: natural_key(Path(i)))[:5])
        return shown + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")

    no_row = set(ids) - set(table.index)
    no_image = set(table.index) - set(ids)
    if no_image:
        raise PvaeError(f"{properties}: {len(no_image)} IDs have no images: {listing(no_image)}")
    if no_row:
        raise PvaeError(f"{properties}: no rows for {len(no_row)} image samples: {listing(no_row)}")


def import_dataset(
    images: str | Path,
    out: str | Path,
    properties: str | Path | None = None,
    rule: Binarization | None = None,
    voxel_size_m: float | None = None,
    csv_convention: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Import a directory of samples into a new dataset directory.

    Parameters
    ----------
    images : str or Path
        Directory of samples (BMP slice folders, multi-page TIFFs, ``.npy`` files);
        all samples must have the same shape (Z, Y, X).
    out : str or Path
        New dataset directory, written atomically.
    properties : str or Path, optional
        Property CSV (layouts in :mod:`pvae.data.store.property_table`); rows are matched
        to samples by ID, and any mismatch is an error.
    rule : Binarization, optional
        Binarisation of grey values (default: two-valued images, brighter = pore).
    voxel_size_m : float, optional
        Voxel edge length in metres, recorded per sample.
    csv_convention : str, optional
        Darcy convention of the CSV permeabilities (default by layout).
    overwrite : bool
        Replace an existing ``out``.
    progress : bool, optional
        Progress bar; default only on a terminal.

    Returns
    -------
    Path
        The dataset directory.
    """
    rule = rule or Binarization()
    samples = discover_samples(images)
    ids = [sample_id_of(p) for p in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise PvaeError(f"{images}: two samples share the ID {dup!r}")
    table, table_info = (None, {})
    if properties is not None:
        table, table_info = read_property_table(properties, csv_convention)
        _match(ids, table, Path(properties))
    first = read_image(samples[0], rule)
    info = {
        "made_by": "import",
        "images": str(images),
        "binarization": rule.describe(),
        "properties": table_info,
    }
    porosity_gaps = []
    with (
        write_dataset(out, len(samples), first.shape, info, overwrite=overwrite) as writer,
        progress_bar(len(samples), "import", progress) as bar,
    ):
        for index, (path, sample_id) in enumerate(zip(samples, ids, strict=True)):
            image = first if index == 0 else read_image(path, rule)
            if image.shape != first.shape:
                raise PvaeError(
                    f"{path}: shape {image.shape} differs from {first.shape} of "
                    f"{samples[0].name}; a dataset holds one image shape"
                )
            label = {}
            if table is not None:
                row = table.loc[sample_id]
                n = float(image.mean())
                if np.isfinite(row["porosity"]):
                    porosity_gaps.append(abs(row["porosity"] - n))
                    n = float(row["porosity"])
                k = row[list(K_COLUMNS)].to_numpy(dtype=float).reshape(3, 3)
                label = {
                    "k": to_superficial(k, n, table_info["convention"]),
                    "label_source": "csv",
                    "label_info": table_info,
                }
            writer.put(
                index,
                image,
                sample_id,
                source="import",
                family="imported",
                params={"path": str(path), "binarization": rule.describe()},
                voxel_size_m=voxel_size_m,
                **label,
            )
            bar.update()
    if porosity_gaps and max(porosity_gaps) > POROSITY_TOLERANCE:
        count = sum(g > POROSITY_TOLERANCE for g in porosity_gaps)
        warnings.warn(
            f"{properties}: image porosity differs from the CSV's by more than "
            f"{POROSITY_TOLERANCE} for {count} samples (max {max(porosity_gaps):.3f}); "
            "check the binarisation (--invert, --threshold)",
            PvaeWarning,
            stacklevel=2,
        )
    return Path(out)
