"""A torch ``Dataset`` over a dataset directory, with cube-symmetry augmentation."""

import numpy as np
import torch

from pvae.data.store.reader import VoxelStore, open_dataset
from pvae.data.symmetry import cube_symmetries


class VoxelDataset(torch.utils.data.Dataset):
    """Samples of a dataset directory as tensors, read lazily from the memory map.

    Parameters
    ----------
    store : VoxelStore or str or Path
        The dataset.
    indices : sequence of int, optional
        Rows to expose (a split or subset); default all.
    augment : bool
        Apply a random cube symmetry to each sample (from the symmetries that keep
        the image shape: 48 for cubes). The permeability tensor is rotated with the
        image, K' = R K R^T; porosity is invariant. Draws use torch's RNG, so
        ``torch.manual_seed`` and DataLoader worker seeding make them reproducible.

    Each item is a dict:

    ``image`` : torch.float32, shape (1, Z, Y, X)
        1 = pore, 0 = solid, axes (z, y, x).
    ``porosity`` : torch.float32, shape ()
    ``k`` : torch.float32, shape (3, 3)
        Permeability, lattice units, (x, y, z) components; NaN where unknown.
    ``index`` : int
        Row in the dataset.
    """

    def __init__(self, store, indices=None, augment: bool = False):
        self.store = store if isinstance(store, VoxelStore) else open_dataset(store)
        self.indices = np.arange(len(self.store)) if indices is None else np.asarray(indices)
        self.augment = augment
        self.symmetries = cube_symmetries(self.store.shape)
        labels = self.store.labels()
        self._porosity = torch.as_tensor(labels[:, 0], dtype=torch.float32)
        self._k = torch.as_tensor(labels[:, 1:], dtype=torch.float32).reshape(-1, 3, 3)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict:
        index = int(self.indices[item])
        image = torch.from_numpy(self.store.image(index)).unsqueeze(0)  # (1, Z, Y, X) bool
        k = self._k[index]
        if self.augment:
            symmetry = self.symmetries[int(torch.randint(len(self.symmetries), ()))]
            image = symmetry.apply(image).contiguous()
            k = symmetry.apply_tensor(k)
        return {
            "image": image.to(torch.float32),
            "porosity": self._porosity[index],
            "k": k,
            "index": index,
        }
