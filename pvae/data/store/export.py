"""Writing a dataset's samples as image files (``pvae data export``).

One file per sample, ``<sample id>.<format>``, in a new folder (built under a temporary
name and renamed into place). Formats: ``vti`` (VTK ImageData for ParaView: cell array
``pore``, spacing = the sample's voxel size in metres when the dataset knows it, else 1;
the sample's labels as FieldData), ``tif`` (multi-page, pore = 255, pages along z) and
``npy`` (bool array (Z, Y, X), True = pore).
"""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pvae.core.atomic import atomic_directory, check_out
from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.data.imaging import write_image, write_vti
from pvae.data.store.manifest import tensor_of
from pvae.data.store.reader import VoxelStore

EXPORT_FORMATS = ("vti", "tif", "npy")


def _labels(row) -> dict:
    """FieldData of one sample: what the manifest knows about it."""
    out = {"sample_id": str(row["sample_id"]), "family": str(row["family"])}
    out["porosity"] = float(row["porosity"])
    k = tensor_of(row)
    if not np.isnan(k).all():
        out["permeability"] = k  # row-major 3x3, (x, y, z), lattice units, NaN = unknown
        out["label_source"] = str(row["label_source"])
    if not math.isnan(row["voxel_size_m"]):
        out["voxel_size_m"] = float(row["voxel_size_m"])
    return out


def export_samples(
    store: VoxelStore,
    out: str | Path,
    fmt: str = "vti",
    ids: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> list[Path]:
    """Write samples of a dataset as one image file each.

    Parameters
    ----------
    store : VoxelStore
        The dataset.
    out : str or Path
        New folder; an existing non-empty one needs ``overwrite``.
    fmt : {"vti", "tif", "npy"}
        File format (see the module docstring).
    ids : sequence of str, optional
        Sample IDs to write, in this order; None = all samples.
    overwrite : bool
        Replace an existing ``out`` (once the new folder is complete).
    progress : bool, optional
        Progress bar: True, False, or None = only on a terminal.

    Returns
    -------
    list of Path
        The files, at their final place under ``out``.

    Raises
    ------
    PvaeError
        Unknown format or sample ID (before anything is written), or an ``out`` in the way.
    """
    if fmt not in EXPORT_FORMATS:
        raise PvaeError(f"--format {fmt}: choose one of {', '.join(EXPORT_FORMATS)}")
    check_out(out, overwrite)
    indices = (
        list(range(len(store)))
        if ids is None
        else [store.index_of(sample_id) for sample_id in dict.fromkeys(ids)]
    )
    names = []
    with (
        atomic_directory(out, overwrite=overwrite) as tmp,
        progress_bar(len(indices), "export", progress) as bar,
    ):
        for index in indices:
            row = store.manifest.iloc[index]
            name = f"{row['sample_id']}.{fmt}"
            if Path(name).name != name or name.startswith("."):
                raise PvaeError(f"{store.root}: sample ID {row['sample_id']!r} is no file name")
            if fmt == "vti":
                labels = _labels(row)
                write_vti(store.image(index), tmp / name, labels.get("voxel_size_m"),
                          field_data=labels)  # fmt: skip
            else:
                write_image(store.image(index), tmp / name)
            names.append(name)
            bar.update()
    return [Path(out) / name for name in names]
