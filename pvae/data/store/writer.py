"""Writing a dataset directory atomically, one sample at a time."""

import contextlib
import datetime
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pvae import __version__
from pvae.core.atomic import atomic_directory, atomic_write_parquet, read_parquet_metadata
from pvae.data.store.fingerprint import dataset_fingerprint, voxel_digest
from pvae.data.store.layout import FORMAT_VERSION, MANIFEST, VOXELS, pack, packed_size
from pvae.data.store.manifest import manifest_frame, manifest_row
from pvae.physics.porosity import porosity


class DatasetWriter:
    """Fills a dataset directory under construction; use :func:`write_dataset`.

    Parameters
    ----------
    root : Path
        The temporary directory (renamed into place by :func:`write_dataset`).
    count : int
        Number of samples.
    shape : tuple of int
        (Z, Y, X) of every image.
    """

    def __init__(self, root: Path, count: int, shape: tuple[int, int, int]):
        self.root = root
        self.shape = tuple(int(n) for n in shape)
        self.voxels = np.lib.format.open_memmap(
            root / VOXELS, mode="w+", dtype=np.uint8, shape=(count, packed_size(self.shape))
        )
        self.rows: list[dict | None] = [None] * count

    def put(self, index: int, image: np.ndarray, sample_id: str, **row) -> None:
        """Store sample ``index``.

        Parameters
        ----------
        index : int
            Row in the dataset, 0 <= index < count.
        image : np.ndarray of bool, shape (Z, Y, X)
            ``True`` = pore; its porosity is computed here.
        sample_id : str
            Unique sample ID.
        **row
            Further :func:`pvae.data.store.manifest.manifest_row` arguments (``source``,
            ``family``, ``params``, ``voxel_size_m``, ``k``, ``label_source``, ...).
        """
        if image.shape != self.shape:
            raise ValueError(f"{sample_id}: shape {image.shape}, dataset shape {self.shape}")
        self.voxels[index] = pack(image)
        self.rows[index] = manifest_row(
            sample_id, shape=self.shape, porosity=porosity(image), **row
        )

    def put_packed(self, index: int, packed: np.ndarray, row: dict) -> None:
        """Store an already packed sample with its complete manifest row."""
        self.voxels[index] = packed
        self.rows[index] = row

    def finish(self, info: dict) -> str:
        """Write the manifest with its metadata; returns the fingerprint."""
        missing = [i for i, row in enumerate(self.rows) if row is None]
        if missing:
            raise RuntimeError(f"dataset incomplete: {len(missing)} samples never written")
        self.voxels.flush()
        frame = manifest_frame(self.rows)
        if frame["sample_id"].duplicated().any():
            dup = frame.loc[frame["sample_id"].duplicated(), "sample_id"].iloc[0]
            raise ValueError(f"duplicate sample ID {dup!r}")
        voxels_sha256 = voxel_digest(self.voxels, self.shape)
        fingerprint = dataset_fingerprint(voxels_sha256, frame)
        metadata = {
            "format_version": FORMAT_VERSION,
            "shape": list(self.shape),
            "count": len(frame),
            "voxels_sha256": voxels_sha256,
            "fingerprint": fingerprint,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "pvae_version": __version__,
            **info,
        }
        atomic_write_parquet(frame, self.root / MANIFEST, metadata)
        del self.voxels  # close the memory map before the directory is renamed
        return fingerprint


@contextlib.contextmanager
def write_dataset(
    out: str | Path, count: int, shape: tuple[int, int, int], info: dict, overwrite=False
) -> Iterator[DatasetWriter]:
    """Create a dataset directory atomically.

    Parameters
    ----------
    out : str or Path
        The dataset directory; refused if it exists unless ``overwrite``.
    count : int
        Number of samples that will be written.
    shape : tuple of int
        (Z, Y, X) of every image.
    info : dict
        Provenance stored in the manifest metadata (command, seed, settings, ...).
    overwrite : bool
        Replace an existing directory once the new one is complete.

    Yields
    ------
    DatasetWriter
        Call :meth:`DatasetWriter.put` for every index; the manifest is written and
        the directory renamed into place when the block ends without an exception.
        On an exception nothing is left behind.
    """
    with atomic_directory(out, overwrite=overwrite) as root:
        writer = DatasetWriter(root, count, shape)
        yield writer
        writer.finish(info)


def rewrite_manifest(root: str | Path, frame) -> str:
    """Replace a dataset's manifest (e.g. after labelling) atomically.

    The voxels are unchanged; the fingerprint is recomputed from the stored voxel
    digest and the new labels.

    Parameters
    ----------
    root : str or Path
        Dataset directory.
    frame : pd.DataFrame
        The new manifest, same samples in the same order.

    Returns
    -------
    str
        The new fingerprint.
    """
    path = Path(root) / MANIFEST
    metadata = read_parquet_metadata(path)
    frame = manifest_frame(frame.to_dict("records"))
    metadata["fingerprint"] = dataset_fingerprint(metadata["voxels_sha256"], frame)
    atomic_write_parquet(frame, path, metadata)
    return metadata["fingerprint"]
