"""Schema of a dataset's ``manifest.parquet``: one row per sample.

Columns
-------
sample_id : str
    Unique within the dataset (synthetic: ``<family>-s<seed>-<index>``; imported:
    the sample folder or file name).
source : str
    ``synthetic`` or ``import``.
family : str
    Generator family, or ``imported``.
params : str
    JSON of the generator parameters (synthetic) or of the import settings.
nz, ny, nx : int
    Image shape (z, y, x) in voxels.
voxel_size_m : float
    Voxel edge length in metres; NaN when unknown.
porosity : float
    Exact porosity of the stored image.
k_xx ... k_zz : float
    Permeability tensor in lattice units (voxel = 1), superficial-velocity Darcy
    convention; component ``k_ij`` is flow along i for a body force along j, with
    i, j in (x, y, z) and x the last array axis. NaN when unknown.
label_source : str
    Who produced the permeability: ``""`` (unlabelled), ``csv``, ``lbm``, ``surrogate``.
label_info : str
    JSON provenance of the label (file, conversions, solver settings, convergence).
"""

import json
import math

import numpy as np
import pandas as pd

AXES = ("x", "y", "z")
K_COLUMNS = tuple(f"k_{i}{j}" for i in AXES for j in AXES)
K_DIAGONAL = ("k_xx", "k_yy", "k_zz")
LABEL_COLUMNS = ("porosity", *K_COLUMNS)
COLUMNS = (
    "sample_id",
    "source",
    "family",
    "params",
    "nz",
    "ny",
    "nx",
    "voxel_size_m",
    *LABEL_COLUMNS,
    "label_source",
    "label_info",
)


def manifest_row(
    sample_id: str,
    source: str,
    family: str,
    params: dict,
    shape: tuple[int, int, int],
    porosity: float,
    voxel_size_m: float | None = None,
    k: np.ndarray | None = None,
    label_source: str = "",
    label_info: dict | None = None,
) -> dict:
    """One manifest row with every column of the schema.

    Parameters
    ----------
    k : np.ndarray, shape (3, 3), optional
        Permeability tensor in lattice units, components in (x, y, z) order; NaN
        entries for unknown components (e.g. off-diagonals of a diagonal-only CSV).
    """
    tensor = np.full((3, 3), np.nan) if k is None else np.asarray(k, dtype=float)
    row = {
        "sample_id": str(sample_id),
        "source": source,
        "family": family,
        "params": json.dumps(params, sort_keys=True),
        "nz": shape[0],
        "ny": shape[1],
        "nx": shape[2],
        "voxel_size_m": math.nan if voxel_size_m is None else float(voxel_size_m),
        "porosity": float(porosity),
        "label_source": label_source,
        "label_info": json.dumps(label_info or {}, sort_keys=True),
    }
    row.update(zip(K_COLUMNS, tensor.ravel().tolist(), strict=True))
    return row


def manifest_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows -> DataFrame with the schema's column order and dtypes."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for name in ("nz", "ny", "nx"):
        frame[name] = frame[name].astype("int32")
    for name in ("voxel_size_m", *LABEL_COLUMNS):
        frame[name] = frame[name].astype("float64")
    for name in ("sample_id", "source", "family", "params", "label_source", "label_info"):
        frame[name] = frame[name].astype(str)
    return frame


def tensor_of(row) -> np.ndarray:
    """Permeability tensor (3, 3) of a manifest row, lattice units, (x, y, z) order."""
    return np.array([row[c] for c in K_COLUMNS], dtype=float).reshape(3, 3)


def is_labelled(frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask of rows whose permeability diagonal is known, shape (N,)."""
    return frame[list(K_DIAGONAL)].notna().all(axis=1).to_numpy()
