"""``pvae interpolate``: decode along a latent path and verify every step by physics."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pvae.core.atomic import atomic_directory, check_out
from pvae.core.errors import PvaeError
from pvae.data.imaging import structure_formats, write_structure
from pvae.data.store.reader import VoxelStore
from pvae.design.latent import decode, lerp, slerp
from pvae.physics.lbm import LBMSettings
from pvae.vae.figures import interpolation_plot
from pvae.vae.inference import infer
from pvae.vae.loading import LoadedModel
from pvae.vae.render import render_pore_spaces
from pvae.vae.verification import verify_structures

METHODS = {"slerp": slerp, "linear": lerp}
INTERPOLATION_FORMATS = ("npy", "tif", "vti")
"""Default formats of each step's structure (:func:`pvae.data.imaging.write_structure`)."""


def interpolate(
    loaded: LoadedModel,
    store: VoxelStore,
    start_id: str,
    end_id: str,
    steps: int,
    method: str = "slerp",
    out: str | Path | None = None,
    settings: LBMSettings | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    formats: str | Sequence[str] = INTERPOLATION_FORMATS,
) -> pd.DataFrame:
    """Interpolate between two samples' latent means and verify each decoded step.

    Parameters
    ----------
    loaded : LoadedModel
    store : VoxelStore
        Holds both samples (same image shape as the model).
    start_id, end_id : str
        Sample IDs.
    steps : int
        Points on the path including both ends (>= 2).
    method : str
        ``slerp`` or ``linear``.
    out : str or Path, optional
        Directory for the step volumes (``step_XX.npy`` and the other ``formats``),
        ``path.parquet`` and ``interpolation.png`` (written atomically).
    settings : LBMSettings, optional
        Solver settings of the verification.
    device : str
    overwrite : bool
        Replace an existing non-empty ``out``.
    formats : str or sequence of str
        Files of each step, from ``npy``, ``tif``, ``bmp``, ``vti`` (or one
        comma-separated string); ``npy`` is always written (``path.parquet`` refers to it).

    Returns
    -------
    pd.DataFrame
        One row per step: ``step``, ``t``, ``predicted_<target>`` (regressor at z),
        verified porosity and permeability (:func:`verify_structures`), ``file``.
    """
    formats = structure_formats(formats)
    if out is not None:
        check_out(out, overwrite)
    if method not in METHODS:
        raise PvaeError(f"--method {method}: choose slerp or linear")
    if steps < 2:
        raise PvaeError(f"--steps {steps}: need at least 2 (the two end points)")
    loaded.check_shape(store)
    ends = [store.index_of(start_id), store.index_of(end_id)]
    mu = infer(loaded.model, loaded.normalizer, store, ends)["mu"]
    t = np.linspace(0.0, 1.0, steps)
    z = METHODS[method](mu[0], mu[1], t)
    images, predicted = decode(loaded, z)
    table = pd.DataFrame({"step": np.arange(steps), "t": t})
    for j, name in enumerate(loaded.targets):
        table[f"predicted_{name}"] = predicted[:, j]
    table = pd.concat([table, verify_structures(images, settings, device)], axis=1)
    table["file"] = [f"step_{i:02d}.npy" for i in range(steps)]
    table.attrs = {"from": start_id, "to": end_id, "method": method}
    if out is not None:
        with atomic_directory(out, overwrite=overwrite) as tmp:
            for i, image in enumerate(images):
                write_structure(image, tmp, f"step_{i:02d}", formats)
            table.to_parquet(tmp / "path.parquet", index=False)
            interpolation_plot(
                images,
                render_pore_spaces(images),
                table,
                f"{method}: {start_id} -> {end_id}",
                tmp / "interpolation.png",
            )
    return table
