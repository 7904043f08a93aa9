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
from pvae.core.atomic import check_out
from pvae.core.errors import PvaeError
from pvae.data.imaging import read_image
from pvae.physics import porosity


def register(commands) -> None:
    """Add ``pvae props``."""
    parser = commands.add_parser(
        "props",
        help="porosity and LBM permeability of one image (.npy, .tif, .vti, BMP folder)",
        description="Porosity and the LBM permeability tensor of one image. With "
        "--flow-field OUT.vti also the steady velocity fields of the same solve, for "
        "ParaView: cell arrays pore (1 = pore), and per forcing axis A with a percolating "
        "path velocity_A (vector, x y z components) and speed_A (magnitude), in lattice "
        "units (voxel edges per time step; the body force is FieldData body_force); "
        "spacing = --voxel-size in metres, else 1.",
    )
    parser.add_argument(
        "image", type=Path, help=".npy, .tif/.tiff, .vti or a folder of .bmp slices"
    )
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
    parser.add_argument(
        "--flow-field",
        type=Path,
        metavar="OUT.vti",
        help="write the pore space and the velocity fields of the permeability solve "
        "(velocity_x/speed_x for the force along x, ...; lattice units) as VTK ImageData",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --flow-field file"
    )
    add_binarization(parser)
    add_lbm(parser)
    parser.set_defaults(run=run)


def sample_properties(
    image: np.ndarray,
    settings=None,
    device="cpu",
    voxel_size=None,
    kozeny_carman=False,
    lbm=None,
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
    lbm : PermeabilityResult, optional
        The solve of ``image`` with ``settings`` when already done (e.g. by
        :func:`pvae.physics.lbm.permeability_with_flow`); None solves here.

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
    if lbm is None:
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


def write_flow_field(
    path: Path,
    image: np.ndarray,
    fields,
    lbm,
    voxel_size: float | None = None,
    force: float | None = None,
) -> Path:
    """Write ``pvae props --flow-field``'s ``.vti``: the structure and the flow fields.

    Parameters
    ----------
    path : Path
        Target ``.vti`` file (written atomically).
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore, axes (z, y, x).
    fields : list of FlowField
        From :func:`pvae.physics.lbm.permeability_with_flow`; each percolating one
        becomes the cell arrays ``velocity_<axis>`` (vector (x, y, z)) and
        ``speed_<axis>`` (magnitude), lattice units.
    lbm : PermeabilityResult
        The same solve: its porosity, tensor and convention go into the FieldData.
    voxel_size : float, optional
        Spacing in metres (else 1).
    force : float, optional
        Body-force density of the solve (lattice units), stored as ``body_force``.
    """
    from pvae.data.imaging.vti import write_vti

    arrays = {}
    for flow in fields:
        if flow.percolating:
            arrays[f"velocity_{flow.name}"] = flow.velocity
            arrays[f"speed_{flow.name}"] = flow.magnitude
    field_data = {
        "porosity": lbm.porosity,
        "permeability": lbm.k,  # row-major 3x3, (x, y, z), lattice units
        "convention": lbm.convention,
        "velocity_units": "lattice (voxel edges per time step)",
    }
    if force is not None:
        field_data["body_force"] = force
    return write_vti(image, path, voxel_size, arrays, field_data)


def run(args) -> None:
    from pvae.core.device import resolve_device

    if args.voxel_size is not None and not args.voxel_size > 0:
        raise PvaeError(f"--voxel-size {args.voxel_size}: must be > 0 (metres)")
    if args.flow_field is not None:
        if args.no_permeability:
            raise PvaeError("--flow-field needs the LBM solve; drop --no-permeability")
        if args.flow_field.suffix.lower() != ".vti":
            raise PvaeError(f"--flow-field {args.flow_field}: give a .vti file name")
        check_out(args.flow_field, args.overwrite)
    image = read_image(args.image, binarization(args))
    settings = None if args.no_permeability else lbm_settings(args)
    device = str(resolve_device(args.device))
    lbm, fields = None, []
    if args.flow_field is not None:
        from pvae.physics.lbm import permeability_with_flow

        lbm, fields = permeability_with_flow(
            image, settings, voxel_size=args.voxel_size, device=device
        )
        write_flow_field(args.flow_field, image, fields, lbm, args.voxel_size, settings.force)
    result = sample_properties(
        image, settings, device, args.voxel_size, args.kozeny_carman, lbm=lbm
    )
    if args.pore_averaged and "permeability" in result:
        result["permeability_pore_averaged"] = (
            np.array(result["permeability"]) / result["porosity"]
        ).tolist()
    if args.json:
        print_json(result)
    else:
        print(_format(args.image, result, args.pore_averaged))
        if args.flow_field is not None:
            axes = "/".join(flow.name for flow in fields if flow.percolating) or "none"
            print(
                f"flow field    {args.flow_field} (velocity_A, speed_A for the force along "
                f"A = {axes}; lattice units)"
            )
