"""Training a pVAE: one metrics dict per epoch, checkpoints that resume exactly.

Usable from a script, a notebook or a Ray trainable (which wraps :class:`Trainer`
thinly, see :mod:`tune.trainable`)::

    trainer = Trainer(load_experiment("experiments/smoke.yaml"), "data/default")
    for metrics in trainer.run():
        print(metrics["epoch"], metrics["val_objective"])
    trainer.save("run/last.pt")

Determinism: every epoch seeds torch from ``(train.seed, epoch)`` before shuffling,
augmenting and dropout, so a run resumed from the checkpoint of epoch e continues
exactly as the uninterrupted run (on CPU; CUDA kernels may differ in the last bits).

The study metric ``val_objective`` = validation reconstruction BCE + validation
property MSE (standardized), *unweighted*: it does not depend on the searched beta and
gamma, so trials with different loss weights compare fairly. Lower is better. With
``train.fidelity_every`` the decoded validation structures are measured by a CNN
surrogate (``val_fidelity``, ``val_fidelity_success``, :mod:`pvae.vae.fidelity`), and with
``train.fidelity_weight = w`` the study metric becomes
``val_recon + val_reg + w * (1 - val_fidelity_success)``: a model whose decoded
structures miss their source's permeability cannot win a study.
"""

import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pvae.core.device import resolve_device
from pvae.core.errors import PvaeError
from pvae.core.metrics import r2_score
from pvae.core.provenance import code_version
from pvae.core.torch_files import load_torch, save_torch
from pvae.core.warnings import PvaeWarning
from pvae.data.descriptors import descriptors, store_descriptors
from pvae.data.splits import epoch_seed, make_splits, training_subset
from pvae.data.store.reader import VoxelStore, open_dataset
from pvae.data.store.torch_dataset import VoxelDataset
from pvae.vae.config import (
    ExperimentConfig,
    ModelConfig,
    experiment_from_dict,
    saved_experiment,
)
from pvae.vae.fidelity import (
    Critic,
    critic_surrogate,
    fidelity_summary,
    labelled_k,
    measure_fidelity,
    spread_positions,
)
from pvae.vae.generation import (
    decode_structures,
    encode_structures,
    generation_metrics,
    recombination_latents,
)
from pvae.vae.inference import autocast, batch_tensors, infer
from pvae.vae.losses import pvae_loss
from pvae.vae.model import PVAE
from pvae.vae.prior import StandardNormalPrior
from pvae.vae.targets import TargetNormalizer, target_ranges, target_values

CHECKPOINT_FORMAT = "pvae-checkpoint-1"
STUDY_METRIC = "val_objective"


