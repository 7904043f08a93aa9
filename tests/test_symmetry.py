"""Cube symmetries: group structure, and K' = R K R^T consistent with the image."""

import numpy as np
import pytest
import torch

from pvae.data.store import VoxelDataset, rewrite_manifest
from pvae.data.store.manifest import K_COLUMNS
from pvae.data.symmetry import cube_symmetries


def pore_covariance(image: np.ndarray) -> np.ndarray:
    """Second moment tensor of pore voxel positions, (x, y, z) components.

    A rank-2 tensor of the structure: any rotation of the image must rotate it
    exactly like a permeability tensor.
    """
    zyx = np.argwhere(image).astype(float)
    centred = zyx[:, ::-1] - (np.array(image.shape[::-1]) - 1) / 2  # (x, y, z), about centre
    return centred.T @ centred / len(centred)


def test_group_of_48_distinct_elements():
    group = cube_symmetries()
    matrices = {tuple(s.matrix().ravel()) for s in group}
    assert len(group) == 48 == len(matrices)
    assert np.allclose(group[0].matrix(), np.eye(3))
    for s in group:
        r = s.matrix()
        assert np.allclose(r @ r.T, np.eye(3))


def test_shape_preserving_subgroups():
    assert len(cube_symmetries((8, 8, 8))) == 48
    assert len(cube_symmetries((8, 12, 12))) == 16
    assert len(cube_symmetries((8, 10, 12))) == 8
    for s in cube_symmetries((8, 10, 12)):
        assert s.apply(np.zeros((8, 10, 12))).shape == (8, 10, 12)


def test_rotation_rule_matches_structure_tensor(rng):
    # an anisotropic, off-centre blob: its tensor has distinct off-diagonal entries
    z, y, x = np.indices((10, 10, 10))
    image = ((x - 6.0) ** 2 / 9 + (y - 3.5 - 0.4 * x) ** 2 / 2 + (z - 4.0) ** 2 / 5) < 1
    k = pore_covariance(image)
    assert abs(k[0, 1]) > 0.1  # off-diagonal present, so sign errors would show
    for s in cube_symmetries():
        assert np.allclose(pore_covariance(np.ascontiguousarray(s.apply(image))), s.apply_tensor(k))


def test_channel_along_x_moves_to_new_axis():
    image = np.zeros((8, 8, 8), dtype=bool)
    image[3:5, 3:5, :] = True  # open along x (last axis)
    k = np.diag([1.0, 0.0, 0.0])
    swap_zx = next(s for s in cube_symmetries() if s.perm == (2, 1, 0) and not any(s.flips))
    turned = swap_zx.apply(image)
    assert turned[:, 3:5, 3:5].all()  # now open along z
    assert np.allclose(swap_zx.apply_tensor(k), np.diag([0.0, 0.0, 1.0]))


def test_torch_and_numpy_agree(rng):
    image = rng.random((6, 6, 6)) < 0.5
    for s in cube_symmetries()[::7]:
        assert np.array_equal(s.apply(torch.from_numpy(image)).numpy(), s.apply(image))
        k = rng.normal(size=(3, 3))
        assert np.allclose(s.apply_tensor(torch.from_numpy(k)).numpy(), s.apply_tensor(k))


def test_dataset_augmentation_rotates_labels_with_images(spheres_dataset, tmp_path):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(spheres_dataset, root)
    from pvae.data.store import open_dataset

    store = open_dataset(root)
    frame = store.manifest.copy()
    for i in range(len(store)):  # label each sample with a tensor that belongs to its image
        frame.loc[i, list(K_COLUMNS)] = pore_covariance(store.image(i)).ravel()
    rewrite_manifest(root, frame)
    dataset = VoxelDataset(root, augment=True)
    assert len(dataset.symmetries) == 8  # 16 x 24 x 32 keeps only the flips
    torch.manual_seed(0)
    seen = set()
    for _ in range(3):
        for item in dataset:
            image = item["image"][0].numpy().astype(bool)
            assert np.allclose(item["k"].numpy(), pore_covariance(image), rtol=1e-5, atol=1e-3)
            assert item["porosity"].item() == pytest.approx(image.mean())
            seen.add(item["image"][0].numpy().tobytes())
    assert len(seen) > len(dataset)  # augmentation really changed images


def test_rotation_rule_holds_for_lbm_permeability():
    """Physics check of augmentation: solving the rotated structure gives R K R^T."""
    from pvae.data.microstructures import synthesize_sample
    from pvae.physics.lbm import LBMSettings, permeability

    settings = LBMSettings(tol=1e-6, check_every=50)
    image, _ = synthesize_sample("spheres", (20, 20, 20), seed=4, index=0)
    k = permeability(image, settings).k
    scale = np.trace(k) / 3
    group = cube_symmetries()
    picks = [s for s in group if any(s.flips) and s.perm != (0, 1, 2)][:3]
    for s in picks:
        turned = permeability(np.ascontiguousarray(s.apply(image)), settings).k
        assert np.allclose(turned, s.apply_tensor(k), atol=0.01 * scale)
