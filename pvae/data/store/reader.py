"""Reading a dataset directory: manifest in memory, voxels memory-mapped."""

from pathlib import Path

import numpy as np
import pandas as pd

from pvae.core.atomic import read_parquet_metadata
from pvae.core.errors import PvaeError
from pvae.data.store.layout import FORMAT_VERSION, MANIFEST, VOXELS, packed_size, unpack
from pvae.data.store.manifest import COLUMNS, LABEL_COLUMNS, is_labelled, tensor_of


class VoxelStore:
    """A dataset directory opened for reading.

    Images are read by index from a memory map, so opening a dataset of any size
    costs only its manifest.

    Parameters
    ----------
    root : str or Path
        Dataset directory (see :mod:`pvae.data.store.layout`).

    Attributes
    ----------
    manifest : pd.DataFrame
        One row per sample (schema in :mod:`pvae.data.store.manifest`).
    shape : tuple of int
        (Z, Y, X) of every image.
    fingerprint : str
        Content hash of voxels and labels.
    metadata : dict
        The manifest's ``pvae`` metadata (provenance of the dataset).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not self.root.is_dir():
            raise PvaeError(f"{self.root}: no such dataset directory")
        if not manifest_path.is_file() or not (self.root / VOXELS).is_file():
            raise PvaeError(f"{self.root}: not a pvae dataset (missing {MANIFEST} or {VOXELS})")
        try:
            self.metadata = read_parquet_metadata(manifest_path)
            self.manifest = pd.read_parquet(manifest_path)
            self._voxels = np.load(self.root / VOXELS, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise PvaeError(f"{self.root}: unreadable dataset ({exc})") from None
        if self.metadata.get("format_version") != FORMAT_VERSION:
            raise PvaeError(
                f"{manifest_path}: dataset format {self.metadata.get('format_version')!r}, "
                f"this pvae reads format {FORMAT_VERSION}"
            )
        missing = set(COLUMNS) - set(self.manifest.columns)
        self.shape = tuple(self.metadata["shape"])
        if missing or self._voxels.shape != (len(self.manifest), packed_size(self.shape)):
            raise PvaeError(f"{self.root}: manifest and voxels do not match (damaged dataset)")
        self.fingerprint = self.metadata["fingerprint"]
        self._index = {sid: i for i, sid in enumerate(self.manifest["sample_id"])}

    def __len__(self) -> int:
        return len(self.manifest)

    def __getstate__(self) -> dict:
        # pickled for worker processes: the memory map is reopened there, not copied
        state = self.__dict__.copy()
        del state["_voxels"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._voxels = np.load(self.root / VOXELS, mmap_mode="r")

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as a boolean array (Z, Y, X), ``True`` = pore."""
        return unpack(np.asarray(self._voxels[index]), self.shape)

    def images(self, indices) -> np.ndarray:
        """Images at ``indices`` as a boolean array (B, Z, Y, X)."""
        return unpack(np.asarray(self._voxels[np.asarray(indices)]), self.shape)

    def index_of(self, sample_id: str) -> int:
        """Row of a sample ID; :class:`PvaeError` if unknown."""
        try:
            return self._index[str(sample_id)]
        except KeyError:
            raise PvaeError(f"{self.root}: unknown sample ID {sample_id!r}") from None

    def permeability(self, index: int) -> np.ndarray:
        """Permeability tensor (3, 3) of sample ``index``, lattice units, (x, y, z) order."""
        return tensor_of(self.manifest.iloc[index])

    def labels(self) -> np.ndarray:
        """Porosity and the 9 permeability components, shape (N, 10), NaN if unknown."""
        return self.manifest[list(LABEL_COLUMNS)].to_numpy(dtype=float, copy=True)

    def labelled(self) -> np.ndarray:
        """Boolean mask (N,) of samples with a known permeability diagonal."""
        return is_labelled(self.manifest)

    def summary(self) -> dict:
        """What ``pvae data info --json`` prints.

        Returns
        -------
        dict
            ``count``, ``shape`` [Z, Y, X], ``porosity`` {min, mean, max},
            ``labelled``, ``fingerprint``, plus ``families``, ``label_sources`` and
            ``voxel_size_m`` (null when unknown or mixed).
        """
        por = self.manifest["porosity"]
        voxel = self.manifest["voxel_size_m"].dropna().unique()
        sources = self.manifest.loc[self.labelled(), "label_source"].value_counts()
        return {
            "count": len(self),
            "shape": list(self.shape),
            "porosity": {
                "min": float(por.min()),
                "mean": float(por.mean()),
                "max": float(por.max()),
            },
            "labelled": int(self.labelled().sum()),
            "fingerprint": self.fingerprint,
            "families": {k: int(v) for k, v in self.manifest["family"].value_counts().items()},
            "label_sources": {k: int(v) for k, v in sources.items()},
            "voxel_size_m": float(voxel[0]) if len(voxel) == 1 else None,
        }


def open_dataset(root: "str | Path | VoxelStore") -> VoxelStore:
    """Open a dataset directory for reading; see :class:`VoxelStore`.

    An already open :class:`VoxelStore` is returned as it is.
    """
    return root if isinstance(root, VoxelStore) else VoxelStore(root)
