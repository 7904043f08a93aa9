"""The physics critic of inverse design: a CNN surrogate that scores decoded structures.

The pVAE's regressor predicts properties from z; it does not see the structure the
decoder makes of z. The critic (a :class:`~pvae.surrogate.SurrogateEnsemble`) reads
the voxels themselves. During the latent optimisation decode(z) is binarized at the
target porosity with a straight-through estimator (:func:`straight_through`): the
critic sees the exact binary structure that will be verified, and its gradient flows
back through a sigmoid relaxation and the decoder into z.

Where the critic comes from (:func:`find_critic`): an explicit file; else
``critic.pt`` beside the model (``make design-model`` puts it in the run folder, and
``pvae export`` copies it into the bundle); else the ``surrogate.pt`` of the model's
training dataset.
"""

from pathlib import Path

import torch

from pvae.core.errors import PvaeError
from pvae.data.store.layout import SURROGATE
from pvae.surrogate import SurrogateEnsemble, load_surrogate
from pvae.vae.loading import LoadedModel

CRITIC = "critic.pt"


def critic_candidates(model_path: str | Path, loaded: LoadedModel) -> list[Path]:
    """Where a model's critic is looked for, in order."""
    model_path = Path(model_path)
    folder = model_path if model_path.is_dir() else model_path.parent
    return [folder / CRITIC, Path(loaded.dataset_path) / SURROGATE]


def find_critic(
    model_path: str | Path, loaded: LoadedModel, path: str | Path | None = None, device="cpu"
) -> tuple[SurrogateEnsemble | None, Path | None]:
    """The critic for a model, checked against its image shape, and its file.

    Parameters
    ----------
    model_path : str or Path
        What the model was loaded from (checkpoint, run folder or bundle).
    loaded : LoadedModel
    path : str or Path, optional
        An explicit critic bundle (must exist).
    device : str

    Returns
    -------
    (SurrogateEnsemble, Path), or (None, None) when there is none.
    """
    if path is not None and not Path(path).is_file():
        raise PvaeError(f"{path}: no such critic (a bundle from pvae surrogate train)")
    found = [Path(path)] if path is not None else critic_candidates(model_path, loaded)
    for candidate in found:
        if candidate.is_file():
            critic = load_surrogate(candidate, device)
            critic.check_shape(loaded.input_shape, candidate)
            return critic, candidate
    return None, None


def straight_through(
    logits: torch.Tensor, porosity: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Binarize decoder logits at a pore fraction, with a soft gradient.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, 1, D, H, W)
    porosity : torch.Tensor, shape (B,)
        Pore fraction of each structure (the share of voxels above the threshold).
    temperature : float
        Logit scale of the sigmoid relaxation used for the gradient.

    Returns
    -------
    torch.Tensor, shape (B, 1, D, H, W)
        Forward: exactly 0/1, pore where the logit is above the (1 - porosity)
        quantile of that structure's logits. Backward: the gradient of
        ``sigmoid((logits - threshold) / temperature)``.
    """
    flat = logits.detach().flatten(1)  # (B, V)
    count = flat.shape[1]
    solid = (count - torch.round(porosity * count)).clamp(1, count).long()  # voxels at or below
    threshold = torch.sort(flat, dim=1).values.gather(1, (solid - 1)[:, None])  # (B, 1)
    threshold = threshold.view(-1, 1, 1, 1, 1)
    soft = torch.sigmoid((logits - threshold) / temperature)
    hard = (logits > threshold).to(logits.dtype)
    return hard + soft - soft.detach()
