"""Typed configuration of models, training runs and experiments, loaded from YAML.

An experiment file (``experiments/*.yaml``) holds only what differs from the defaults
below, in three sections::

    name: smoke
    model: {latent_dim: 16, base_channels: 8}
    train: {epochs: 4, batch_size: 16, beta: 1.0, gamma: 1.0}
    tune:  {...}            # the study: search space, scheduler (read by tune/)

Unknown keys are errors naming the file and the key. Every run writes its resolved
configuration next to its results.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pvae.core.errors import PvaeError

TARGETS_DIAGONAL = ("porosity", "log10_k_xx", "log10_k_yy", "log10_k_zz")
TARGETS_FULL = (*TARGETS_DIAGONAL, "k_xy", "k_xz", "k_yz")
LATENT_LAYOUTS = ("flat", "spatial")
PADDINGS = ("circular", "zeros")
LR_SCHEDULES = ("constant", "cosine")
GENERATION_SOURCES = ("standard_normal", "recombinations")
SAVED_BEFORE_NORM_GROUPS = 8  # the GroupNorm groups of models saved without the field


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the pVAE.

    Attributes
    ----------
    latent_dim : int
        Size of the latent vector z.
    base_channels : int
        Channels of the first encoder stage; doubled per stage up to ``max_channels``.
    max_channels : int
        Channel cap of the deeper stages.
    depth : int or None
        Stride-2 encoder stages; None = enough to bring the largest side to <= 2 voxels
        (flat layout) or <= 8 cells (spatial layout).
    latent_layout : {"flat", "spatial"}
        ``flat``: z is a vector read from the flattened last stage. ``spatial``: z is a
        grid of C channels on the last stage's cells (C x d x h x w = ``latent_dim``,
        which must be a multiple of the cell count), so local structure is kept.
    res_blocks : int
        Residual blocks after each encoder and decoder stage (0 = plain stages).
    decoder_channels : int or None
        Channels of the decoder's finest stage, doubled per stage up to
        ``max_channels``; None = ``base_channels``.
    padding : {"circular", "zeros"}
        Padding of every convolution. ``circular`` matches periodic samples (no border
        artifact); ``zeros`` only for comparison.
    norm_groups : int
        GroupNorm groups of every stage (at most one per channel). Each group loses its
        mean over the volume; with circular padding only the contrasts between channels
        of a group carry global statistics such as porosity, so 1 (one group over all
        channels) is the default. One channel per group makes porosity unlearnable
        (issue 27); models saved before this field existed used 8
        (:data:`SAVED_BEFORE_NORM_GROUPS`).
    dropout : float
        Dropout of the regressor MLP.
    regressor_hidden : tuple of int
        Hidden layer widths of the regressor MLP on the latent mean.
    targets : tuple of str
        Regressed properties: porosity, log10 of the permeability diagonal, and
        optionally the off-diagonals ``k_xy``, ``k_xz``, ``k_yz`` (lattice units).
    """

    latent_dim: int = 32
    base_channels: int = 16
    max_channels: int = 128
    depth: int | None = None
    latent_layout: str = "flat"
    res_blocks: int = 0
    decoder_channels: int | None = None
    padding: str = "circular"
    norm_groups: int = 1
    dropout: float = 0.0
    regressor_hidden: tuple[int, ...] = (128, 64)
    targets: tuple[str, ...] = TARGETS_DIAGONAL

    def __post_init__(self):
        unknown = set(self.targets) - set(TARGETS_FULL)
        if unknown:
            raise PvaeError(f"model.targets: unknown {sorted(unknown)}; choose from {TARGETS_FULL}")
        if self.latent_dim < 1 or self.base_channels < 1 or not 0 <= self.dropout < 1:
            raise PvaeError("model: latent_dim, base_channels >= 1 and 0 <= dropout < 1 required")
        if self.latent_layout not in LATENT_LAYOUTS:
            raise PvaeError(f"model.latent_layout {self.latent_layout!r}: choose {LATENT_LAYOUTS}")
        if self.padding not in PADDINGS:
            raise PvaeError(f"model.padding {self.padding!r}: choose from {PADDINGS}")
        if self.res_blocks < 0 or (self.decoder_channels is not None and self.decoder_channels < 1):
            raise PvaeError("model: res_blocks >= 0 and decoder_channels >= 1 required")
        if self.norm_groups < 1:
            raise PvaeError(f"model.norm_groups {self.norm_groups}: at least 1")
        if self.depth is not None and not 1 <= self.depth <= 7:
            raise PvaeError(f"model.depth {self.depth}: from 1 to 7 stages")


