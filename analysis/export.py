"""``pvae export``: the chosen trial's best checkpoint as a self-contained model bundle."""

import math
import shutil
from pathlib import Path

import pandas as pd

from analysis.plots import save
from analysis.selection import SelectionRule, choose
from analysis.study import METRIC, Study
from pvae.core.atomic import atomic_directory, check_out
from pvae.core.errors import PvaeError
from pvae.core.provenance import versions
from pvae.data.store.layout import SURROGATE
from pvae.vae.bundle import (
    BUNDLE_FORMAT,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    write_bundle_core,
    write_torchscript,
)
from pvae.vae.critic import CRITIC
from pvae.vae.prior import PRIOR
from pvae.vae.train import model_from_checkpoint, read_checkpoint


def _trial_row(
    study: Study, trial_id: str | None, rule: SelectionRule | None
) -> tuple[pd.Series, str]:
    if trial_id is None:
        choice = choose(study.trials, rule, study.finalists)
        return choice.row, choice.reason
    match = study.trials[study.trials["trial_id"].astype(str) == str(trial_id)]
    if match.empty:
        known = ", ".join(study.trials["trial_id"].astype(str).head(10))
        raise PvaeError(f"{study.root}: no trial {trial_id!r} (trials: {known}, ...)")
    row = match.iloc[0]
    return row, f"Trial {trial_id} exported as requested (status {row['status']})."


def _learning_curve(study: Study, trial_id: str, folder: Path) -> Path:
    import matplotlib.pyplot as plt

    curve = study.history[study.history["trial_id"] == trial_id]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for column in (METRIC, "val_recon", "val_reg"):
        if column in curve:
            ax.plot(curve["epoch"], curve[column], "o-", ms=3, label=column)
    ax.set(xlabel="epoch", title=f"trial {trial_id}", yscale="log")
    ax.legend(fontsize=8)
    return save(fig, folder / "learning_curve")


def _clean(value):
    """A JSON-ready plain value (numpy scalars and arrays converted, NaN -> None)."""
    value = value.tolist() if hasattr(value, "tolist") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


CARD_METRICS = (
    ("dice", "Dice of reconstructed pore space (val)"),
    ("fidelity_success", "decoded structures within the design tolerance (val, CNN surrogate)"),
    ("realism", "realistic decoded recombinations (in-study draws; the prior's: pvae evaluate)"),
    ("coverage", "validation structures covered by those draws"),
    ("design_success", "validation targets met by designs (critic)"),
)
"""Validation metrics of the model card besides R^2 (``best_val_<key>``), where measured."""


def model_card(name: str, record: dict, metrics: dict, reason: str, state: dict,
               prior_steps: int = 0) -> str:  # fmt: skip
    """The bundle's README.md: what the model is, how well it does, how to use it."""
    model = state["experiment"]["model"]
    prov = record["provenance"]
    targets = ", ".join(state["normalizer"]["names"])
    r2 = "\n".join(
        f"| R^2 {k} (val) | {v:.4f} |"
        for k, v in metrics.items()
        if k.startswith("best_val_r2_") and v is not None
    )
    measured = "\n".join(
        f"| {label} | {metrics[f'best_val_{key}']:.4f} |"
        for key, label in CARD_METRICS
        if metrics.get(f"best_val_{key}") is not None
    )
    layout = model.get("latent_layout", "flat")
    latent = f"Latent: {layout}, {model['latent_dim']} values"
    if layout == "spatial":
        latent += " (a grid of channels on the encoder's last stage)"
    success, median = metrics.get("best_val_fidelity_success"), metrics.get("best_val_fidelity")
    if success is None:
        fidelity = (
            "Fidelity of decoded structures: not measured in the study (train with "
            "`train.fidelity_every`); measure it with `pvae evaluate` (LBM)."
        )
    else:
        fidelity = (
            f"Fidelity of decoded structures (validation, CNN surrogate, paired): "
            f"**{success:.0%}** of decoded samples within the design tolerance (porosity 0.02, "
            f"log10 K 0.1), median |log10 K error| {median:.3f} decades. The LBM figure on "
            "the test split: `pvae evaluate`."
        )
    return f"""# Model card: {name}

A property-variational autoencoder (3D convolutional VAE + regressor on the latent mean)
exported by `pvae export` from study `{record["provenance"]["study"]}`, trial
`{record["provenance"]["trial_id"]}` (epoch {state["epoch"]}).

{reason}

{fidelity}

## Inputs and outputs
- Input: voxel image of shape {tuple(state["input_shape"])} (z, y, x), 1 = pore, 0 = solid.
- {latent}; regressor targets {targets}
  (porosity; log10 of the permeability diagonal in lattice units, superficial Darcy velocity;
  K_xx is flow along the last image axis).
- Training data: dataset fingerprint `{state["dataset_fingerprint"]}`; target ranges seen in
  training: {", ".join(f"{k} [{v[0]:.3g}, {v[1]:.3g}]" for k, v in state["target_ranges"].items())}.

## Validation metrics (best epoch)
| metric | value |
|---|---:|
| {METRIC} (study metric, `tune/README.md`) | {metrics.get(f"best_{METRIC}", float("nan")):.4f} |
{r2}
{measured}

## Use
```python
import pvae
loaded = pvae.load_model("{name}")          # model, normaliser, ranges, provenance
```
```bash
pvae evaluate --model {name} --dataset DATASET --split test
pvae inverse --model {name} --target porosity=0.7 --target k_xx=2.0
```
Without pvae: `torch.jit.load("{TORCHSCRIPT_FILE}")(x)` returns (mu, logvar, standardized
prediction); de-standardize with `normalizer` in `bundle.json` (value = pred * std + mean).

## Files
`bundle.json` (configuration, normalisation, ranges, splits, provenance, format
`{BUNDLE_FORMAT}`), `{WEIGHTS_FILE}`, `{TORCHSCRIPT_FILE}`, `figures/learning_curve.png`, and
`{CRITIC}` (the training dataset's CNN surrogate, the critic `pvae inverse` uses) when the
dataset has one{prior_file(prior_steps)}.

## Provenance
git commit `{prov["git_commit"]}`, pvae {prov["pvae"]}, torch {prov["versions"].get("torch")},
ray {prov["versions"].get("ray")}.
"""


