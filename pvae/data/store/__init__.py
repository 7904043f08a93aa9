"""The dataset store: one directory per dataset (manifest + bit-packed voxels)."""

from pvae.data.store.reader import VoxelStore, open_dataset
from pvae.data.store.torch_dataset import VoxelDataset
from pvae.data.store.writer import rewrite_manifest, write_dataset

__all__ = ["VoxelDataset", "VoxelStore", "open_dataset", "rewrite_manifest", "write_dataset"]
