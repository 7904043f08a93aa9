"""Permeability labelling of a dataset: batches, a resumable journal, the final merge.

Labelling writes each finished batch to ``<dataset>/labels-journal/`` (one Parquet
part file per batch, written atomically) and merges the journal into the manifest
when every pending sample is done. A run that is killed loses at most the batches in
flight; the next run with the same settings skips every sample already in the
journal. The executor (local processes or a Ray cluster) lives elsewhere
(:mod:`tune.labelling`); this module never imports Ray.
"""

import dataclasses
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from pvae.core.atomic import atomic_write_parquet, read_parquet_metadata
from pvae.data.store.manifest import K_COLUMNS
from pvae.data.store.reader import open_dataset
from pvae.data.store.writer import rewrite_manifest
from pvae.physics.lbm import LBMSettings, permeability_batch

JOURNAL = "labels-journal"
LABEL_DIGITS = 9  # the float32 solver resolves about 7; last-bit noise must not change fingerprints


def settings_key(settings: LBMSettings) -> str:
    """Canonical JSON of the settings that change a label (journal entries must match)."""
    fields = dataclasses.asdict(settings)
    return json.dumps({k: fields[k] for k in sorted(fields) if k not in ("backend", "compile")})


def pending_indices(root: str | Path, relabel: bool = False) -> np.ndarray:
    """Rows to label: those without a permeability diagonal, or all with ``relabel``."""
    store = open_dataset(root)
    return np.arange(len(store)) if relabel else np.flatnonzero(~store.labelled())


def batches(indices: np.ndarray, size: int) -> list[np.ndarray]:
    """Split indices into consecutive batches of at most ``size``."""
    return [indices[i : i + size] for i in range(0, len(indices), max(1, size))]


def label_batch(
    root: str | Path, indices: np.ndarray, settings: LBMSettings, device: str = "cpu"
) -> pd.DataFrame:
    """Compute LBM labels of some samples of a dataset (one simulation).

    Parameters
    ----------
    root : str or Path
        Dataset directory (read by index; nothing is copied).
    indices : np.ndarray of int, shape (B,)
        Rows to label.
    settings : LBMSettings
        Solver settings; the superficial convention is enforced (the store's).
    device : str
        ``cpu`` or a CUDA device.

    Returns
    -------
    pd.DataFrame
        One row per index: ``index``, ``sample_id``, the 9 ``k_*`` (lattice units,
        superficial) and ``label_info`` (JSON: settings, convergence, steps).
    """
    store = open_dataset(root)
    settings = dataclasses.replace(settings, convention="superficial")
    results = permeability_batch(store.images(indices), settings, device=device)
    rows = []
    for index, result in zip(indices, results, strict=True):
        info = {
            "method": "lbm",
            "settings": json.loads(settings_key(settings)),
            "converged": result.converged.tolist(),
            "steps": result.steps.tolist(),
            "percolating": result.percolating.tolist(),
        }
        row = {"index": int(index), "sample_id": store.manifest["sample_id"].iloc[index]}
        row.update(zip(K_COLUMNS, result.k.ravel().tolist(), strict=True))
        row["label_info"] = json.dumps(info, sort_keys=True)
        rows.append(row)
    return pd.DataFrame(rows)


class LabelJournal:
    """Finished batches of one labelling run, kept in ``<dataset>/labels-journal/``.

    Parameters
    ----------
    root : str or Path
        Dataset directory.
    key : str
        :func:`settings_key` of the run; parts written with other settings are ignored.
    folder : str
        Journal folder inside the dataset (another one keeps labels that are not
        merged into the manifest apart, e.g. an LBM check of surrogate labels).
    """

    def __init__(self, root: str | Path, key: str, folder: str = JOURNAL):
        self.folder = Path(root) / folder
        self.key = key

    def add(self, rows: pd.DataFrame) -> None:
        """Record one finished batch (atomic write of a part file)."""
        self.folder.mkdir(exist_ok=True)
        atomic_write_parquet(
            rows, self.folder / f"part-{uuid.uuid4().hex}.parquet", {"key": self.key}
        )

    def rows(self) -> pd.DataFrame:
        """All recorded rows of this run's settings (empty frame if none)."""
        parts = [
            pd.read_parquet(p)
            for p in sorted(self.folder.glob("part-*.parquet"))
            if read_parquet_metadata(p).get("key") == self.key
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["index"])

    def clear(self) -> None:
        """Remove the journal (after a successful merge)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def significant(values: np.ndarray, digits: int = LABEL_DIGITS) -> np.ndarray:
    """Values rounded to ``digits`` significant digits (0 and NaN unchanged)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(values))))
        return np.where(np.isfinite(scale), np.round(values * scale) / scale, values)


def merge_journal(root: str | Path, journal: LabelJournal, label_source: str = "lbm") -> dict:
    """Write the journal's labels into the manifest atomically, then clear the journal.

    Permeabilities are stored to :data:`LABEL_DIGITS` significant digits, so that the
    order of floating-point reductions (batch composition, thread count) cannot change
    a dataset's fingerprint.

    Returns
    -------
    dict
        ``labelled`` (rows written), ``not_converged`` (rows whose solver hit the step
        cap in some direction), ``fingerprint`` (the dataset's new fingerprint).
    """
    store = open_dataset(root)
    rows = journal.rows().drop_duplicates("index", keep="last").set_index("index")
    frame = store.manifest.copy()
    if len(rows):
        index = rows.index.to_numpy(dtype=np.int64)
        for column in K_COLUMNS:
            frame.loc[index, column] = significant(rows[column].to_numpy(dtype=float))
        frame.loc[index, "label_source"] = label_source
        frame.loc[index, "label_info"] = rows["label_info"].to_numpy()
    fingerprint = rewrite_manifest(root, frame)
    journal.clear()
    not_converged = sum(not all(json.loads(i)["converged"]) for i in rows.get("label_info", []))
    return {"labelled": len(rows), "not_converged": not_converged, "fingerprint": fingerprint}
