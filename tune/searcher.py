"""Search algorithms of a study, with ASHA-stopped trials told to Optuna as pruned.

The trap: when ASHA stops a trial at epoch 2 of 30, Ray calls the searcher's
``on_trial_complete`` with that trial's epoch-2 result, and Ray's ``OptunaSearch``
tells Optuna the trial is COMPLETE with its epoch-2 validation loss. TPE then models
full-budget outcomes with a mix of 2-epoch and 30-epoch values: stopped trials look
like finished ones, and since early losses are higher, everything ASHA stopped is
learned as "bad after full training", which it was never shown to be.

:class:`BudgetAwareOptunaSearch` tells Optuna the truth: a trial that ends before
the budget (ASHA stop, divergence) is PRUNED, with its per-epoch values as Optuna
intermediate values. Optuna's TPE ranks pruned trials after every complete trial
(deeper-pruned first), exactly as with Optuna's own pruners.
"""

import math

import optuna
from optuna.samplers import TPESampler
from optuna.trial import TrialState
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tune.study_spec import StudySpec

TIME_ATTR = "epoch"


class BudgetAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that reports trials ended before ``budget`` epochs as pruned.

    Parameters
    ----------
    budget : int
        Epochs of a trial that runs to the end (ASHA's ``max_t``).
    **kwargs
        Passed to :class:`ray.tune.search.optuna.OptunaSearch`.
    """

    def __init__(self, budget: int, **kwargs):
        super().__init__(**kwargs)
        self._budget = budget
        self._last_step: dict[str, int] = {}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Record the epoch's study metric as an Optuna intermediate value (step = epoch)."""
        if trial_id in self._completed_trials:
            return
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict) -> None:
        """Epochs a restarted trial reports again (:mod:`tune.lost_checkpoints`) are skipped."""
        step = int(result[TIME_ATTR])
        if step > self._last_step.get(trial_id, 0):
            self._ot_trials[trial_id].report(float(result[self.metric]), step)
            self._last_step[trial_id] = step

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        """COMPLETE at the full budget; PRUNED when stopped early or diverged; FAIL on error."""
        if (
            error
            or not result
            or trial_id in self._completed_trials
            or reached_budget(result, self._budget)
        ):
            super().on_trial_complete(trial_id, result, error)
            return
        if TIME_ATTR in result:  # the stopping result never went through on_trial_result
            self._report(trial_id, result)
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def reached_budget(result: dict, budget: int) -> bool:
    """Whether a trial's last result is a full-budget, finite outcome."""
    value = result.get("val_objective")
    return (
        result.get("status") == "ok"
        and result.get(TIME_ATTR, 0) >= budget
        and value is not None
        and math.isfinite(value)
    )


def make_search(spec: StudySpec, metric: str, max_concurrent: int):
    """The search algorithm of ``spec``, running at most ``max_concurrent`` trials at once.

    Optuna TPE (seeded, budget-aware, starting from ``spec.start_points``) in a
    ``ConcurrencyLimiter``, or a seeded
    ``BasicVariantGenerator`` for random and grid search.
    """
    if spec.search == "optuna":
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = TPESampler(seed=spec.seed, n_startup_trials=spec.startup_trials or 10)
        points = [dict(point) for point in spec.start_points] or None
        searcher = BudgetAwareOptunaSearch(spec.budget, metric=metric, mode="min",
                                           sampler=sampler, points_to_evaluate=points)  # fmt: skip
        return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return BasicVariantGenerator(random_state=spec.seed, max_concurrent=max_concurrent)
