"""Validation design success while a model trains: what a study selects a design model by.

A study can afford no LBM solve per epoch, so the probe designs a fixed handful of
targets with the critic alone: the property vectors of ``train.design_targets``
validation samples (:func:`~pvae.design.targets.dataset_targets`, spread over the
split), each designed from the trainer's own training subset as the design pool, with
:data:`PROBE_SETTINGS` (a cheap version of ``pvae inverse``'s search:
:func:`~pvae.design.inverse.estimated_score`). A target counts as met when its best
estimated score is within tolerance. It is a screen: physics decides only when the
chosen model's designs are verified by LBM (``pvae inverse``,
``bench/bench_inverse.py``).

Metrics (every ``train.design_every`` epochs, at the first and at the last):
``val_design_success`` (share of the targets met by the critic's estimate) and
``val_design_score`` (median best estimated score, tolerance units). The study metric
adds ``train.design_weight * (1 - val_design_success)``
(:meth:`pvae.vae.train.Trainer.run`).
"""

from pathlib import Path

import numpy as np

from pvae.core.errors import PvaeError
from pvae.design.inverse import InverseSettings, estimated_score
from pvae.design.pool import DesignPool
from pvae.design.targets import K_TARGETS, dataset_targets
from pvae.vae.fidelity import critic_surrogate
from pvae.vae.loading import LoadedModel

PROBE_SETTINGS = InverseSettings(
    candidates=1, starts=4, parents=4, mixtures=32, prior_samples=0, blur_seeds=0, steps=10,
    lbm_budget=1, critic_steps=0,
)
"""The probe's search: 4 parents, 32 screened mixtures, 4 starts optimised 10 steps. No blurs
(:mod:`pvae.design.blur`): they let the critic expect success from any model's decodes, so
the probe no longer told trials apart (the demo's study with 4 blurred seeds: 7 of 8 trials
scored 2 of 2, three of them stopped after 3 epochs; without blurs every stopped trial
scored 0 of 2)."""


class DesignProbe:
    """``val_design_success`` and ``val_design_score`` of a trainer's current model.

    Call it with a :class:`~pvae.vae.train.Trainer`; the targets, pool and critic are
    set up at the first call (the critic is the trainer's fidelity surrogate, or
    ``train.fidelity_surrogate`` / the dataset's ``surrogate.pt``).

    Parameters
    ----------
    settings : InverseSettings
    """

    def __init__(self, settings: InverseSettings = PROBE_SETTINGS):
        self.settings = settings
        self.targets = self.pool = self.critic = None

    def _setup(self, trainer) -> None:
        store, cfg = trainer.store, trainer.config.train
        # dataset_targets keeps samples with percolating K labels only
        self.targets = [t for _, t in dataset_targets(store, trainer.splits["val"],
                                                      cfg.design_targets)]  # fmt: skip
        labels = store.manifest[["porosity", *K_TARGETS]].notna().all(axis=1).to_numpy()
        rows = np.asarray(trainer.train_indices, dtype=int)
        rows = np.sort(rows[labels[rows]])
        if not self.targets or not len(rows):
            raise PvaeError(f"{store.root}: design probe needs LBM-labelled training and "
                            "validation samples")  # fmt: skip
        self.pool = DesignPool(store, rows, f"training subset of {store.root} ({len(rows)})")
        if trainer.critic is not None:
            self.critic = trainer.critic.surrogate
        else:
            self.critic = critic_surrogate(cfg.fidelity_surrogate, store, str(trainer.device))

    def __call__(self, trainer) -> dict:
        """Design every probe target with the trainer's model; the two metrics."""
        if self.targets is None:
            self._setup(trainer)
        loaded = LoadedModel(trainer.model, trainer.normalizer, trainer.target_ranges,
                             str(trainer.store.root), trainer.store.fingerprint,
                             {"input_shape": list(trainer.store.shape), "splits": trainer.splits},
                             Path(trainer.store.root))  # fmt: skip
        was_training = trainer.model.training
        trainer.model.eval()
        try:
            scores = np.array([
                estimated_score(loaded, target, self.pool, self.settings, self.critic,
                                str(trainer.device))
                for target in self.targets
            ])  # fmt: skip
        finally:
            trainer.model.train(was_training)
        return {"val_design_success": float(np.mean(scores <= 1.0)),
                "val_design_score": float(np.median(scores))}  # fmt: skip


def design_probe(config) -> DesignProbe | None:
    """The probe an experiment's trainer needs: a :class:`DesignProbe` when
    ``train.design_every > 0``, else None."""
    return DesignProbe() if config.train.design_every > 0 else None