@dataclass(frozen=True)
class TrainConfig:
    """How a pVAE is trained.

    Attributes
    ----------
    epochs : int
        Epochs to run.
    batch_size : int
    lr : float
        AdamW learning rate (the peak, with a schedule).
    lr_schedule : {"constant", "cosine"}
        ``cosine``: the learning rate follows a half cosine from ``lr`` at the first
        epoch to ``lr / 100`` at the last (set per epoch, so resuming is exact).
    weight_decay : float
    beta : float
        KL weight (per-voxel scaling, see :mod:`pvae.vae.losses`; 1 = the ELBO).
    gamma : float
        Weight of the property regression MSE on standardized targets.
    kl_warmup_epochs : int
        Linear warm-up of beta over this many epochs (0 = none).
    dataset_size : int or None
        Training samples used: the first ``dataset_size`` of the fixed training split,
        so larger sizes contain every smaller one; None = the whole split.
    epoch_samples : int or None
        Samples drawn per epoch: None = one pass over the training subset; N = N
        samples from successive shuffled passes (a subset smaller than N is seen
        several times an epoch), so that in a dataset-size study every size trains the
        same number of steps per epoch.
    split : tuple of float
        Train / validation / test fractions.
    split_seed : int
        Seed of the split (fixed across a study).
    seed : int
        Seed of initialisation, shuffling, augmentation and dropout.
    augment : bool
        Random cube symmetries (K rotated with the image).
    device : str
        ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``.
    amp : bool
        bfloat16 autocast on CUDA (ignored on CPU).
    amp_cpu : bool
        bfloat16 autocast of the training steps on a CPU that computes bfloat16
        natively (AVX512-BF16 or AMX; ignored on other CPUs and on CUDA). About 1.8x
        faster training at 100^3 on such a CPU (``bench/results/train.md``); validation
        and inference stay in float32.
    num_workers : int
        DataLoader worker processes.
    fidelity_every : int
        Measure the fidelity of decoded validation structures every this many epochs
        (and at the last one) with a CNN surrogate (:mod:`pvae.vae.fidelity`): metrics
        ``val_fidelity`` (median |log10 K error|, decades) and ``val_fidelity_success``
        (share within the inverse-design tolerance); 0 = never.
    fidelity_samples : int
        Validation samples measured (evenly spread over the split).
    fidelity_surrogate : str or None
        Surrogate bundle of the critic (relative to the experiment file or absolute);
        None = the dataset's own ``surrogate.pt``.
    fidelity_weight : float
        Weight w of fidelity in the study metric: ``val_objective = val_recon + val_reg
        + w * (1 - val_fidelity_success)``; w > 0 needs ``fidelity_every = 1``.
    generation_every : int
        Measure generation every this many epochs (and at the last one): structures
        decoded from latents drawn as ``generation_source`` says, scored against the
        training subset and the validation split (:mod:`pvae.vae.generation`): metrics
        ``val_realism`` and ``val_coverage``; 0 = never.
    generation_samples : int
        Structures drawn for it.
    generation_source : str
        ``standard_normal``: z ~ N(0, I), the VAE's own prior (a model with a small KL
        weight decodes it to noise); ``recombinations``: two training encodings joined
        along a slab of the latent grid
        (:func:`pvae.vae.generation.recombination_latents`; twice as many training
        samples as draws are encoded, spread over the subset), what inverse design
        searches when the model has no fitted prior (a prior is fitted after the study,
        ``pvae export --prior-steps``).
    generation_weight : float
        Weight g of generation in the study metric: ``+ g * (1 - val_realism)``; g > 0
        needs ``generation_every = 1``.
    design_every : int
        Measure validation design success every this many epochs (and at the first
        and the last): ``design_targets`` validation samples' property vectors designed
        with the critic alone (:mod:`pvae.design.probe`; the trainer must be given the
        probe, as ``pvae train`` and ``pvae tune`` do); metrics
        ``val_design_success`` and ``val_design_score``, carried to the epochs between
        measurements; 0 = never.
    design_targets : int
        Validation targets the probe designs.
    design_weight : float
        Weight d of design success in the study metric: ``+ d * (1 - val_design_success)``.
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    lr_schedule: str = "constant"
    weight_decay: float = 1e-5
    beta: float = 1.0
    gamma: float = 1.0
    kl_warmup_epochs: int = 0
    dataset_size: int | None = None
    epoch_samples: int | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    seed: int = 0
    augment: bool = True
    device: str = "auto"
    amp: bool = True
    amp_cpu: bool = False
    num_workers: int = 0
    fidelity_every: int = 0
    fidelity_samples: int = 32
    fidelity_surrogate: str | None = None
    fidelity_weight: float = 0.0
    generation_every: int = 0
    generation_samples: int = 32
    generation_source: str = "standard_normal"
    generation_weight: float = 0.0
    design_every: int = 0
    design_targets: int = 4
    design_weight: float = 0.0

    def __post_init__(self):
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise PvaeError(f"train.split {self.split}: three positive fractions summing to 1")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise PvaeError("train: epochs, batch_size >= 1 and lr > 0 required")
        if self.lr_schedule not in LR_SCHEDULES:
            raise PvaeError(f"train.lr_schedule {self.lr_schedule!r}: choose from {LR_SCHEDULES}")
        if self.beta < 0 or self.gamma < 0:
            raise PvaeError("train: beta and gamma must be >= 0")
        if self.dataset_size is not None and self.dataset_size < 1:
            raise PvaeError(f"train.dataset_size {self.dataset_size}: must be >= 1")
        if self.epoch_samples is not None and self.epoch_samples < 1:
            raise PvaeError(f"train.epoch_samples {self.epoch_samples}: must be >= 1")
        if self.fidelity_every < 0 or self.fidelity_samples < 1 or self.fidelity_weight < 0:
            raise PvaeError("train: fidelity_every >= 0, fidelity_samples >= 1, "
                            "fidelity_weight >= 0 required")  # fmt: skip
        if self.fidelity_weight > 0 and self.fidelity_every != 1:
            raise PvaeError("train.fidelity_weight > 0 puts fidelity in the study metric: "
                            "it needs train.fidelity_every = 1")  # fmt: skip
        if self.generation_every < 0 or self.generation_samples < 2 or self.generation_weight < 0:
            raise PvaeError("train: generation_every >= 0, generation_samples >= 2, "
                            "generation_weight >= 0 required")  # fmt: skip
        if self.generation_source not in GENERATION_SOURCES:
            raise PvaeError(f"train.generation_source {self.generation_source!r}: choose from "
                            f"{GENERATION_SOURCES}")  # fmt: skip
        if self.generation_weight > 0 and self.generation_every != 1:
            raise PvaeError("train.generation_weight > 0 puts realism in the study metric: "
                            "it needs train.generation_every = 1")  # fmt: skip
        if self.design_every < 0 or self.design_targets < 1 or self.design_weight < 0:
            raise PvaeError("train: design_every >= 0, design_targets >= 1, "
                            "design_weight >= 0 required")  # fmt: skip
        if self.design_weight > 0 and self.design_every == 0:
            raise PvaeError("train.design_weight > 0 puts design success in the study "
                            "metric: it needs train.design_every >= 1")  # fmt: skip


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment file: model, training and (for studies) the ``tune`` section.

    Attributes
    ----------
    name : str
    dataset : str or None
        Dataset directory (relative to the experiment file or absolute); the CLI's
        ``--dataset`` overrides it; None = the embedded default dataset.
    model : ModelConfig
    train : TrainConfig
    tune : dict
        The study definition, interpreted by :mod:`tune.study` (never by ``pvae``).
    """

    name: str = "experiment"
    dataset: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: dict = field(default_factory=dict)

    def with_overrides(self, overrides: dict) -> "ExperimentConfig":
        """A copy with ``{"model.latent_dim": 8, "train.beta": 0.1, ...}`` applied."""
        model, train = dataclasses.asdict(self.model), dataclasses.asdict(self.train)
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            target = {"model": model, "train": train}.get(section)
            if target is None or name not in target:
                raise PvaeError(f"unknown parameter {key!r} (use model.<field> or train.<field>)")
            target[name] = value
        return dataclasses.replace(self, model=_build(ModelConfig, model, "model"),
                                   train=_build(TrainConfig, train, "train"))  # fmt: skip

    def to_dict(self) -> dict:
        """Plain dict (YAML/JSON ready) of the resolved configuration."""
        return _plain(dataclasses.asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls, values: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise PvaeError(f"{where}: unknown key {sorted(unknown)[0]!r}; keys: {', '.join(fields)}")
    converted = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = tuple(value)
        converted[name] = value
    try:
        return cls(**converted)
    except TypeError as exc:
        raise PvaeError(f"{where}: {exc}") from None


def experiment_from_dict(data: dict, where: str = "experiment") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a (partial) dict, validating every key."""
    data = dict(data or {})
    unknown = set(data) - {"name", "dataset", "model", "train", "tune"}
    if unknown:
        raise PvaeError(f"{where}: unknown section {sorted(unknown)[0]!r}")
    return ExperimentConfig(
        name=str(data.get("name", "experiment")),
        dataset=data.get("dataset"),
        model=_build(ModelConfig, data.get("model") or {}, f"{where}: model"),
        train=_build(TrainConfig, data.get("train") or {}, f"{where}: train"),
        tune=dict(data.get("tune") or {}),
    )


def saved_experiment(data: dict) -> dict:
    """The ``experiment`` record of a saved checkpoint or bundle, with this version's fields.

    A model saved before ``model.norm_groups`` existed was built with
    :data:`SAVED_BEFORE_NORM_GROUPS` groups: it is rebuilt so, not with today's default.
    """
    model = {"norm_groups": SAVED_BEFORE_NORM_GROUPS, **data["model"]}
    return {**data, "model": model}


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment YAML file (``yaml.safe_load``) into a validated config.

    A relative ``dataset`` is resolved against the file's folder.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PvaeError(f"{path}: no such experiment file") from None
    except yaml.YAMLError as exc:
        raise PvaeError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise PvaeError(f"{path}: an experiment file is a YAML mapping")
    config = experiment_from_dict(data, str(path))
    if config.dataset and not Path(config.dataset).is_absolute():
        config = dataclasses.replace(config, dataset=str((path.parent / config.dataset).resolve()))
    critic = config.train.fidelity_surrogate
    if critic and not Path(critic).is_absolute():
        critic = str((path.parent / critic).resolve())
        train = dataclasses.replace(config.train, fidelity_surrogate=critic)
        config = dataclasses.replace(config, train=train)
    return config
