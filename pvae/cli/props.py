"""``pvae props IMAGE``: porosity and permeability of one sample image."""

from pathlib import Path

import numpy as np

from pvae.cli.options import (
    add_binarization,
    add_lbm,
    binarization,
    lbm_settings,
    print_json,
)
from pvae.core.errors import PvaeError
from pvae.data.imaging import read_image
from pvae.physics import porosity


def register(commands) -> None:
    """Add ``pvae props``."""
    parser = commands.add_parser(
        "props", help="porosity and LBM permeability of one image (.npy, .tif, BMP folder)"
    )
    parser.add_argument("image", type=Path, help=".npy, .tif/.tiff or a folder of .bmp slices")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--no-permeability", action="store_true", help="porosity only (skip the LBM solve)"
    )
    parser.add_argument(
        "--pore-averaged",
        action="store_true",
        help="also report K with the pore-averaged velocity (the research code's formula)",
    )
    parser.add_argument("--voxel-size", type=float, help="voxel edge in metres: also K in m^2")
    parser.add_argument(
        "--kozeny-carman",
        action="store_true",
        help="also the Kozeny-Carman estimate (smooth specific surface; a cheap baseline)",
    )
    add_binarization(parser)
    add_lbm(parser)
    parser.set_defaults(run=run)


def sample_properties(
    image: np.ndarray, settings=None, device="cpu", voxel_size=None, kozeny_carman=False
) -> dict:
    """The properties ``pvae props --json`` prints for one image.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axes (z, y, x).
    settings : LBMSettings, optional
        Solve for permeability with these settings; None = porosity only.
    device : str
        Device of the LBM solve.
    voxel_size : float, optional
        Voxel edge in metres (adds ``permeability_m2``).
    kozeny_carman : bool
        Add ``kozeny_carman`` (scalar K estimate, lattice units, superficial) and
        ``specific_surface`` (1/voxel).

    Returns
    -------
    dict
        ``porosity``, ``shape``; with settings also ``permeability`` (3x3, lattice
        units, superficial, [i][j] with i, j in (x, y, z), x = last array axis),
        ``converged``, ``steps`` (per forcing direction x, y, z), ``percolating``.
    """
    result = {"porosity": porosity(image), "shape": list(image.shape)}
    if kozeny_carman:
        from pvae.physics.kozeny_carman import kozeny_carman as estimate
        from pvae.physics.kozeny_carman import specific_surface

        result["kozeny_carman"] = estimate(image)
        result["specific_surface"] = specific_surface(image)
    if settings is None:
        return result
    from pvae.physics.lbm import permeability

    lbm = permeability(image, settings, voxel_size=voxel_size, device=device)
    result.update(
        permeability=lbm.k.tolist(),
        converged=lbm.converged.tolist(),
        steps=lbm.steps.tolist(),
        percolating=lbm.percolating.tolist(),
        lbm_settings={"collision": settings.collision, "tau": settings.tau, "tol": settings.tol},
    )
    if voxel_size is not None:
        result["permeability_m2"] = lbm.k_m2.tolist()
    return result


def _format(path: Path, result: dict, pore_averaged: bool) -> str:
    lines = [
        f"image         {path}",
        f"shape         {' x '.join(map(str, result['shape']))} (z, y, x)",
        f"porosity      {result['porosity']:.6f}",
    ]
    if "permeability" in result:
        k = np.array(result["permeability"])
        lines.append("permeability  lattice units, superficial velocity; rows/cols x, y, z")
        lines += [f"              {row[0]: .5e} {row[1]: .5e} {row[2]: .5e}" for row in k]
        if pore_averaged:
            lines.append(f"pore-averaged diag {np.diag(k) / result['porosity']}")
        if "permeability_m2" in result:
            lines.append(f"K (m^2) diag  {np.diag(np.array(result['permeability_m2']))}")
        state = ", ".join(
            f"{axis}: {'converged' if ok else 'NOT converged'} after {steps} steps"
            if perc
            else f"{axis}: no percolating path (K = 0)"
            for axis, ok, steps, perc in zip(
                "xyz", result["converged"], result["steps"], result["percolating"], strict=True
            )
        )
        lines.append(f"convergence   {state}")
    if "kozeny_carman" in result:
        lines.append(
            f"Kozeny-Carman {result['kozeny_carman']:.5e} (scalar estimate; specific surface "
            f"{result['specific_surface']:.4f} per voxel)"
        )
    return "\n".join(lines)


def run(args) -> None:
    from pvae.core.device import resolve_device

    if args.voxel_size is not None and not args.voxel_size > 0:
        raise PvaeError(f"--voxel-size {args.voxel_size}: must be > 0 (metres)")
    image = read_image(args.image, binarization(args))
    settings = None if args.no_permeability else lbm_settings(args)
    device = str(resolve_device(args.device))
    result = sample_properties(image, settings, device, args.voxel_size, args.kozeny_carman)
    if args.pore_averaged and "permeability" in result:
        result["permeability_pore_averaged"] = (
            np.array(result["permeability"]) / result["porosity"]
        ).tolist()
    if args.json:
        print_json(result)
    else:
        print(_format(args.image, result, args.pore_averaged))
