"""VTK ImageData files (``.vti``): voxel images and fields on them, readable in ParaView.

Written and read by VTK's own XML writer and reader (``vtkXMLImageDataWriter`` /
``vtkXMLImageDataReader``; zlib-compressed binary appended data). Layout:

* each voxel is one VTK **cell**: voxel (z, y, x) of an array of shape (Z, Y, X) is the
  cell (i, j, k) = (x, y, z), so the extent is ``0 X 0 Y 0 Z`` (points), the origin is 0,
  and the C-order ravel of the array is exactly VTK's x-fastest cell order;
* the spacing is the voxel edge in metres when known, else 1 (lattice units);
* the structure is the cell array ``pore`` (uint8, 1 = pore, 0 = solid);
* further cell arrays are scalar fields (shape (Z, Y, X)) or vector fields (shape
  (3, Z, Y, X), components in (x, y, z) order, stored as VTK 3-component tuples);
* numbers describing the whole sample (porosity, the permeability tensor, ...) go in the
  dataset's FieldData; strings too (as ``vtkStringArray``).

Reading other programs' ``.vti`` files: :func:`read_vti_grey` takes the ``pore`` cell
array when there is one, else the first one-component cell array, else the first
one-component point array (one voxel per point, as CT exports often store them).
"""

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from pvae.core.atomic import atomic_file
from pvae.core.errors import PvaeError

PORE = "pore"
"""Name of the cell array holding the structure (uint8, 1 = pore)."""


@contextlib.contextmanager
def _vtk_messages() -> Iterator[list[str]]:
    """Collect VTK's error and warning text instead of printing it; yields a list that
    holds the text (one entry, possibly empty) once the block ends."""
    from vtkmodules.vtkCommonCore import vtkLogger, vtkOutputWindow, vtkStringOutputWindow

    messages: list[str] = []
    previous_window = vtkOutputWindow.GetInstance()
    previous_verbosity = vtkLogger.GetCurrentVerbosityCutoff()
    window = vtkStringOutputWindow()
    vtkOutputWindow.SetInstance(window)
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)
    try:
        yield messages
    finally:
        vtkOutputWindow.SetInstance(previous_window)
        vtkLogger.SetStderrVerbosity(previous_verbosity)
        messages.append(window.GetOutput())


