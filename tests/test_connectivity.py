"""Periodic percolation (pvae.physics.connectivity); images True = pore, axes (z, y, x)."""

import numpy as np

from pvae.physics.connectivity import flow_paths, percolates, periodic_clusters


def test_straight_channel_percolates_along_its_axis_only():
    image = np.zeros((5, 6, 7), dtype=bool)
    image[2, 3, :] = True  # a line of pores along x
    assert percolates(image).tolist() == [True, False, False]


def test_channel_needs_to_meet_itself_across_the_periodic_face():
    image = np.zeros((5, 6, 7), dtype=bool)
    image[2, 1, :4] = True
    image[2, 1:4, 3] = True
    image[2, 3, 3:] = True  # touches both x faces, but at different y: no periodic path
    assert percolates(image).tolist() == [False, False, False]
    image[2, 1:4, 0] = True  # close the loop through the face x = 0
    assert percolates(image).tolist() == [True, False, False]


def test_diagonal_winding_channel_carries_flow_along_both_axes():
    image = np.zeros((3, 8, 8), dtype=bool)
    for i in range(8):
        image[1, i, i] = image[1, i, (i + 1) % 8] = True  # staircase winding by (1, 1, 0)
    assert percolates(image).tolist() == [True, True, False]
    np.testing.assert_array_equal(flow_paths(image)[0], image)


def test_isolated_and_dead_clusters_are_removed():
    image = np.zeros((6, 6, 6), dtype=bool)
    image[1, 1, :] = True  # percolates along x
    image[4, 4, 4] = True  # isolated pore
    image[:, 3, 3] = True  # percolates along z only
    paths = flow_paths(image)
    assert paths[0].sum() == 6 and paths[0][1, 1].all()
    assert not paths[1].any()
    assert paths[2].sum() == 6 and paths[2][:, 3, 3].all()
    labels, spans = periodic_clusters(image)
    assert labels.max() == 3 and spans.tolist()[0] == [False, False, False]


def test_edge_contacts_do_not_connect():
    image = np.zeros((4, 4, 4), dtype=bool)
    for i in range(4):
        image[0, i, i] = True  # voxels touching only along edges
    assert not percolates(image).any()


def test_invariant_under_periodic_shift_and_axis_permutation():
    rng = np.random.default_rng(0)
    image = rng.random((10, 12, 14)) < 0.35
    reference = flow_paths(image)
    shifted = flow_paths(np.roll(image, (3, -5, 7), axis=(0, 1, 2)))
    np.testing.assert_array_equal(shifted, np.roll(reference, (3, -5, 7), axis=(1, 2, 3)))
    transposed = flow_paths(image.transpose(2, 1, 0))  # x <-> z
    np.testing.assert_array_equal(transposed, reference[::-1].transpose(0, 3, 2, 1))
