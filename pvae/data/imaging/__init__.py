"""Reading and writing voxel images: BMP slice folders, multi-page TIFF, ``.npy``."""

from pvae.data.imaging.binarize import Binarization, binarize
from pvae.data.imaging.read import read_grey, read_image, sample_id_of
from pvae.data.imaging.write import write_bmp_stack, write_image

__all__ = [
    "Binarization",
    "binarize",
    "read_grey",
    "read_image",
    "sample_id_of",
    "write_bmp_stack",
    "write_image",
]
