"""Running inverse design for one or many targets and writing what a user inspects.

Per target (``DIR`` or ``DIR/<id>/`` for many): ``designs.parquet`` (one row per
candidate: predicted, critic and verified properties, errors, novelty, file),
``designs.json``, ``designs.png``, and each candidate as ``candidate_XX.npy`` (True =
pore) plus, by default, ``candidate_XX.tif``, ``candidate_XX_bmp/`` (the research code's
slice format) and ``candidate_XX.vti`` (VTK ImageData for ParaView); ``formats`` chooses.
Always ``summary.parquet`` / ``summary.json``: per target the best design's verdict
and novelty beside the lookup baseline's verdict (the nearest pool sample,
:func:`pvae.design.pool.lookup`), so a user sees at once whether design beat lookup.
With a critic, the run fine-tunes it on its verified designs (:mod:`pvae.design.active`)
and writes the tuned critic as ``critic_tuned.pt``; ``summary.json`` records, per
round, the critic's error on the designs before it learned them.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pvae.core.atomic import atomic_directory, atomic_write_json
from pvae.core.progress import progress_bar
from pvae.data.imaging import structure_formats, write_structure
from pvae.design.active import CriticLearner
from pvae.design.design_space import DesignSpace, outside_note
from pvae.design.inverse import InverseSettings, design
from pvae.design.novelty import NoveltyIndex
from pvae.design.pool import DesignPool, lookup
from pvae.design.targets import K_TARGETS, coverage_problems
from pvae.physics.lbm import LBMSettings, flow_fields
from pvae.surrogate import SurrogateEnsemble
from pvae.vae.figures import designs_plot
from pvae.vae.loading import LoadedModel
from pvae.vae.render import render_pore_spaces

INVERSE_FORMATS = ("npy", "tif", "bmp", "vti")
"""Default formats of each designed structure (:func:`pvae.data.imaging.write_structure`)."""
SHOWN = 3
"""Designs drawn in ``designs.png`` (each costs one LBM flow solve)."""


def design_figure(images, table, target: dict, path: Path, lbm=None, device="cpu") -> Path:
    """``designs.png``: the best designs in 3D, their middle slices and their LBM flow.

    Parameters
    ----------
    images : sequence of np.ndarray of bool, shape (D, H, W)
        Designs, best first (``True`` = pore); the first :data:`SHOWN` are drawn.
    table : pd.DataFrame
        Their rows of ``designs.parquet``, same order.
    target : dict
        Property -> target value; the flow is driven along the axis of the largest
        permeability the target asks for (x when it asks for none).
    lbm : LBMSettings, optional
        Settings of the flow solve (one forcing direction per design shown).
    device : str
    """
    shown = list(images[:SHOWN])
    asked = [prop for prop in K_TARGETS if prop in target]
    axis = K_TARGETS.index(max(asked, key=target.get)) if asked else 0
    flows = []
    for image in shown:
        (field,) = flow_fields(image, lbm or LBMSettings(), axes=(axis,), device=device)
        flows.append((field.magnitude, axis) if field.percolating else None)
    views = render_pore_spaces(shown)
    return designs_plot(shown, views, flows, table.head(SHOWN), target, path)


def _write_designs(
    folder: Path, table: pd.DataFrame, images, target: dict, baseline, formats, lbm, device
) -> None:
    files = []
    for rank, image in enumerate(images, start=1):
        files.append(write_structure(image, folder, f"candidate_{rank:02d}", formats).name)
    table["file"] = files
    table.to_parquet(folder / "designs.parquet", index=False)
    atomic_write_json(
        folder / "designs.json",
        {
            "target": target,
            "success": bool(table["success"].any()),
            "best": table.iloc[0].to_dict(),
            "candidates": len(table),
            "baseline": baseline,
        },
    )
    design_figure(images, table, target, folder / "designs.png", lbm, device)


def _summary_json(summary: pd.DataFrame, pool: DesignPool | None, critic_file, learner) -> dict:
    designed = summary[summary["status"] == "designed"]
    attempted = summary[summary["status"] != "outside_training_data"]

    def rate(column, part):
        return float(part[column].mean()) if len(part) else None

    return {
        "targets": len(summary),
        "designed": len(designed),
        "outside_training_data": int((summary["status"] == "outside_training_data").sum()),
        "success_rate": rate("success", attempted),
        "baseline_success_rate": rate("baseline_success", attempted),
        "median_novelty": float(designed["novelty"].median()) if len(designed) else None,
        "pool": pool.description if pool is not None else None,
        "critic": str(critic_file) if critic_file is not None else None,
        "active_learning": None if learner is None else learner.summary(),
    }


def run_inverse(
    loaded: LoadedModel,
    targets: list[tuple[str, dict]],
    out: str | Path,
    pool: DesignPool | None = None,
    settings: InverseSettings | None = None,
    lbm: LBMSettings | None = None,
    device: str = "cpu",
    allow_extrapolation: bool = False,
    progress: bool | None = None,
    critic: SurrogateEnsemble | None = None,
    critic_file: str | Path | None = None,
    overwrite: bool = False,
    formats: str | Sequence[str] = INVERSE_FORMATS,
    prior=None,
) -> pd.DataFrame:
    """Design every target, verify, and write the results under ``out`` (atomically).

    Parameters
    ----------
    targets : list of (id, target)
        One target writes directly into ``out``; several into ``out/<id>/``.
    pool : DesignPool, optional
        Starts, novelty references and the lookup baseline.
    allow_extrapolation : bool
        Attempt targets outside the training data's ranges instead of reporting them.
        Targets inside the ranges but outside the pool's design space
        (:mod:`pvae.design.design_space`) are attempted, with a note naming the nearest
        reachable property vector.
    critic : SurrogateEnsemble, optional
        The physics critic (:func:`pvae.vae.critic.find_critic`), recorded as ``critic_file``.
    overwrite : bool
        Replace a non-empty ``out``.
    formats : str or sequence of str
        Files of each candidate, from ``npy``, ``tif``, ``bmp``, ``vti`` (or one
        comma-separated string); ``npy`` is always written (``designs.parquet`` refers to it).
    prior : optional
        The model's prior (:func:`pvae.vae.prior.find_prior`); a conditional one adds
        draws for each target to the candidates (:func:`pvae.design.inverse.design`).

    Returns
    -------
    pd.DataFrame
        One row per target: ``id``, ``status`` (``designed`` / ``outside_training_data``
        / ``no_novel_design``), ``success``, ``score``, ``novelty``, the target, the
        best candidate's predicted, critic and verified values, ``baseline_sample``,
        ``baseline_score``, ``baseline_success``, ``note``; with a pool also
        ``design_space_distance`` and ``design_space_radius`` (tolerance units) and the
        nearest reachable property vector, ``nearest_reachable`` (pool sample, axis
        order) and ``nearest_reachable_porosity`` / ``_k_xx`` / ``_k_yy`` / ``_k_zz``.
    """
    settings = settings or InverseSettings()
    formats = structure_formats(formats)
    learner = None
    if critic is not None and pool is not None and settings.critic_steps:
        learner = CriticLearner(critic, pool, settings.critic_steps, seed=settings.seed)
    index = NoveltyIndex(pool.images(), device) if pool is not None else None
    space = None
    if pool is not None:
        space = DesignSpace.of_rows(pool.store, pool.rows, pool.description, required=False)
    rows = []
    single = len(targets) == 1
    with (
        atomic_directory(out, overwrite=overwrite) as tmp,
        progress_bar(len(targets), "inverse design", progress, unit="target") as bar,
    ):
        for target_id, target in targets:
            row = {"id": target_id, **{f"target_{k}": v for k, v in target.items()}}
            problems = coverage_problems(target, loaded.target_ranges)  # not attempted
            beyond = []  # attempted: reaching beyond the catalogue is what design is for
            if space is not None:
                where = space.locate(target)
                row |= {"design_space_distance": where["distance"],
                        "design_space_radius": where["radius"],
                        "nearest_reachable": where["nearest_sample"]}  # fmt: skip
                row |= {f"nearest_reachable_{k}": v for k, v in where["nearest"].items()}
                if not where["inside"]:
                    beyond.append(outside_note(where, "the pool"))
            baseline = lookup(pool, target) if pool is not None else {}
            row |= baseline
            if problems and not allow_extrapolation:
                note = "; ".join(problems + beyond)
                rows.append(row | {"status": "outside_training_data", "success": False,
                                   "score": math.inf, "note": note})  # fmt: skip
                bar.update()
                continue
            table, images = design(loaded, target, pool, settings, lbm, device, critic, index,
                                   prior, learner, target_id)  # fmt: skip
            if not len(table):
                note = f"every optimised structure has novelty < {settings.min_novelty:g}"
                rows.append(row | {"status": "no_novel_design", "success": False,
                                   "score": math.inf, "note": note})  # fmt: skip
                bar.update()
                continue
            folder = tmp if single else tmp / target_id
            folder.mkdir(exist_ok=True)
            _write_designs(folder, table, images, target, baseline, formats, lbm, device)
            best = table.iloc[0]
            row |= {
                "status": "designed",
                "success": bool(best["success"]),
                "score": float(best["score"]),
                "novelty": float(best["novelty"]),
                "lbm_solves": int(table["lbm_solves"].sum()),
                "note": "; ".join(problems + beyond),
            }
            prefixes = ("verified_", "predicted_", "critic_")
            row |= {c: best[c] for c in table.columns if c.startswith(prefixes)}
            rows.append(row)
            bar.update()
        summary = pd.DataFrame(rows)
        summary.to_parquet(tmp / "summary.parquet", index=False)
        atomic_write_json(tmp / "summary.json", _summary_json(summary, pool, critic_file, learner))
        if learner is not None and learner.history:
            learner.critic.save(tmp / "critic_tuned.pt")
    return summary
