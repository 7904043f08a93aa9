"""Running inverse design for one or many targets and writing what a user inspects.

Per target (``DIR`` or ``DIR/<id>/`` for many): ``designs.parquet`` (one row per
candidate, predicted vs. verified properties, errors, file), ``designs.json``,
``designs.png``, and each candidate as ``candidate_XX.npy`` (True = pore),
``candidate_XX.tif`` and ``candidate_XX_bmp/`` (the research code's slice format).
For many targets also ``summary.parquet`` / ``summary.json`` with the success rate.
"""

import math
from pathlib import Path

import pandas as pd

from pvae.atomic import atomic_directory, atomic_write_json
from pvae.figures import designs_plot
from pvae.imaging import write_bmp_stack, write_image
from pvae.inverse import InverseSettings, coverage_problems, design
from pvae.loading import LoadedModel
from pvae.physics.lbm import LBMSettings
from pvae.progress import progress_bar
from pvae.store.reader import VoxelStore


def _write_designs(folder: Path, table: pd.DataFrame, images, target: dict) -> None:
    files = []
    for rank, image in enumerate(images, start=1):
        stem = f"candidate_{rank:02d}"
        write_image(image, folder / f"{stem}.npy")
        write_image(image, folder / f"{stem}.tif")
        write_bmp_stack(image, folder / f"{stem}_bmp")
        files.append(f"{stem}.npy")
    table["file"] = files
    table.to_parquet(folder / "designs.parquet", index=False)
    best = table.iloc[0].to_dict()
    atomic_write_json(
        folder / "designs.json",
        {
            "target": target,
            "success": bool(table["success"].any()),
            "best": {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in best.items()
            },
            "candidates": len(table),
        },
    )
    designs_plot(images, table, target, folder / "designs.png")


def run_inverse(
    loaded: LoadedModel,
    targets: list[tuple[str, dict]],
    out: str | Path,
    store: VoxelStore | None = None,
    settings: InverseSettings | None = None,
    lbm: LBMSettings | None = None,
    device: str = "cpu",
    allow_extrapolation: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Design every target, verify, and write the results under ``out`` (atomically).

    Parameters
    ----------
    targets : list of (id, target)
        One target writes directly into ``out``; several into ``out/<id>/``.
    allow_extrapolation : bool
        Attempt targets outside the training data instead of reporting them.

    Returns
    -------
    pd.DataFrame
        One row per target: ``id``, ``status`` (``designed`` / ``outside_training_data``),
        ``success``, ``score``, the target and the best candidate's verified values,
        ``note``.
    """
    rows = []
    single = len(targets) == 1
    with (
        atomic_directory(out, overwrite=True) as tmp,
        progress_bar(len(targets), "inverse design", progress, unit="target") as bar,
    ):
        for target_id, target in targets:
            problems = coverage_problems(target, loaded.target_ranges)
            row = {"id": target_id, **{f"target_{k}": v for k, v in target.items()}}
            if problems and not allow_extrapolation:
                rows.append(
                    row
                    | {
                        "status": "outside_training_data",
                        "success": False,
                        "score": math.inf,
                        "note": "; ".join(problems),
                    }
                )
                bar.update()
                continue
            table, images = design(loaded, target, store, settings, lbm, device)
            folder = tmp if single else tmp / target_id
            folder.mkdir(exist_ok=True)
            _write_designs(folder, table, images, target)
            best = table.iloc[0]
            row |= {
                "status": "designed",
                "success": bool(best["success"]),
                "score": float(best["score"]),
                "note": "; ".join(problems),
            }
            row |= {c: best[c] for c in table.columns if c.startswith(("verified_", "predicted_"))}
            rows.append(row)
            bar.update()
        summary = pd.DataFrame(rows)
        summary.to_parquet(tmp / "summary.parquet", index=False)
        designed = summary[summary["status"] == "designed"]
        atomic_write_json(
            tmp / "summary.json",
            {
                "targets": len(summary),
                "designed": len(designed),
                "outside_training_data": int((summary["status"] == "outside_training_data").sum()),
                "success_rate": float(designed["success"].mean()) if len(designed) else None,
            },
        )
    return summary
