"""LBM checks of the finalists: the best trials design validation targets, verified by physics.

During a study each trial's validation design success is the critic's estimate
(``train.design_every``, :mod:`pvae.design.probe`): cheap, and optimistic. Before a
model is chosen, the ``count`` best eligible trials of the rule's leaderboard each
design the same validation-split targets with their best checkpoint, as ``pvae
inverse`` would but with a small search (:data:`FINALIST_SETTINGS`), and LBM verifies
every design. The record is kept in the study folder (:data:`FINALISTS`), so that
``pvae analyze`` and ``pvae export`` choose alike (:func:`analysis.selection.choose`).
"""

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.selection import SelectionRule, leaderboard
from analysis.study import FINALISTS, Study
from pvae.core.atomic import atomic_write_bytes
from pvae.core.errors import PvaeError
from pvae.data.store import open_dataset
from pvae.design.inverse import InverseSettings, design
from pvae.design.pool import design_pool
from pvae.design.probe import PROBE_SETTINGS
from pvae.design.targets import dataset_targets
from pvae.physics.lbm import LBMSettings
from pvae.vae.critic import find_critic
from pvae.vae.loading import load_model

FINALIST_SETTINGS = replace(
    PROBE_SETTINGS, blur_seeds=InverseSettings.blur_seeds, lbm_budget=2
)
"""The finalists' search: the study's probe (:data:`pvae.design.probe.PROBE_SETTINGS`: 32
screened mixtures, 4 starts) with the blurs of ``pvae inverse`` and at most 2 LBM solves per
target."""
DEFAULT_TARGETS = 4  # validation targets when the study did not measure design success


def _targets(study: Study, targets: int | None) -> int:
    """Validation targets per finalist: ``targets``, else the study's ``train.design_targets``."""
    if targets is not None:
        if targets < 1:
            raise PvaeError(f"finalists: need >= 1 validation target each, not {targets}")
        return targets
    return int(study.train_settings.get("design_targets") or DEFAULT_TARGETS)


def verify_finalists(
    study: Study,
    rule: SelectionRule | None = None,
    count: int = 3,
    lbm: LBMSettings | None = None,
    progress=None,
    device: str = "cpu",
    targets: int | None = None,
) -> pd.DataFrame:
    """LBM-verified validation design success of the ``count`` best eligible trials.

    Parameters
    ----------
    study : Study
    rule : SelectionRule, optional
        Whose leaderboard orders the trials (eligible ones only).
    count : int
    lbm : LBMSettings, optional
        Verification solver settings.
    progress : callable(str), optional
        Called with one line per finalist.
    device : str
        Where the models design and LBM verifies (``cpu``, ``cuda``).
    targets : int, optional
        Validation targets per finalist (default: the study's ``train.design_targets``).
        With 4 targets, every finalist of the production study met all 4 in two runs,
        so the check told them apart only with more.

    Returns
    -------
    pd.DataFrame
        One row per finalist, in leaderboard order: ``trial_id``, ``rank`` (1 = the
        rule's choice), ``targets``, ``verified_design_success`` (share verified within
        tolerance), ``verified_design_score`` (median best score, tolerance units) and
        ``lbm_solves``. Also written to ``<study>/finalists.parquet``.
    """
    if count < 1:
        raise PvaeError(f"finalists: need count >= 1, not {count}")
    per_finalist = _targets(study, targets)
    board = leaderboard(study.trials, rule)
    finalists = board[board["eligible"]].head(count)
    rows = []
    for rank, row in enumerate(finalists.itertuples(index=False), start=1):
        checkpoint = getattr(row, "best_checkpoint", None)
        if not isinstance(checkpoint, str) or not checkpoint:
            raise PvaeError(f"{study.root}: finalist {row.trial_id} has no checkpoint")
        loaded = load_model(checkpoint, device)
        store = open_dataset(loaded.dataset_path)
        validation = dataset_targets(store, loaded.state["splits"]["val"], per_finalist)
        pool = design_pool(loaded, store)
        critic, _ = find_critic(checkpoint, loaded, device=device)
        scores, solves = [], 0
        for _, target in validation:
            table, _ = design(loaded, target, pool, FINALIST_SETTINGS, lbm, device, critic)
            scores.append(float(table["score"].iloc[0]) if len(table) else math.inf)
            solves += int(table["lbm_solves"].sum()) if len(table) else 0
        success = float(np.mean(np.array(scores) <= 1.0)) if scores else math.nan
        rows.append({"trial_id": str(row.trial_id), "rank": rank, "targets": len(scores),
                     "verified_design_success": success,
                     "verified_design_score": float(np.median(scores)) if scores else math.nan,
                     "lbm_solves": solves})  # fmt: skip
        if progress is not None:
            progress(f"finalist {rank} (trial {row.trial_id}): {success:.0%} of {len(scores)} "
                     f"validation designs verified by LBM ({solves} solves)")  # fmt: skip
    table = pd.DataFrame(rows)
    atomic_write_bytes(study.root / FINALISTS, table.to_parquet(index=False))
    return table
