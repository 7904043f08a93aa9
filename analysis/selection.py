"""Choosing the production model: an explicit, configurable rule with a written reason.

The rule: among trials with an allowed status (by default only ``completed`` ones,
trained to the full budget), keep those meeting every constraint (e.g.
``best_val_r2_log10_k_xx >= 0.9``), take the best value of the primary metric, call
every trial within ``tie_tolerance`` (relative) of it tied, and break ties by the
listed columns in order, smaller first (e.g. a smaller latent dimension, then less
data). The reason for the choice is written out in full.
"""

import operator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml

from pvae.core.errors import PvaeError

OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class SelectionRule:
    """How the production model is chosen.

    Attributes
    ----------
    metric : str
        Primary column of ``trials`` (default ``best_val_objective``).
    mode : str
        ``min`` or ``max``.
    statuses : tuple of str
        Trial statuses eligible (default: full-budget ``completed`` trials only).
    constraints : tuple of (column, op, value)
        All must hold, op in ``>=, <=, >, <, ==``.
    tie_tolerance : float
        Trials within this relative distance of the best metric are tied.
    tie_breaks : tuple of str
        Columns deciding among tied trials, smaller first.
    """

    metric: str = "best_val_objective"
    mode: str = "min"
    statuses: tuple[str, ...] = ("completed",)
    constraints: tuple[tuple[str, str, float], ...] = ()
    tie_tolerance: float = 0.01
    tie_breaks: tuple[str, ...] = ("model.latent_dim", "dataset_size")

    def __post_init__(self):
        if self.mode not in ("min", "max"):
            raise PvaeError(f"selection rule: mode must be min or max, not {self.mode!r}")
        if not self.tie_tolerance >= 0:
            raise PvaeError(f"selection rule: tie_tolerance {self.tie_tolerance}: need >= 0")
        for constraint in self.constraints:
            if len(constraint) != 3 or constraint[1] not in OPERATORS:
                raise PvaeError(f"selection rule: bad constraint {constraint!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "SelectionRule":
        """From a YAML mapping; constraints as ``["best_val_r2_mean >= 0.9", ...]``."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise PvaeError(f"selection rule: unknown key {sorted(unknown)[0]!r}")
        values = dict(data)
        if "constraints" in values:
            values["constraints"] = tuple(parse_constraint(c) for c in values["constraints"])
        for key in ("statuses", "tie_breaks"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def from_file(cls, path) -> "SelectionRule":
        try:
            return cls.from_dict(yaml.safe_load(open(path)) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise PvaeError(
                f"{path}: unreadable selection rule ({exc.__class__.__name__})"
            ) from None


def parse_constraint(text: str) -> tuple[str, str, float]:
    """``"best_val_r2_log10_k_xx >= 0.9"`` -> ``("best_val_r2_log10_k_xx", ">=", 0.9)``."""
    for op in sorted(OPERATORS, key=len, reverse=True):
        column, sep, value = str(text).partition(op)
        if sep:
            try:
                return column.strip(), op, float(value)
            except ValueError:
                break
    raise PvaeError(f"constraint {text!r}: expected COLUMN OP NUMBER, e.g. best_val_r2_mean >= 0.9")


@dataclass
class Choice:
    """The chosen trial and why."""

    trial_id: str
    row: pd.Series
    reason: str
    leaderboard: pd.DataFrame = field(repr=False)


def leaderboard(trials: pd.DataFrame, rule: SelectionRule | None = None) -> pd.DataFrame:
    """Trials sorted by the rule's metric (best first), with an ``eligible`` column."""
    rule = rule or SelectionRule()
    if rule.metric not in trials:
        raise PvaeError(f"selection rule: no column {rule.metric!r} in the study's trials")
    table = trials.copy()
    eligible = table["status"].isin(rule.statuses) & table[rule.metric].notna()
    for column, op, value in rule.constraints:
        if column not in table:
            raise PvaeError(f"selection rule: constraint on unknown column {column!r}")
        eligible &= OPERATORS[op](table[column], value)
    table["eligible"] = eligible
    return table.sort_values(["eligible", rule.metric], ascending=[False, rule.mode == "min"])


def choose(
    trials: pd.DataFrame, rule: SelectionRule | None = None, finalists: pd.DataFrame | None = None
) -> Choice:
    """Apply the production-model rule, then the LBM check of the finalists if made.

    With ``finalists`` (:func:`analysis.finalists.verify_finalists`), the eligible
    checked trial whose designs LBM verified most often is chosen; among equals, the one
    whose designs came closest (smaller median verified score), then the rule's own
    choice, then the best-ranked.

    Raises
    ------
    PvaeError
        When no trial is eligible (status and constraints).
    """
    rule = rule or SelectionRule()
    board = leaderboard(trials, rule)
    eligible = board[board["eligible"]]
    statuses = ", ".join(rule.statuses)
    conditions = "; ".join(f"{c} {o} {v:g}" for c, o, v in rule.constraints) or "none"
    if eligible.empty:
        raise PvaeError(
            f"no trial meets the selection rule (status in {statuses}; constraints: {conditions}) "
            f"among {len(trials)} trials"
        )
    best = eligible[rule.metric].iloc[0]
    tied = eligible[(eligible[rule.metric] - best).abs() <= rule.tie_tolerance * abs(best)]
    breaks = [c for c in rule.tie_breaks if c in tied]
    ordered = tied.sort_values(
        breaks + [rule.metric], ascending=[True] * len(breaks) + [rule.mode == "min"]
    )
    chosen = ordered.iloc[0]
    lines = [
        f"Trial {chosen['trial_id']} is the production model.",
        f"Eligible: {len(eligible)} of {len(trials)} trials "
        f"(status in {statuses}; constraints: {conditions}).",
        f"Best {rule.metric} ({rule.mode}): {best:.5g} (trial {eligible['trial_id'].iloc[0]}).",
    ]
    if len(tied) > 1:
        lines.append(
            f"{len(tied)} trials lie within {rule.tie_tolerance:.0%} of it "
            f"({', '.join(tied['trial_id'])}); ties broken by smaller "
            f"{', then '.join(breaks) or rule.metric}: "
            + ", ".join(f"{c} = {chosen[c]}" for c in breaks)
            + "."
        )
    lines.append(f"The rule chooses trial {chosen['trial_id']}: {rule.metric} "
                 f"{chosen[rule.metric]:.5g}.")
    if finalists is not None and len(finalists):
        chosen = _verified_choice(chosen, eligible, finalists, lines)
    return Choice(str(chosen["trial_id"]), chosen, " ".join(lines), board)


def _verified_choice(chosen, eligible, finalists, lines) -> pd.Series:
    """The eligible finalist whose designs LBM verified most often, ties broken by the
    smaller median verified score (``verified_design_score``, tolerance units) and then
    by rank (the rule's ``chosen`` first); the reason is appended to ``lines``."""
    ids = eligible["trial_id"].astype(str)
    checked = finalists[finalists["trial_id"].astype(str).isin(set(ids))]
    checked = checked[checked["verified_design_success"].notna()].sort_values("rank")
    if checked.empty:
        return chosen
    if "verified_design_score" not in checked:  # a record from before the score was kept
        checked = checked.assign(verified_design_score=np.nan)
    ordered = checked.assign(
        _chosen=checked["trial_id"].astype(str) != str(chosen["trial_id"]),
        _score=checked["verified_design_score"].fillna(np.inf),
    ).sort_values(["verified_design_success", "_score", "_chosen", "rank"],
                  ascending=[False, True, True, True])  # fmt: skip
    winner = str(ordered["trial_id"].iloc[0])
    top = ordered[ordered["verified_design_success"] == ordered["verified_design_success"].iloc[0]]
    lines.append(
        f"LBM checked the validation designs of {len(checked)} finalists: "
        + ", ".join(
            f"{r.trial_id} {r.verified_design_success:.0%} of {r.targets}"
            + (f" (median score {r.verified_design_score:.2f})"
               if np.isfinite(r.verified_design_score) else "")  # fmt: skip
            for r in checked.itertuples()
        )
        + (
            "; the rule's choice designs as well as any."
            if winner == str(chosen["trial_id"])
            else f"; trial {winner} designs best"
            + (f" (of the {len(top)} equally verified, the smallest median score, then the "
               "best rank)" if len(top) > 1 else "")
            + f", so it is chosen over the rule's trial {chosen['trial_id']}."
        )
    )
    lines[0] = f"Trial {winner} is the production model."
    return eligible[ids == winner].iloc[0]
