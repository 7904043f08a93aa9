"""Reading property CSV files that label imported samples.

Two layouts are recognised by their columns:

``research``
    The CNN-pVAE research code's table (``data3D200.csv``): ``case`` (sample ID =
    image folder name), ``n_F`` (porosity), ``Permeability_x/y/z`` (diagonal of K in
    lattice units). Other columns (``AverageVel_*``, ``GradPx``, ...) are ignored.
    Its permeability uses the pore-averaged velocity by default.
``plain``
    ``sample_id`` plus any of ``porosity`` and ``k_xx`` ... ``k_zz`` (lattice units,
    superficial-velocity convention by default).

Permeabilities are converted to the store's superficial convention:
K_superficial = n * K_pore_averaged.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from pvae.core.errors import PvaeError
from pvae.data.store.manifest import K_COLUMNS

CONVENTIONS = ("superficial", "pore-averaged")
_RESEARCH = {"case": "sample_id", "n_F": "porosity"} | {
    f"Permeability_{a}": f"k_{a}{a}" for a in "xyz"
}


def _layout(columns: list[str], path: Path) -> tuple[str, dict]:
    if {"case", "Permeability_x", "Permeability_y", "Permeability_z"} <= set(columns):
        return "research", {c: n for c, n in _RESEARCH.items() if c in columns}
    if "sample_id" in columns:
        known = {"sample_id", "porosity", *K_COLUMNS}
        return "plain", {c: c for c in columns if c in known}
    raise PvaeError(
        f"{path}: unrecognised property table; expected columns case, n_F, Permeability_x/y/z "
        "(research layout) or sample_id, porosity, k_xx, ... (plain layout)"
    )


def read_property_table(
    path: str | Path, convention: str | None = None
) -> tuple[pd.DataFrame, dict]:
    """Read and validate a property CSV.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    convention : str, optional
        Darcy convention of its permeabilities, ``superficial`` or ``pore-averaged``;
        default by layout (research: pore-averaged, plain: superficial).

    Returns
    -------
    table : pd.DataFrame
        Indexed by ``sample_id`` (str) with columns ``porosity`` and the 9 ``k_*``
        (NaN where the file has no value); permeabilities still in the file's
        convention (see :func:`to_superficial`).
    info : dict
        ``file``, ``layout``, ``convention``: provenance for the manifest.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype={"case": str, "sample_id": str}, skipinitialspace=True)
    except FileNotFoundError:
        raise PvaeError(f"{path}: no such property file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PvaeError(f"{path}: not a readable CSV ({exc.__class__.__name__})") from None
    layout, rename = _layout(list(raw.columns), path)
    convention = convention or ("pore-averaged" if layout == "research" else "superficial")
    if convention not in CONVENTIONS:
        raise PvaeError(f"--csv-convention {convention}: choose from {', '.join(CONVENTIONS)}")
    table = raw[list(rename)].rename(columns=rename)
    table["sample_id"] = table["sample_id"].str.strip()
    duplicated = table["sample_id"][table["sample_id"].duplicated()]
    if len(duplicated):
        raise PvaeError(f"{path}: sample ID {duplicated.iloc[0]!r} appears more than once")
    values = table.drop(columns="sample_id")
    try:
        values = values.astype(float)
    except ValueError as exc:
        raise PvaeError(f"{path}: non-numeric property value ({exc})") from None
    for column in values.columns:
        bad = ~np.isfinite(values[column])
        if not (column.startswith("k_") and column[2] != column[3]):  # off-diagonals may be < 0
            bad |= values[column] < 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            value = values[column].iloc[row]
            original = next(c for c, n in rename.items() if n == column)
            raise PvaeError(
                f"{path}: row {row + 2} (ID {table['sample_id'].iloc[row]}): "
                f"{original} is {value}, expected a finite value >= 0"
            )
    table = values.assign(sample_id=table["sample_id"]).set_index("sample_id")
    table = table.reindex(columns=["porosity", *K_COLUMNS])
    return table, {"file": str(path), "layout": layout, "convention": convention}


def to_superficial(k: np.ndarray, porosity: float, convention: str) -> np.ndarray:
    """Permeability in the superficial convention.

    Parameters
    ----------
    k : np.ndarray, shape (3, 3)
        Permeability in ``convention`` (lattice units).
    porosity : float
        Porosity used for the conversion.
    convention : str
        ``superficial`` (returned unchanged) or ``pore-averaged`` (times porosity).
    """
    return k * porosity if convention == "pore-averaged" else k
