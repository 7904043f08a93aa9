"""Which library renders 3D views of voxel structures headless? VTK vs. matplotlib.

    python bench/bench_render.py [--dataset data/default] [--samples 4]

Renders the pore space of the first foam samples of the dataset (the most faces per
sample) three ways, on this machine without a display, and times each view:

- VTK off-screen (:func:`pvae.vae.render.render_pore_spaces`, EGL without a display);
- matplotlib ``Poly3DCollection`` of the same voxel faces (painter's algorithm);
- matplotlib ``Axes3D.voxels`` of the pore voxels (one sample only: it is slow).

Each way's first view is saved beside the results (``bench/results/render_*.png``) so the
depth errors of the painter's algorithm can be seen. Writes bench/results/render.json
and render.md.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import result_header  # noqa: E402

from pvae.core.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.vae.figures import plt, save  # noqa: E402
from pvae.vae.render import PORE_COLOUR, interface_quads, render_pore_spaces  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _axes(image):
    fig = plt.figure(figsize=(3.6, 3.6))
    ax = fig.add_subplot(projection="3d")
    depth, height, width = image.shape
    ax.set(xlim=(0, width), ylim=(0, height), zlim=(0, depth))
    ax.set_box_aspect((width, height, depth))
    ax.set_axis_off()
    return fig, ax


def matplotlib_faces(image, path: Path) -> None:
    """The voxel faces as one shaded ``Poly3DCollection`` (sorted by depth per face)."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    quads = interface_quads(image)
    normal = np.cross(quads[:, 1] - quads[:, 0], quads[:, 2] - quads[:, 0])
    light = np.abs(normal @ np.array([0.4, -0.5, 0.77]))
    fig, ax = _axes(image)
    colours = np.clip(np.outer(0.35 + 0.65 * light, PORE_COLOUR), 0, 1)
    ax.add_collection3d(Poly3DCollection(quads, facecolors=colours, edgecolor="none"))
    save(fig, path)


def matplotlib_voxels(image, path: Path) -> None:
    """``Axes3D.voxels`` of the pore voxels, (x, y, z) order."""
    fig, ax = _axes(image)
    ax.voxels(image.transpose(2, 1, 0), facecolor=PORE_COLOUR, edgecolor=None)
    save(fig, path)


def vtk_views(images, path: Path) -> None:
    """VTK off-screen views of all images (one render window), the first one saved."""
    views = render_pore_spaces(images)
    plt.imsave(path, views[0])


def timed(function, images, name: str) -> dict:
    start = time.perf_counter()
    function(images, RESULTS / f"render_{name}.png")
    seconds = time.perf_counter() - start
    return {"way": name, "views": len(images), "seconds_per_view": seconds / len(images)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/default"))
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args(argv)
    store = open_dataset(args.dataset)
    rows = np.flatnonzero(store.manifest["family"] == "foam")[: args.samples]
    images = [store.image(int(r)) for r in rows]
    faces = [len(interface_quads(image)) for image in images]
    results = [
        timed(vtk_views, images, "vtk"),
        timed(lambda ims, p: [matplotlib_faces(im, p) for im in ims], images, "matplotlib_faces"),
        timed(lambda ims, p: matplotlib_voxels(ims[0], p), images[:1], "matplotlib_voxels"),
    ]
    record = {
        **result_header(args.dataset, store),
        "faces_per_sample": faces,
        "results": results,
    }
    atomic_write_json(RESULTS / "render.json", record)
    lines = [
        "# 3D views of the pore space, headless",
        "",
        f"`{record['command']}` on {record['machine']['cpu']} ({record['machine']['cores']} "
        f"cores, load {record['machine']['load_average_1min']:.1f}), no display; "
        f"{len(images)} foam samples {list(store.shape)}, {int(np.mean(faces))} faces each.",
        "",
        "| way | views | s per view |",
        "|---|---|---|",
        *[f"| {r['way']} | {r['views']} | {r['seconds_per_view']:.3f} |" for r in results],
        "",
        "VTK's time includes opening the EGL context once. The pictures are "
        "`render_<way>.png`: matplotlib's faces are sorted whole by depth, so hidden faces "
        "show through, and its `voxels` of a foam's pore phase is a closed block; VTK's "
        "z-buffer draws the same faces as they are, so pvae's figures use VTK.",
    ]
    atomic_write_bytes(RESULTS / "render.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
