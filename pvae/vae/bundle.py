"""Exported model bundles (``pvae export``): everything needed to use a model elsewhere.

A bundle is a directory::

    bundle.json        format, model configuration, input shape, target normalisation
                       and ranges, splits, metrics, provenance (study, trial, dataset
                       fingerprint, git commit, library versions)
    weights.safetensors  the model's parameters (no pickled code)
    model.torchscript.pt TorchScript of the inference path: image -> (mu, logvar,
                       standardized prediction), for use without pvae
    README.md          model card (metrics, intended use, conventions, figures)
    figures/           learning curve, parity plot, reconstruction slices

Every file is written deterministically, so exporting the same checkpoint twice (two
runs of ``pvae export``) gives identical files. (Within one Python process, TorchScript
renames a class traced a second time, so only the TorchScript file would differ.)
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pvae.core.errors import PvaeError
from pvae.vae.config import saved_experiment

BUNDLE_FORMAT = "pvae-bundle-1"
BUNDLE_FILE = "bundle.json"
WEIGHTS_FILE = "weights.safetensors"
TORCHSCRIPT_FILE = "model.torchscript.pt"
_STATE_KEYS = (
    "experiment",
    "input_shape",
    "normalizer",
    "target_ranges",
    "splits",
    "dataset_fingerprint",
    "dataset_path",
    "code_version",
    "epoch",
)


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle directory."""
    return (Path(path) / BUNDLE_FILE).is_file()


def write_bundle_core(folder: Path, state: dict, extra: dict) -> None:
    """Write ``bundle.json`` and ``weights.safetensors`` from a checkpoint dict.

    Parameters
    ----------
    folder : Path
        Existing (temporary) bundle directory.
    state : dict
        A training checkpoint (:meth:`pvae.vae.train.Trainer.state`).
    extra : dict
        ``metrics`` and ``provenance`` to record.
    """
    weights = {k: v.detach().cpu().contiguous() for k, v in state["model_state"].items()}
    save_file(weights, folder / WEIGHTS_FILE, metadata={"format": BUNDLE_FORMAT})
    record = {"format": BUNDLE_FORMAT, **{k: state.get(k) for k in _STATE_KEYS}, **extra}
    (folder / BUNDLE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_bundle(path: str | Path) -> dict:
    """A bundle as a checkpoint-like dict (``model_state`` from safetensors).

    Raises
    ------
    PvaeError
        For a bundle of another format version or with missing files.
    """
    path = Path(path)
    try:
        record = json.loads((path / BUNDLE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PvaeError(f"{path}: unreadable model bundle ({exc.__class__.__name__})") from None
    if record.get("format") != BUNDLE_FORMAT:
        raise PvaeError(
            f"{path}: model bundle format {record.get('format')!r}; this pvae reads "
            f"{BUNDLE_FORMAT} (re-export it with this version: pvae export)"
        )
    if not (path / WEIGHTS_FILE).is_file():
        raise PvaeError(f"{path}: model bundle without {WEIGHTS_FILE}")
    record["model_state"] = load_file(path / WEIGHTS_FILE)
    record["experiment"] = saved_experiment(record["experiment"])
    return record


class InferenceModule(torch.nn.Module):
    """TorchScript-able inference path: image (B, 1, D, H, W) -> mu, logvar, prediction."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.model.encode(x)
        return mu, logvar, self.model.predict(mu)


def write_torchscript(model, folder: Path) -> Path:
    """Trace the inference path of ``model`` to ``model.torchscript.pt``."""
    model = model.cpu().eval()
    example = torch.zeros(1, 1, *model.input_shape)
    traced = torch.jit.trace(InferenceModule(model), example, check_trace=False)
    path = folder / TORCHSCRIPT_FILE
    torch.jit.save(traced, path)
    return path


def read_torchscript(path: str | Path):
    """Load a bundle's TorchScript module (no pvae code needed at the user's end)."""
    return torch.jit.load(Path(path) / TORCHSCRIPT_FILE, map_location="cpu")
