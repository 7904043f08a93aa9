"""Hyperparameter importance with Optuna's evaluators on the study's finished trials."""

import math
import warnings

import optuna

from analysis.study import METRIC, Study


def _distribution(form: dict, values):
    kind, args = next(iter(form.items()))
    if kind in ("choice", "grid"):
        return optuna.distributions.CategoricalDistribution(sorted(set(args) | set(values)))
    if kind == "randint":
        return optuna.distributions.IntDistribution(int(args[0]), int(args[1]))
    return optuna.distributions.FloatDistribution(
        float(args[0]), float(args[1]), log=kind == "loguniform"
    )


def param_importances(study: Study, metric: str = f"best_{METRIC}") -> dict[str, float]:
    """Importance of each searched parameter for the metric (Optuna PED-ANOVA).

    Every trial with a finite metric counts (those stopped early by ASHA with their
    best value so far, which is what ASHA ranked them by). PED-ANOVA needs no extra
    dependency; it compares the parameter distribution of the top trials with all.

    Returns
    -------
    dict
        Parameter -> importance (sums to about 1), most important first; empty when
        fewer than 4 trials or no varied parameter.
    """
    trials = (
        study.trials.dropna(subset=[metric]) if metric in study.trials else study.trials.iloc[:0]
    )
    params = [p for p in study.params if trials[p].nunique() > 1]
    if len(trials) < 4 or not params:
        return {}
    distributions = {p: _distribution(study.space[p], trials[p].tolist()) for p in params}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.create_study(direction="minimize")
    for _, row in trials.iterrows():
        values = {p: row[p].item() if hasattr(row[p], "item") else row[p] for p in params}
        sampler.add_trial(
            optuna.trial.create_trial(
                params=values, distributions=distributions, value=float(row[metric])
            )
        )
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(
        target_quantile=0.25, region_quantile=1.0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importances = optuna.importance.get_param_importances(sampler, evaluator=evaluator)
    return {k: float(v) for k, v in importances.items() if math.isfinite(v)}