def prior_file(steps: int) -> str:
    """The model card's words on ``prior.pt``, or nothing without one."""
    if not steps:
        return ""
    return (f", and `{PRIOR}` (a latent diffusion prior fitted to the training split in "
            f"{steps} denoiser steps: `pvae sample` and `pvae inverse` draw new structures "
            "from it)")  # fmt: skip


def fit_bundle_prior(bundle: Path, state: dict, steps: int, progress=None) -> None:
    """Write ``prior.pt`` into ``bundle``: latent diffusion fitted to the training split.

    Parameters
    ----------
    bundle : Path
        A bundle folder holding at least the core files.
    state : dict
        The exported checkpoint; its dataset must still have the recorded fingerprint.
    steps : int
        Denoiser training steps.
    progress : callable(step, loss), optional
    """
    from pvae.data.store import open_dataset
    from pvae.vae.loading import load_model
    from pvae.vae.prior import fit_prior, save_prior

    store = open_dataset(state["dataset_path"])
    if store.fingerprint != state["dataset_fingerprint"]:
        raise PvaeError(f"{store.root}: changed since the trial trained on it; a prior is "
                        "fitted to the model's training split")  # fmt: skip
    loaded = load_model(bundle)
    prior = fit_prior("diffusion", loaded, store, loaded.state["splits"]["train"],
                      steps=steps, progress=progress)  # fmt: skip
    save_prior(prior, bundle / PRIOR)


def export_trial(
    study: Study,
    out: str | Path,
    trial_id: str | None = None,
    rule: SelectionRule | None = None,
    overwrite: bool = False,
    prior_steps: int = 0,
    progress=None,
) -> Path:
    """Export a trial's best checkpoint as a bundle (see :mod:`pvae.vae.bundle`).

    Parameters
    ----------
    study : Study
    out : str or Path
        Bundle directory (written atomically).
    trial_id : str, optional
        Trial to export; default: the production-model rule's choice.
    rule : SelectionRule, optional
    overwrite : bool
        Replace an existing non-empty ``out``.
    prior_steps : int
        Also fit a latent diffusion prior in this many denoiser steps (0 = none;
        :func:`fit_bundle_prior`).
    progress : callable(step, loss), optional
        Called per denoiser step.

    Returns
    -------
    Path
    """
    check_out(out, overwrite)
    row, reason = _trial_row(study, trial_id, rule)
    checkpoint = row.get("best_checkpoint")
    if not isinstance(checkpoint, str) or not checkpoint:
        raise PvaeError(f"{study.root}: trial {row['trial_id']} has no checkpoint to export")
    if "://" not in checkpoint and not Path(checkpoint).is_file():
        raise PvaeError(f"{checkpoint}: checkpoint of trial {row['trial_id']} is missing")
    state = read_checkpoint(checkpoint)
    model, _ = model_from_checkpoint(state)
    metrics = {k: _clean(v) for k, v in row.items() if str(k).startswith(("best_", "final_"))}
    provenance = {
        "study": study.name,
        "study_folder": str(study.root),
        "trial_id": str(row["trial_id"]),
        "trial_status": row["status"],
        "config": {k: _clean(v) for k, v in row.items() if str(k).startswith(("model.", "train."))},
        "dataset_fingerprint": state["dataset_fingerprint"],
        "git_commit": state["code_version"].get("git_commit"),
        "pvae": state["code_version"].get("pvae"),
        "versions": study.record.get("versions", versions()),
    }
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        extra = {"metrics": metrics, "provenance": provenance, "selection": reason}
        write_bundle_core(tmp, state, extra)
        write_torchscript(model, tmp)
        critic = Path(state["dataset_path"]) / SURROGATE
        if critic.is_file():
            shutil.copyfile(critic, tmp / CRITIC)
        if prior_steps:
            fit_bundle_prior(tmp, state, prior_steps, progress)
        (tmp / "figures").mkdir()
        _learning_curve(study, str(row["trial_id"]), tmp / "figures")
        for pdf in (tmp / "figures").glob("*.pdf"):
            pdf.unlink()  # PNG only: PDFs embed dates, and a bundle is reproducible
        card = model_card(out.name, {"provenance": provenance}, metrics, reason, state,
                          prior_steps)  # fmt: skip
        (tmp / "README.md").write_text(card)
    return out
