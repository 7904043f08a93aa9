"""The ``tune:`` section of an experiment file: search space, search, scheduler, resources.

An experiment file describes its study like this (every key optional except ``space``)::

    tune:
      samples: 8                 # trials (grid search: repeats of the whole grid)
      max_concurrent: 2          # trials at once (default: as many as the cluster fits)
      search: optuna             # optuna (TPE, seeded) | random | grid
      seed: 0
      startup_trials: 4          # optuna: random trials before TPE models (default 10)
      start_points:              # optuna: trials to run first (a known recipe), each
        - {train.beta: 1.0e-3, train.gamma: 1.0}    # giving values of searched parameters
      scheduler: asha            # asha | fifo
      grace_period: 1            # asha: epochs before a trial can be stopped
      reduction_factor: 3        # asha: keep 1 of this many at each rung
      max_t: 30                  # epochs of a trial never stopped (default train.epochs)
      resources: {cpu: 1, gpu: 0.25}   # per trial; gpu only on clusters that have GPUs
      keep_checkpoints: 2        # best checkpoints kept per trial (by the study metric)
      max_failures: 2            # retries of a trial whose worker failed
      space:                     # any model.* / train.* field
        train.dataset_size: {choice: [250, 500, 1000]}
        model.latent_dim: {choice: [8, 16, 32]}
        train.beta: {loguniform: [1.0e-3, 1.0]}
        train.gamma: {uniform: [0.5, 5.0]}
        model.base_channels: {randint: [8, 33]}      # upper bound excluded, as in Ray
        train.batch_size: {grid: [16, 32]}           # random / grid search only

:func:`search_space` turns ``space`` into the plain dict of Ray domains a Tuner takes.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from pvae.core.errors import PvaeError
from pvae.vae.config import ExperimentConfig, ModelConfig, TrainConfig

FORMS = ("choice", "uniform", "loguniform", "randint", "grid")
SEARCHES = ("optuna", "random", "grid")
SCHEDULERS = ("asha", "fifo")
SEARCHABLE = {
    **{f"model.{f.name}": f for f in dataclasses.fields(ModelConfig)},
    **{f"train.{f.name}": f for f in dataclasses.fields(TrainConfig) if f.name != "epochs"},
}

SMOKE_EPOCHS = 2
SMOKE_SAMPLES = 4
SMOKE_MODEL = {
    "model.base_channels": 4,
    "model.max_channels": 16,
    "model.regressor_hidden": (16,),
    "model.depth": None,
}


@dataclass(frozen=True)
class StudySpec:
    """A validated ``tune:`` section (see the module docstring for the meaning of each field).

    Attributes
    ----------
    space : dict
        ``{"model.latent_dim": {"choice": [8, 16]}, ...}``: one form per parameter.
    budget : int
        Epochs of a trial that is never stopped early (ASHA's ``max_t``).
    start_points : tuple of dict
        Optuna search: parameter values of the first trials (Optuna's
        ``points_to_evaluate``; parameters not given are sampled), e.g. a hand-made
        recipe the search should start from and be measured against.
    """

    space: dict
    budget: int
    samples: int = 8
    max_concurrent: int | None = None
    search: str = "optuna"
    seed: int = 0
    startup_trials: int | None = None
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: float = 3
    resources: dict = field(default_factory=lambda: {"cpu": 1, "gpu": 1})
    keep_checkpoints: int = 2
    max_failures: int = 2
    start_points: tuple = ()

    @property
    def total_trials(self) -> int:
        """Trials the study runs: ``samples``, times the grid size for grid values."""
        grid = math.prod(len(values) for values in self.grid_values().values())
        return self.samples * grid

    def grid_values(self) -> dict:
        """Parameters enumerated exhaustively: ``grid`` forms, and ``choice`` in grid search."""
        exhaustive = ("grid", "choice") if self.search == "grid" else ("grid",)
        return {key: args for key, (form, args) in _forms(self.space).items() if form in exhaustive}

    def to_dict(self) -> dict:
        """The section as a plain dict, as an experiment file would hold it."""
        data = dataclasses.asdict(self)
        data["max_t"] = data.pop("budget")
        data["start_points"] = [dict(point) for point in self.start_points]
        return data


def _forms(space: dict) -> dict:
    return {key: next(iter(spec.items())) for key, spec in space.items()}


def parse_study(config: ExperimentConfig, where: str) -> tuple[ExperimentConfig, StudySpec]:
    """Validate the ``tune`` section of ``config``.

    Parameters
    ----------
    config : ExperimentConfig
        The experiment (its ``tune`` dict as read from the file).
    where : str
        The experiment file, named in error messages.

    Returns
    -------
    config : ExperimentConfig
        ``config`` with ``train.epochs`` set to the study budget (``max_t``).
    spec : StudySpec

    Raises
    ------
    PvaeError
        Unknown keys, bad values, unknown parameters or forms; one line naming ``where``.
    """
    section = dict(config.tune)
    known = {f.name for f in dataclasses.fields(StudySpec)} - {"budget"} | {"max_t"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise PvaeError(
            f"{where}: tune: unknown key {unknown[0]!r}; keys: {', '.join(sorted(known))}"
        )
    if not isinstance(section.get("space"), dict) or not section["space"]:
        raise PvaeError(f"{where}: tune.space: a mapping of model.*/train.* parameters needed")
    budget = section.pop("max_t", None) or config.train.epochs
    config = config.with_overrides({"train.epochs": budget})
    section["start_points"] = tuple(section.get("start_points") or ())
    try:
        spec = StudySpec(budget=budget, **section)
    except TypeError as exc:
        raise PvaeError(f"{where}: tune: {exc}") from None
    _check_settings(spec, where)
    for key, value in spec.space.items():
        _check_parameter(config, spec, key, value, f"{where}: tune.space.{key}")
    for n, point in enumerate(spec.start_points):
        _check_start_point(config, spec, point, f"{where}: tune.start_points[{n}]")
    return config, spec


def _check_start_point(config, spec: StudySpec, point, where: str) -> None:
    """One start point: values of searched parameters, each inside its form's range."""
    if spec.search != "optuna":
        raise PvaeError(f"{where}: start points need tune.search optuna")
    if not isinstance(point, dict) or not point:
        raise PvaeError(f"{where}: a mapping of searched parameters to values")
    forms = _forms(spec.space)
    for key, value in point.items():
        if key not in forms:
            raise PvaeError(f"{where}: {key} is not a searched parameter")
        form, args = forms[key]
        if form == "choice":
            inside = _yaml_value(value) in [_yaml_value(a) for a in args]
        else:
            inside = _is_number(value) and args[0] <= value <= args[1]
        if not inside:
            raise PvaeError(f"{where}: {key} = {value!r} lies outside its {form} {args}")
        try:
            config.with_overrides({key: value})
        except PvaeError as exc:
            raise PvaeError(f"{where}: value {value!r} rejected ({exc})") from None


def _check_settings(spec: StudySpec, where: str) -> None:
    checks = [
        (spec.search in SEARCHES, f"search {spec.search!r}: one of {', '.join(SEARCHES)}"),
        (spec.scheduler in SCHEDULERS, f"scheduler {spec.scheduler!r}: asha or fifo"),
        (_positive_int(spec.samples), "samples: a positive integer"),
        (
            spec.max_concurrent is None or _positive_int(spec.max_concurrent),
            "max_concurrent: a positive integer",
        ),
        (_positive_int(spec.budget), "max_t: a positive integer (epochs)"),
        (
            _positive_int(spec.grace_period) and spec.grace_period <= spec.budget,
            f"grace_period: a positive integer <= max_t ({spec.budget})",
        ),
        (
            isinstance(spec.reduction_factor, int | float) and spec.reduction_factor > 1,
            "reduction_factor: a number > 1",
        ),
        (
            spec.startup_trials is None or _positive_int(spec.startup_trials),
            "startup_trials: a positive integer",
        ),
        (_positive_int(spec.keep_checkpoints), "keep_checkpoints: a positive integer"),
        (
            isinstance(spec.max_failures, int) and spec.max_failures >= 0,
            "max_failures: an integer >= 0",
        ),
        (
            _valid_resources(spec.resources),
            "resources: {cpu: integer >= 1, gpu: a fraction (0.25) or a whole number}",
        ),
    ]
    for ok, problem in checks:
        if not ok:
            raise PvaeError(f"{where}: tune.{problem}")


def _valid_resources(resources) -> bool:
    if not isinstance(resources, dict) or not set(resources) <= {"cpu", "gpu"}:
        return False
    gpu = resources.get("gpu", 0)
    return (
        _positive_int(resources.get("cpu", 1))
        and _is_number(gpu)
        and (0 <= gpu <= 1 or float(gpu).is_integer())
    )


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_parameter(config, spec: StudySpec, key: str, value, where: str) -> None:
    """One searched parameter: a known field, one known form, values the config accepts."""
    if key == "train.epochs":
        raise PvaeError(f"{where}: the epochs are the study budget; set tune.max_t instead")
    if key not in SEARCHABLE:
        raise PvaeError(f"{where}: unknown parameter (use model.<field> or train.<field>)")
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in FORMS:
        raise PvaeError(f"{where}: give one form, {{FORM: [...]}} with FORM one of {FORMS}")
    form, args = next(iter(value.items()))
    if not isinstance(args, list) or not args:
        raise PvaeError(f"{where}: {form} takes a non-empty list")
    if form in ("uniform", "loguniform", "randint"):
        if spec.search == "grid":
            raise PvaeError(f"{where}: grid search takes choice or grid forms, not {form}")
        if len(args) != 2 or not all(_is_number(a) for a in args) or not args[0] < args[1]:
            raise PvaeError(f"{where}: {form} takes [low, high] with numbers low < high")
        if form == "randint" and not all(isinstance(a, int) for a in args):
            raise PvaeError(f"{where}: randint takes integer bounds")
        if form == "loguniform" and args[0] <= 0:
            raise PvaeError(f"{where}: loguniform needs low > 0")
        candidates = [args[0], args[1] - 1] if form == "randint" else args
    else:
        if form == "grid" and spec.search == "optuna":
            raise PvaeError(f"{where}: grid values need tune.search random or grid, not optuna")
        candidates = args
    for candidate in candidates:
        try:
            config.with_overrides({key: candidate})
        except PvaeError as exc:
            raise PvaeError(f"{where}: value {candidate!r} rejected ({exc})") from None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def search_space(spec: StudySpec) -> dict:
    """The plain dict of Ray Tune domains for ``Tuner(param_space=...)``.

    Keys are the dotted parameter names (``"train.beta"``), so a trial's config is a
    ready argument of :meth:`ExperimentConfig.with_overrides`.
    """
    from ray import tune

    grid = spec.grid_values()
    space = {}
    for key, (form, args) in _forms(spec.space).items():
        if key in grid:
            space[key] = tune.grid_search([_yaml_value(a) for a in args])
        elif form == "choice":
            space[key] = tune.choice([_yaml_value(a) for a in args])
        else:
            space[key] = getattr(tune, form)(*args)
    return space


def _yaml_value(value):
    """Lists from YAML become tuples (the dataclass field type, e.g. regressor_hidden)."""
    return tuple(value) if isinstance(value, list) else value


def smoke(config: ExperimentConfig, spec: StudySpec) -> tuple[ExperimentConfig, StudySpec]:
    """Shrink any study to minutes on a laptop: few trials, 2 epochs, a small model.

    The model's size parameters leave the search space (fixed small); every other
    parameter is still searched (grid values are sampled instead of enumerated), so
    the smoke study exercises the same code paths.
    """
    config = config.with_overrides({**SMOKE_MODEL, "train.epochs": SMOKE_EPOCHS})
    space = {
        key: {"choice" if form == "grid" else form: args}
        for key, (form, args) in _forms(spec.space).items()
        if key not in SMOKE_MODEL
    }
    spec = dataclasses.replace(
        spec,
        space=space,
        budget=SMOKE_EPOCHS,
        samples=min(spec.total_trials, SMOKE_SAMPLES),  # grid values sampled, not enumerated
        search="random" if spec.search == "grid" else spec.search,
        grace_period=1,
        startup_trials=min(spec.startup_trials or SMOKE_SAMPLES, SMOKE_SAMPLES),
        keep_checkpoints=1,
        start_points=tuple(points for points in (
            {k: v for k, v in point.items() if k in space} for point in spec.start_points
        ) if points),  # fmt: skip
    )
    return config, spec
