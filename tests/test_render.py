"""3D views of the pore space: the exact voxel faces, rendered off-screen without a display."""

import numpy as np

from pvae.vae.render import PORE_COLOUR, SOLID_COLOUR, interface_quads, render_pore_spaces


def test_one_pore_voxel_has_six_faces_and_a_corner_one_only_its_inner_three():
    image = np.zeros((3, 4, 5), dtype=bool)
    image[1, 2, 3] = True  # z, y, x
    quads = interface_quads(image)
    assert quads.shape == (6, 4, 3)
    lo, hi = quads.min(axis=(0, 1)), quads.max(axis=(0, 1))
    np.testing.assert_array_equal(lo, [3, 2, 1])  # (x, y, z) of the voxel's low corner
    np.testing.assert_array_equal(hi, [4, 3, 2])
    image[:] = False
    image[0, 0, 0] = True  # the sample's box is a periodic cut, not a wall: no faces there
    assert len(interface_quads(image)) == 3


def test_a_blocked_channel_has_a_wall_across_it():
    open_channel = np.zeros((8, 8, 12), dtype=bool)
    open_channel[3:5, 3:5, :] = True  # along x
    blocked = open_channel.copy()
    blocked[3:5, 3:5, 6] = False

    def across(image):  # faces normal to x: all four corners share one x
        quads = interface_quads(image)
        return quads[np.ptp(quads[:, :, 0], axis=1) == 0, 0, 0]

    assert len(across(open_channel)) == 0
    np.testing.assert_array_equal(np.sort(across(blocked)), [6] * 4 + [7] * 4)  # two 2x2 caps


def _pixels(view: np.ndarray, colour) -> int:
    """Pixels of a shade of ``colour`` (lighting scales all channels alike)."""
    hue = view.astype(float) / np.maximum(view.max(axis=2, keepdims=True), 1)
    wanted = np.array(colour) / max(colour)
    return int((np.abs(hue - wanted).max(axis=2) < 0.08).sum())


def test_views_render_headless_and_colour_the_side_they_are_seen_from(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    solid = np.zeros((16, 16, 16), dtype=bool)
    channel = solid.copy()
    channel[6:10, 6:10, :] = True  # a pore channel in solid: its walls seen from the solid
    views = render_pore_spaces([solid, channel, ~channel], size=(120, 100))
    assert [v.shape for v in views] == [(100, 120, 3)] * 3
    assert all(v.dtype == np.uint8 for v in views)
    sides = [(_pixels(v, PORE_COLOUR), _pixels(v, SOLID_COLOUR)) for v in views]
    assert sides[0] == (0, 0)  # fully solid: only the box outline
    assert sides[1][1] > 500 and sides[1][0] < sides[1][1] / 5  # blue: inside, at its ends
    assert sides[2][0] > 500 and sides[2][1] < sides[2][0] / 5  # a solid rod in pore
    assert (views[1] == 255).all(axis=2).mean() > 0.5  # white background around it


def test_the_design_figure_shows_the_flow_along_the_targets_axis(tmp_path, monkeypatch):
    import pandas as pd

    from pvae.design import inverse_report

    drawn = {}
    monkeypatch.setattr(inverse_report, "designs_plot", lambda *a: drawn.update(args=a))
    along_y = np.zeros((8, 10, 12), dtype=bool)
    along_y[3:6, :, 4:8] = True  # open along y only
    closed = along_y.copy()
    closed[:, 5, :] = False
    table = pd.DataFrame({"rank": [1, 2]})
    path = tmp_path / "designs.png"
    target = {"porosity": 0.3, "k_xx": 0.01, "k_yy": 0.2}  # the flow shown: along y
    inverse_report.design_figure([along_y, closed], table, target, path)
    shown, views, flows, rows, target, where = drawn["args"]
    assert len(shown) == len(views) == 2 and where == path
    speed, axis = flows[0]
    assert axis == 1 and speed.shape == along_y.shape
    assert (speed[~along_y] == 0).all() and (speed[along_y] > 0).all()
    assert flows[1] is None  # blocked: no percolating path, nothing to draw


def test_every_face_normal_points_into_the_pore(rng):
    image = rng.random((5, 6, 7)) < 0.5
    quads = interface_quads(image)
    normals = np.cross(quads[:, 1] - quads[:, 0], quads[:, 2] - quads[:, 0])  # (x, y, z)
    centres = quads.mean(axis=1)
    pore_side = (centres + 0.5 * normals)[:, ::-1].astype(int)  # voxel (z, y, x) in front
    solid_side = (centres - 0.5 * normals)[:, ::-1].astype(int)
    assert np.abs(normals).sum(axis=1).tolist() == [1.0] * len(quads)  # unit, axis-aligned
    assert image[tuple(pore_side.T)].all() and not image[tuple(solid_side.T)].any()
