"""Loading a trained model from any of the forms the CLI accepts as ``--model M``.

M is a checkpoint file, a training run directory (meaning its best checkpoint), or an
exported model bundle (``pvae export``). Loading never unpickles arbitrary objects.
"""

from dataclasses import dataclass
from pathlib import Path

from pvae.core.device import resolve_device
from pvae.core.errors import PvaeError
from pvae.vae.bundle import is_bundle, read_bundle
from pvae.vae.model import PVAE
from pvae.vae.runs import resolve_checkpoint
from pvae.vae.targets import TargetNormalizer
from pvae.vae.train import model_from_checkpoint, read_checkpoint


@dataclass
class LoadedModel:
    """A trained pVAE with what is needed to use it.

    Attributes
    ----------
    model : PVAE
        In eval mode.
    normalizer : TargetNormalizer
        Standardisation of the regressor's targets.
    target_ranges : dict
        Target name -> [min, max] over the training data (raw units).
    dataset_path : str
        Dataset it was trained on (may not exist on this machine).
    dataset_fingerprint : str
    state : dict
        The full checkpoint (configuration, splits, provenance, history).
    source : Path
        The file it was loaded from.
    """

    model: PVAE
    normalizer: TargetNormalizer
    target_ranges: dict
    dataset_path: str
    dataset_fingerprint: str
    state: dict
    source: Path

    @property
    def targets(self) -> tuple[str, ...]:
        return self.normalizer.names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.state["input_shape"])

    def check_shape(self, store) -> None:
        """:class:`PvaeError` unless the dataset's images have the model's input shape."""
        if store.shape != self.input_shape:
            raise PvaeError(
                f"{store.root}: images are {store.shape}, the model expects {self.input_shape}"
            )


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Rebuild a trained model from a checkpoint, run directory or bundle.

    Parameters
    ----------
    path : str or Path
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    """
    if is_bundle(path):
        source = Path(path)
        state = read_bundle(source)
    else:
        source = resolve_checkpoint(path)
        state = read_checkpoint(source)
    model, normalizer = model_from_checkpoint(state, str(resolve_device(device)))
    return LoadedModel(
        model=model,
        normalizer=normalizer,
        target_ranges=state.get("target_ranges", {}),
        dataset_path=state["dataset_path"],
        dataset_fingerprint=state["dataset_fingerprint"],
        state=state,
        source=source,
    )