def adamw(model: torch.nn.Module, **options) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters, fused (one kernel for all of them) on CPU and
    CUDA; ``options`` as ``torch.optim.AdamW`` takes them."""
    device = next(model.parameters()).device.type
    return torch.optim.AdamW(model.parameters(), fused=device in ("cpu", "cuda"), **options)


class Trainer:
    """A pVAE, its optimiser, data splits and history.

    Parameters
    ----------
    config : ExperimentConfig
    dataset : VoxelStore or str or Path
        The dataset (read by index, never copied).
    device : str, optional
        Overrides ``config.train.device``.
    design_probe : callable, optional
        ``probe(trainer) -> dict`` of ``val_design_success`` and ``val_design_score``
        (:class:`pvae.design.probe.DesignProbe`); required when
        ``train.design_every > 0``.
    """

    def __init__(self, config: ExperimentConfig, dataset, device: str | None = None,
                 design_probe=None):  # fmt: skip
        self.config = config
        if config.train.design_every > 0 and design_probe is None:
            raise PvaeError("train.design_every needs the design probe "
                            "(pvae.design.probe.DesignProbe; pvae train and pvae tune give it)")
        self.design_probe = design_probe
        self.store = dataset if isinstance(dataset, VoxelStore) else open_dataset(dataset)
        cfg = config.train
        self.device = resolve_device(device or cfg.device)
        self.splits = make_splits(len(self.store), cfg.split, cfg.split_seed)
        if cfg.dataset_size is not None and cfg.dataset_size > len(self.splits["train"]):
            warnings.warn(
                f"dataset_size {cfg.dataset_size} exceeds the training split "
                f"({len(self.splits['train'])} samples of {self.store.root}); capped",
                PvaeWarning,
                stacklevel=2,
            )
        self.train_indices = training_subset(self.splits["train"], cfg.dataset_size)
        values = target_values(self.store, config.model.targets)
        self.normalizer = TargetNormalizer.fit(values[self.train_indices], config.model.targets)
        self.target_ranges = target_ranges(values[self.train_indices], config.model.targets)
        torch.manual_seed(cfg.seed)
        self.model = PVAE(config.model, self.store.shape).to(self.device)
        self.optimizer = adamw(self.model, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.critic, self.fidelity_rows = None, np.zeros(0, dtype=int)
        if cfg.fidelity_every > 0:
            surrogate = critic_surrogate(cfg.fidelity_surrogate, self.store, str(self.device))
            self.critic = Critic("surrogate", surrogate)
            val = np.asarray(self.splits["val"], dtype=int)
            self.fidelity_rows = val[spread_positions(len(val), cfg.fidelity_samples)]
            self.fidelity_k = labelled_k(self.store, self.fidelity_rows)
        if cfg.generation_every > 0:
            self.generation_reference = store_descriptors(self.store, self.train_indices)
            self.generation_held_out = store_descriptors(self.store, self.splits["val"])
            # recombined encodings: twice as many training samples as draws, spread
            train = np.sort(np.asarray(self.train_indices, dtype=int))
            count = min(len(train), 2 * cfg.generation_samples)
            self.generation_images = self.store.images(train[spread_positions(len(train), count)])
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None

    # -- training -----------------------------------------------------------------
    def beta_at(self, epoch: int) -> float:
        """Effective KL weight at ``epoch`` (linear warm-up)."""
        warmup = self.config.train.kl_warmup_epochs
        return self.config.train.beta * (min(1.0, epoch / warmup) if warmup > 0 else 1.0)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (1-based) under ``train.lr_schedule``."""
        cfg = self.config.train
        if cfg.lr_schedule == "constant" or cfg.epochs == 1:
            return cfg.lr
        progress = (epoch - 1) / (cfg.epochs - 1)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

    def _loader(self, indices, shuffle: bool, augment: bool, epoch: int,
                samples: int | None = None):  # fmt: skip
        """Batches of ``indices``; shuffled: ``samples`` drawn from successive shuffled
        passes (None = one pass)."""
        cfg = self.config.train
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        dataset = VoxelDataset(self.store, indices, augment=augment)
        sampler = None
        if shuffle:
            sampler = torch.utils.data.RandomSampler(dataset, num_samples=samples,
                                                     generator=generator)  # fmt: skip
        return torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                                           generator=generator,
                                           num_workers=cfg.num_workers)  # fmt: skip

    def train_epoch(self, epoch: int) -> dict:
        """One epoch (a pass over the training subset, or ``train.epoch_samples``
        samples); returns mean loss components."""
        torch.manual_seed(epoch_seed(self.config.train.seed, epoch))
        self.model.train()
        beta, gamma = self.beta_at(epoch), self.config.train.gamma
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(epoch)
        sums, seen = np.zeros(4), 0
        cfg = self.config.train
        for batch in self._loader(self.train_indices, True, cfg.augment, epoch, cfg.epoch_samples):
            x, y = batch_tensors(batch, self.normalizer, self.device)  # (B, 1, D, H, W), (B, T)
            with autocast(self.device, cfg.amp, cfg.amp_cpu):
                parts = pvae_loss(self.model(x), x, y, beta, gamma)
            if not torch.isfinite(parts.total):
                return {"status": "diverged"}
            self.optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            self.optimizer.step()
            values = [parts.total, parts.recon, parts.kl, parts.reg]
            sums += np.array([v.item() for v in values]) * len(x)
            seen += len(x)
        loss, recon, kl, reg = (float(v) for v in sums / max(seen, 1))
        return {"status": "ok", "train_loss": loss, "train_recon": recon, "train_kl": kl,
                "train_reg": reg, "beta": beta, "lr": self.lr_at(epoch)}  # fmt: skip

    def predict(self, indices) -> dict:
        """:func:`pvae.vae.inference.infer` of the current model over dataset rows."""
        return infer(self.model, self.normalizer, self.store, indices,
                     self.config.train.batch_size, self.config.train.amp)  # fmt: skip

    def validate(self, indices=None, prefix: str = "val") -> dict:
        """Validation metrics (``<prefix>_objective``, R^2 per target, Dice, ...)."""
        p = self.predict(self.splits["val"] if indices is None else indices)
        n_voxels = math.prod(self.store.shape)
        reg = float(np.nanmean(p["reg_sq"])) if np.isfinite(p["reg_sq"]).any() else 0.0
        recon = float(p["recon_bce"].mean())
        metrics = {
            f"{prefix}_recon": recon,
            f"{prefix}_kl": float(p["kl"].mean() / n_voxels),
            f"{prefix}_reg": reg,
            f"{prefix}_objective": recon + reg,
            f"{prefix}_dice": float(p["dice"].mean()),
            f"{prefix}_porosity_mae": float(
                np.abs(p["porosity_recon"] - p["porosity_true"]).mean()
            ),
        }
        r2 = r2_score(p["target"], p["prediction"])
        for name, score in zip(self.config.model.targets, r2, strict=True):
            metrics[f"{prefix}_r2_{name}"] = float(score)
        metrics[f"{prefix}_r2_mean"] = float(np.nanmean(r2)) if np.isfinite(r2).any() else math.nan
        return metrics

    def fidelity(self) -> dict:
        """``val_fidelity`` (median |log10 K error| of decoded validation structures,
        decades) and ``val_fidelity_success`` (share within tolerance), by the surrogate."""
        images = self.store.images(self.fidelity_rows)
        table = measure_fidelity(self.model, images, self.fidelity_k, self.critic)
        summary = fidelity_summary(table, "surrogate")
        median = summary["median_log10_k_error"]
        return {
            "val_fidelity": math.inf if median is None else median,
            "val_fidelity_success": summary["within_tolerance"],
        }

    @torch.no_grad()
    def generation(self) -> dict:
        """``val_realism`` and ``val_coverage`` of structures decoded from latents drawn
        as ``train.generation_source`` says, against the training subset and the
        validation split.

        The draws are the same at every epoch and in every trial of one ``train.seed``
        (common random numbers): with 16 draws, fresh draws each epoch move one model's
        realism by a standard deviation of 0.10, ten times what the model changes between
        epochs 86 and 160 of the production study (``bench/results/realism_noise.md``),
        and the best epoch was the luckiest.
        """
        cfg = self.config.train
        seed = cfg.seed
        self.model.eval()
        if cfg.generation_source == "recombinations":
            latents = encode_structures(self.model, self.generation_images, cfg.batch_size)
            z = recombination_latents(latents, self.model.latent_shape, cfg.generation_samples,
                                      np.random.default_rng(seed))  # fmt: skip
        else:
            z = StandardNormalPrior(self.config.model.latent_dim).sample(
                cfg.generation_samples, torch.Generator().manual_seed(seed))
        drawn = descriptors(decode_structures(self.model, z, cfg.batch_size))
        scores = generation_metrics(drawn, self.generation_reference, self.generation_held_out)
        return {"val_realism": scores["realism"], "val_coverage": scores["coverage"]}

    def design(self, epoch: int) -> dict:
        """The design probe's metrics: measured at the first epoch, when
        ``train.design_every`` is due and at the last epoch; otherwise the last
        measurement (kept in the history, so also after a resume), so that every
        epoch's study metric carries the model's design success as last measured."""
        last = next((h for h in reversed(self.history) if "val_design_success" in h), None)
        if last is None or self._due(self.config.train.design_every, epoch):
            return self.design_probe(self)
        return {k: last[k] for k in ("val_design_success", "val_design_score")}

    def _due(self, every: int, epoch: int) -> bool:
        return every > 0 and (epoch % every == 0 or epoch == self.config.train.epochs)

    def run(self, progress=None) -> Iterator[dict]:
        """Train the remaining epochs, yielding one metrics dict per epoch.

        A non-finite loss ends the run: the last dict has ``status = "diverged"``.

        Parameters
        ----------
        progress : callable, optional
            Called with each metrics dict (e.g. to advance a progress bar).
        """
        for epoch in range(self.epoch + 1, self.config.train.epochs + 1):
            start = time.perf_counter()
            metrics = {"epoch": epoch, "dataset_size": len(self.train_indices)}
            metrics.update(self.train_epoch(epoch))
            if metrics["status"] == "ok":
                metrics.update(self.validate())
                cfg = self.config.train
                if self._due(cfg.fidelity_every, epoch):
                    metrics.update(self.fidelity())
                    weight = cfg.fidelity_weight
                    metrics[STUDY_METRIC] += weight * (1.0 - metrics["val_fidelity_success"])
                if self._due(cfg.generation_every, epoch):
                    metrics.update(self.generation())
                    metrics[STUDY_METRIC] += cfg.generation_weight * (1.0 - metrics["val_realism"])
                if cfg.design_every > 0:
                    metrics.update(self.design(epoch))
                    metrics[STUDY_METRIC] += cfg.design_weight * (
                        1.0 - metrics["val_design_success"]
                    )
                if not math.isfinite(metrics[STUDY_METRIC]):
                    metrics["status"] = "diverged"
            seconds = time.perf_counter() - start
            seen = self.config.train.epoch_samples or len(self.train_indices)
            metrics.update(time_s=seconds, samples_per_s=seen / seconds)
            if self.device.type == "cuda":  # peak of this process so far
                peak = torch.cuda.max_memory_allocated(self.device)
                metrics["gpu_memory_peak_mib"] = peak / 2**20
            self.epoch = epoch
            if metrics["status"] == "ok" and (
                self.best is None or metrics[STUDY_METRIC] < self.best[STUDY_METRIC]
            ):
                self.best = {"epoch": epoch, STUDY_METRIC: metrics[STUDY_METRIC]}
            metrics["is_best"] = bool(self.best and self.best["epoch"] == epoch)
            self.history.append(metrics)
            if progress is not None:
                progress(metrics)
            yield metrics
            if metrics["status"] != "ok":
                return

    # -- checkpoints --------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to rebuild and resume: tensors and plain values only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "experiment": self.config.to_dict(),
            "input_shape": list(self.store.shape),
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "normalizer": self.normalizer.to_dict(),
            "target_ranges": self.target_ranges,
            "epoch": self.epoch,
            "best": self.best,
            "history": self.history,
            "splits": self.splits,
            "dataset_fingerprint": self.store.fingerprint,
            "dataset_path": str(self.store.root),
            "code_version": code_version(),
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (``torch.save`` of :meth:`state`)."""
        return save_torch(self.state(), path)

    def load_state(self, state: dict) -> None:
        """Resume from :meth:`state` of a run with the same configuration and dataset."""
        if state["dataset_fingerprint"] != self.store.fingerprint:
            raise PvaeError(
                f"checkpoint was trained on dataset {state['dataset_fingerprint']}, "
                f"not {self.store.fingerprint} ({self.store.root})"
            )
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], list(state["history"])

    @classmethod
    def resume(cls, path: str | Path, dataset=None, device: str | None = None) -> "Trainer":
        """A trainer continued from a checkpoint file (dataset default: the recorded path)."""
        state = read_checkpoint(path)
        config = experiment_from_dict(state["experiment"], str(path))
        trainer = cls(config, dataset or state["dataset_path"], device)
        trainer.load_state(state)
        return trainer


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict safely (``weights_only=True``: no arbitrary unpickling)."""
    path = Path(path)
    state = load_torch(path, "pvae checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise PvaeError(f"{path}: not a pvae checkpoint (format {CHECKPOINT_FORMAT} expected)")
    state["experiment"] = saved_experiment(state["experiment"])
    return state


def model_from_checkpoint(state: dict, device: str = "cpu") -> tuple[PVAE, TargetNormalizer]:
    """Rebuild the model (eval mode) and its target normaliser from a checkpoint dict."""
    model_fields = state["experiment"]["model"]
    config = ModelConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in model_fields.items()}
    )
    model = PVAE(config, tuple(state["input_shape"]))
    model.load_state_dict(state["model_state"])
    return model.to(device).eval(), TargetNormalizer.from_dict(state["normalizer"])
