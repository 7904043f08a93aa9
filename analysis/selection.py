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


def choose(trials: pd.DataFrame, rule: SelectionRule | None = None) -> Choice:
    """Apply the production-model rule.

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
    lines.append(f"Chosen trial's {rule.metric}: {chosen[rule.metric]:.5g}.")
    return Choice(str(chosen["trial_id"]), chosen, " ".join(lines), board)