def _first_error(text: str) -> str:
    """The first message line of VTK's error text (what a user can act on)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(("ERROR:", "Warning:")) and "): " in line:
            return line.split("): ", 1)[1]
    return lines[0] if lines else "unknown VTK error"


def _cell_array(name: str, values: np.ndarray):
    from vtkmodules.util.numpy_support import numpy_to_vtk

    array = numpy_to_vtk(np.ascontiguousarray(values), deep=True)
    array.SetName(name)
    return array


def _field_array(name: str, value):
    if isinstance(value, str):
        from vtkmodules.vtkCommonCore import vtkStringArray

        array = vtkStringArray()
        array.SetName(name)
        array.InsertNextValue(value)
        return array
    values = np.asarray(value, dtype=np.float64).reshape(1, -1)  # one tuple
    return _cell_array(name, values if values.shape[1] > 1 else values[:, 0])


def write_vti(
    image: np.ndarray,
    path: str | Path,
    voxel_size: float | None = None,
    fields: Mapping[str, np.ndarray] | None = None,
    field_data: Mapping[str, float | str | np.ndarray] | None = None,
) -> Path:
    """Write a voxel image (and fields on it) as a VTK ImageData ``.vti`` file, atomically.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axis order (z, y, x); stored as the uint8 cell array ``pore``.
    path : str or Path
        Target file (conventionally ``*.vti``); appears only once complete.
    voxel_size : float, optional
        Voxel edge in metres, used as the spacing; None = 1 (lattice units).
    fields : mapping of str to np.ndarray, optional
        Extra cell arrays: scalars of shape (Z, Y, X) or vectors of shape (3, Z, Y, X)
        with components in (x, y, z) order. Stored with their dtype (bool as uint8).
    field_data : mapping of str to float, str or array, optional
        Whole-sample values stored as FieldData: a number or a string as one value, an
        array (e.g. a (3, 3) tensor) as one tuple of its C-order entries.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    PvaeError
        If a field does not fit the image shape, or the file cannot be written.
    """
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOXML import vtkXMLImageDataWriter

    path = Path(path)
    image = np.asarray(image)
    if image.ndim != 3 or 0 in image.shape:
        raise PvaeError(f"{path}: a .vti image must be a 3D (Z, Y, X) volume, got {image.shape}")
    nz, ny, nx = image.shape
    if voxel_size is not None and not voxel_size > 0:
        raise PvaeError(f"{path}: voxel size {voxel_size} must be > 0 (metres)")
    spacing = float(voxel_size) if voxel_size is not None else 1.0

    data = vtkImageData()
    data.SetExtent(0, nx, 0, ny, 0, nz)  # points; one cell per voxel
    data.SetOrigin(0.0, 0.0, 0.0)
    data.SetSpacing(spacing, spacing, spacing)
    cells = data.GetCellData()
    cells.AddArray(_cell_array(PORE, image.astype(np.uint8).ravel()))
    cells.SetActiveScalars(PORE)
    for name, values in (fields or {}).items():
        values = np.asarray(values)
        if values.dtype == np.bool_:
            values = values.astype(np.uint8)
        if values.shape == image.shape:
            cells.AddArray(_cell_array(name, values.ravel()))
        elif values.shape == (3, *image.shape):
            cells.AddArray(_cell_array(name, np.moveaxis(values, 0, -1).reshape(-1, 3)))
        else:
            raise PvaeError(
                f"{path}: field {name!r} has shape {values.shape}; expected {image.shape} "
                f"(scalar) or {(3, *image.shape)} (vector, x y z)"
            )
    for name, value in (field_data or {}).items():
        data.GetFieldData().AddArray(_field_array(name, value))

    writer = vtkXMLImageDataWriter()
    writer.SetInputData(data)
    writer.SetDataModeToAppended()
    writer.EncodeAppendedDataOff()  # raw binary, not base64
    writer.SetCompressorTypeToZLib()
    writer.SetHeaderTypeToUInt64()  # arrays over 4 GiB
    with atomic_file(path) as temp:
        writer.SetFileName(str(temp))
        with _vtk_messages() as messages:
            ok = writer.Write()
        if ok != 1:  # atomic_file removes what was written
            raise PvaeError(f"{path}: cannot write .vti ({_first_error(messages[0])})")
    return path


def _read(path: Path):
    """The ``vtkImageData`` of a ``.vti`` file; :class:`PvaeError` naming it on failure."""
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    if not path.is_file():
        raise PvaeError(f"{path}: no such file")
    reader = vtkXMLImageDataReader()
    with _vtk_messages() as messages:
        readable = reader.CanReadFile(str(path))
        if readable:
            reader.SetFileName(str(path))
            reader.Update()
    if not readable:
        raise PvaeError(f"{path}: not a VTK ImageData (.vti) file")
    if messages[0].strip():
        raise PvaeError(f"{path}: not a readable .vti file ({_first_error(messages[0])})")
    return reader.GetOutput()


def _numpy(array) -> np.ndarray:
    from vtkmodules.util.numpy_support import vtk_to_numpy

    return np.array(vtk_to_numpy(array))  # a copy: the VTK object goes away


def _cell_shape(data) -> tuple[int, int, int]:
    nx, ny, nz = (max(n - 1, 1) for n in data.GetDimensions())
    return nz, ny, nx


def _as_field(values: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    if values.ndim == 1:
        return values.reshape(shape)
    return np.ascontiguousarray(np.moveaxis(values.reshape(*shape, -1), -1, 0))


def read_vti_grey(path: str | Path) -> np.ndarray:
    """The voxel values of a ``.vti`` file, before binarisation.

    Parameters
    ----------
    path : str or Path
        A ``.vti`` file.

    Returns
    -------
    np.ndarray, shape (Z, Y, X)
        The ``pore`` cell array (uint8 0/1) of a pvae file; otherwise the first
        one-component cell array, else the first one-component point array.

    Raises
    ------
    PvaeError
        Naming the file, when it is not a readable ``.vti`` or holds no scalar array.
    """
    path = Path(path)
    data = _read(path)
    cells, points = data.GetCellData(), data.GetPointData()
    if cells.GetArray(PORE) is not None:
        return _as_field(_numpy(cells.GetArray(PORE)), _cell_shape(data))
    for arrays, dims in ((cells, _cell_shape(data)), (points, data.GetDimensions()[::-1])):
        for i in range(arrays.GetNumberOfArrays()):
            array = arrays.GetArray(i)
            if array is not None and array.GetNumberOfComponents() == 1:
                return _numpy(array).reshape(dims)
    raise PvaeError(f"{path}: no scalar cell or point array to read as a voxel image")


def read_vti(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read a ``.vti`` file written by :func:`write_vti`.

    Parameters
    ----------
    path : str or Path
        A ``.vti`` file with a ``pore`` cell array.

    Returns
    -------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axis order (z, y, x).
    fields : dict of str to np.ndarray
        The other cell arrays: scalars shape (Z, Y, X), vectors shape (C, Z, Y, X) with
        components in (x, y, z) order.

    Raises
    ------
    PvaeError
        Naming the file, when it is not a readable ``.vti`` or has no ``pore`` array.
    """
    path = Path(path)
    data = _read(path)
    cells = data.GetCellData()
    shape = _cell_shape(data)
    if cells.GetArray(PORE) is None:
        raise PvaeError(f"{path}: no cell array {PORE!r} (not written by pvae)")
    image = _as_field(_numpy(cells.GetArray(PORE)), shape) != 0
    fields = {}
    for i in range(cells.GetNumberOfArrays()):
        array = cells.GetArray(i)
        if array is not None and array.GetName() != PORE:
            fields[array.GetName()] = _as_field(_numpy(array), shape)
    return image, fields


def read_vti_field_data(path: str | Path) -> dict[str, float | str | np.ndarray]:
    """The FieldData of a ``.vti`` file: one number, string or 1-D array per name."""
    path = Path(path)
    field_data = _read(path).GetFieldData()
    out: dict[str, float | str | np.ndarray] = {}
    for i in range(field_data.GetNumberOfArrays()):
        array = field_data.GetAbstractArray(i)
        if array.IsA("vtkStringArray"):
            out[array.GetName()] = array.GetValue(0)
        else:
            values = _numpy(array).ravel()
            out[array.GetName()] = float(values[0]) if values.size == 1 else values
    return out
