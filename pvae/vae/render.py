"""3D views of voxel structures: the pore space rendered off-screen by VTK, as RGB arrays.

The surface drawn is the boundary of the pore space (the pore-solid interface), voxel
faces exactly as they are (no smoothing), so a channel that is blocked along one axis
shows as blocked. Each face is blue where the viewer looks at it from the pore and tan
where from the solid: pore channels in a dense solid show as tan tubes, the struts of a
foam as blue. Rendering is VTK's OpenGL pipeline off-screen: on a machine without a
display it uses EGL (Mesa's software rasteriser where there is no GPU), so it runs
headless on laptops, CI and cluster nodes alike. The figures embed the returned arrays
with matplotlib (:mod:`pvae.vae.figures`).

Why VTK: measured by ``bench/bench_render.py`` on a 2-core CPU machine without a display
(``bench/results/render.md``): VTK is depth-correct and fast; matplotlib's
``Poly3DCollection`` of the same faces is as fast but sorts whole faces by depth, so
hidden faces show through visible ones; matplotlib ``voxels`` takes tens of seconds per
view. VTK also writes the ``.vti`` files, so it adds no dependency.
"""

import os

import numpy as np
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL back end)
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkCubeSource
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkPolyDataMapper,
    vtkProperty,
    vtkRenderer,
    vtkRenderWindow,
    vtkWindowToImageFilter,
)

PORE_COLOUR = (0.27, 0.51, 0.71)  # steel blue: the interface seen from the pore
SOLID_COLOUR = (0.80, 0.68, 0.48)  # tan: the interface seen from the solid
BOX_COLOUR = (0.25, 0.25, 0.25)
# the unit square of a face normal to array axis a (z, y, x), as offsets in (z, y, x),
# counter-clockwise about the -a direction (right-hand normal towards -a)
_FACE_CORNERS = {
    0: np.array([[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]]),
    1: np.array([[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]]),
    2: np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]),
}


def interface_quads(image: np.ndarray) -> np.ndarray:
    """The faces between pore and solid voxels inside the sample.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axes (z, y, x).

    Returns
    -------
    np.ndarray of float, shape (F, 4, 3)
        Corner coordinates of each face in (x, y, z) order, voxel edge = 1, the sample
        spanning [0, X] x [0, Y] x [0, Z], ordered counter-clockwise as seen from the
        pore side (the right-hand normal points into the pore). Faces on the sample's
        outer box are not included (the sample is periodic: its box is a cut, not a wall).
    """
    image = np.asarray(image, dtype=bool)
    quads = []
    for axis in range(3):
        ahead = [slice(None)] * 3
        ahead[axis] = slice(1, None)
        behind = [slice(None)] * 3
        behind[axis] = slice(None, -1)
        pore_ahead = image[tuple(ahead)]
        cells = np.argwhere(pore_ahead != image[tuple(behind)])  # (F, 3) z, y, x
        forward = pore_ahead[tuple(cells.T)]  # the pore lies towards +axis
        cells[:, axis] += 1  # the face lies on the far side of the voxel behind
        corners = cells[:, None, :] + _FACE_CORNERS[axis][None]  # normal -axis in (x, y, z)
        corners[forward] = corners[forward][:, ::-1]  # reversed: normal +axis
        quads.append(corners)
    return np.concatenate(quads)[..., ::-1].astype(float)


def _surface(image: np.ndarray) -> vtkPolyData:
    quads = interface_quads(image)
    points = vtkPoints()
    points.SetData(numpy_to_vtk(quads.reshape(-1, 3), deep=True))
    offsets = np.arange(0, 4 * len(quads) + 1, 4, dtype=np.int64)
    connectivity = np.arange(4 * len(quads), dtype=np.int64)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(connectivity, deep=True))  # fmt: skip
    surface = vtkPolyData()
    surface.SetPoints(points)
    surface.SetPolys(cells)
    return surface


def _actor(source, colour, opacity=1.0, wireframe=False) -> vtkActor:
    mapper = vtkPolyDataMapper()
    if isinstance(source, vtkPolyData):
        mapper.SetInputData(source)
    else:
        mapper.SetInputConnection(source.GetOutputPort())
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*colour)
    prop.SetOpacity(opacity)
    if wireframe:
        prop.SetRepresentationToWireframe()
        prop.LightingOff()
    return actor


def _window(size: tuple[int, int]) -> vtkRenderWindow:
    if not os.environ.get("DISPLAY"):  # headless: EGL directly, not X first
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    window = vtkRenderWindow()
    window.SetOffScreenRendering(True)
    window.SetSize(*size)
    window.SetMultiSamples(4)
    return window


def render_pore_spaces(images, size: tuple[int, int] = (360, 360)) -> list[np.ndarray]:
    """Off-screen 3D views of the pore space of each image, from one common viewpoint.

    Parameters
    ----------
    images : sequence of np.ndarray of bool, each shape (Z, Y, X)
        ``True`` = pore, axes (z, y, x).
    size : (int, int)
        Width and height of each view in pixels.

    Returns
    -------
    list of np.ndarray of uint8, shape (H, W, 3)
        RGB views: the pore-solid interface in blue inside the sample's outlined box,
        seen from the (+x, -y, +z) octant with z up; white background.
    """
    window = _window(size)
    views = []
    for image in images:
        depth, height, width = np.asarray(image).shape
        renderer = vtkRenderer()
        renderer.SetBackground(1.0, 1.0, 1.0)
        surface = _actor(_surface(image), PORE_COLOUR)
        solid_side = vtkProperty()
        solid_side.SetColor(*SOLID_COLOUR)
        surface.SetBackfaceProperty(solid_side)
        renderer.AddActor(surface)
        box = vtkCubeSource()
        box.SetBounds(0, width, 0, height, 0, depth)
        renderer.AddActor(_actor(box, BOX_COLOUR, wireframe=True))
        camera = renderer.GetActiveCamera()
        centre = np.array([width, height, depth]) / 2
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre + np.array([1.6, -2.2, 1.5]) * max(width, height, depth)))
        camera.SetViewUp(0, 0, 1)
        renderer.ResetCamera()
        window.AddRenderer(renderer)
        window.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        pixels = grab.GetOutput()
        w, h, _ = pixels.GetDimensions()
        rgb = vtk_to_numpy(pixels.GetPointData().GetScalars()).reshape(h, w, 3)
        views.append(rgb[::-1].copy())  # VTK's rows run bottom-up
        window.RemoveRenderer(renderer)
    window.Finalize()
    return views
