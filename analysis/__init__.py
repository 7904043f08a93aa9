"""Analysis of Ray Tune studies (no Ray needed): leaderboard, production-model choice,
figures, report, and export of the chosen model as a bundle."""

from analysis.export import export_trial
from analysis.importance import param_importances
from analysis.report import analyze
from analysis.selection import SelectionRule, choose, leaderboard
from analysis.study import Study, load_studies, load_study

__all__ = [
    "SelectionRule",
    "Study",
    "analyze",
    "choose",
    "export_trial",
    "leaderboard",
    "load_studies",
    "load_study",
    "param_importances",
]
