"""``pvae props IMAGE``: properties of one sample image."""

from pathlib import Path

from pvae.cli.options import add_binarization, binarization, print_json
from pvae.imaging import read_image
from pvae.physics import porosity


def register(commands) -> None:
    """Add ``pvae props``."""
    parser = commands.add_parser(
        "props", help="porosity (and permeability) of one image: .npy, .tif or a BMP folder"
    )
    parser.add_argument("image", type=Path, help=".npy, .tif/.tiff or a folder of .bmp slices")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_binarization(parser)
    parser.set_defaults(run=run)


def sample_properties(image) -> dict:
    """The properties ``pvae props`` reports for a boolean image (Z, Y, X)."""
    return {"porosity": porosity(image), "shape": list(image.shape)}


def run(args) -> None:
    image = read_image(args.image, binarization(args))
    result = sample_properties(image)
    if args.json:
        print_json(result)
        return
    print(f"image     {args.image}")
    print(f"shape     {' x '.join(map(str, result['shape']))} (z, y, x)")
    print(f"porosity  {result['porosity']:.6f}")
