"""Reading and writing voxel images: BMP slice folders, multi-page TIFF, ``.npy``, VTK ``.vti``."""

from pvae.data.imaging.binarize import Binarization, binarize
from pvae.data.imaging.read import read_grey, read_image, sample_id_of
from pvae.data.imaging.vti import read_vti, write_vti
from pvae.data.imaging.write import (
    STRUCTURE_FORMATS,
    structure_formats,
    write_bmp_stack,
    write_image,
    write_structure,
)

__all__ = [
    "STRUCTURE_FORMATS",
    "Binarization",
    "binarize",
    "read_grey",
    "read_image",
    "read_vti",
    "sample_id_of",
    "structure_formats",
    "write_bmp_stack",
    "write_image",
    "write_structure",
    "write_vti",
]
