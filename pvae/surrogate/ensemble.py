"""A trained surrogate ensemble: its bundle file and batched prediction.

The bundle is one ``torch.save`` file of plain dicts, lists, numbers and tensors
(loaded with ``weights_only=True``): model config, target normalisation, one state
dict per member, the image shape, training settings and history, the datasets with
their fingerprints and splits, validation metrics, the applicability domain
(:mod:`pvae.surrogate.domain`) and the code version. It rebuilds the ensemble alone.
"""

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.core.torch_files import load_torch, save_torch
from pvae.data.store.reader import VoxelStore
from pvae.physics.connectivity import percolates
from pvae.surrogate.domain import ApplicabilityDomain
from pvae.surrogate.logtensor import LN10, LogNormalizer, exp_tensor, to_matrix
from pvae.surrogate.model import FusedEnsembleCNN, SurrogateConfig

BUNDLE_FORMAT = "pvae-surrogate-1"
LABEL_UNITS = {"permeability": "lattice", "convention": "superficial"}  # what a store holds
CPU_CHUNK = 8  # images per forward pass on CPU: activations stay in cache (~1.3x vs. 32-64)


@dataclass
class Prediction:
    """Surrogate prediction for N images.

    Attributes
    ----------
    k : np.ndarray, shape (N, 3, 3)
        Ensemble permeability (log-Euclidean mean of the members), lattice units,
        superficial convention, (x, y, z) components; 0 in non-percolating rows/columns.
    spread : np.ndarray, shape (N, 3)
        Standard deviation over members of log10 K_ii, decades (0 where K_ii = 0 or
        with a single member).
    percolating : np.ndarray of bool, shape (N, 3)
        Directions (x, y, z) along which the pore space carries flow (exact).
    porosity : np.ndarray, shape (N,)
        Pore voxels / all voxels (exact, not learned).
    """

    k: np.ndarray
    spread: np.ndarray
    percolating: np.ndarray
    porosity: np.ndarray

    @property
    def max_spread(self) -> np.ndarray:
        """Largest spread over the three axes, (N,), decades."""
        return self.spread.max(axis=1)

    @classmethod
    def empty(cls) -> "Prediction":
        """A prediction for no images."""
        return cls(np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros((0, 3), bool), np.zeros(0))

    @classmethod
    def concat(cls, parts: list["Prediction"]) -> "Prediction":
        """Join the predictions of consecutive batches."""
        fields = ("k", "spread", "percolating", "porosity")
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


class SurrogateEnsemble:
    """Members of one trained surrogate, ready to predict.

    Prediction runs all members at once, fused into one network of grouped
    convolutions (:class:`~pvae.surrogate.model.FusedEnsembleCNN`) built from their
    state dicts; the bundle keeps one state dict per member.

    Parameters
    ----------
    config : SurrogateConfig
    normalizer : LogNormalizer
    states : list of dict
        One state dict per member.
    info : dict
        Everything else of the bundle (``input_shape``, ``training``, ``datasets``,
        ``validation``, ``code_version``, ...).
    device : str or torch.device
    bfloat16 : bool
        Run the network under bfloat16 autocast: about 1.5x the throughput on a CPU
        with bf16 units, changing log10 K by a few thousandths of a decade (well below
        the model error); float32 otherwise.
    """

    def __init__(self, config, normalizer, states, info, device="cpu", bfloat16=False):
        self.config, self.normalizer, self.info = config, normalizer, info
        self.bfloat16 = bfloat16
        self.states = states
        self.input_shape = tuple(info["input_shape"])
        self.device = torch.device(device)
        self.network = FusedEnsembleCNN(config, states).to(self.device).eval().requires_grad_(False)

    @property
    def n_members(self) -> int:
        """Ensemble size M."""
        return len(self.states)

    @property
    def domain(self) -> ApplicabilityDomain | None:
        """Where the surrogate can be trusted (:mod:`~pvae.surrogate.domain`); None for a
        bundle made before domains were recorded (``pvae surrogate domain`` adds one)."""
        state = self.info.get("domain")
        return ApplicabilityDomain.from_dict(state) if state else None

    @functools.cached_property
    def fingerprint(self) -> str:
        """Content hash of config, normalisation and weights (``sha256:`` + 16 hex);
        computed once (the weights do not change), though labelling records it per row."""
        digest = hashlib.sha256(repr((self.config, self.normalizer)).encode())
        for state in self.states:
            for name in sorted(state):
                digest.update(name.encode())
                digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
        return f"sha256:{digest.hexdigest()[:16]}"

    def state(self) -> dict:
        """The bundle: plain values and tensors only."""
        return {
            "format": BUNDLE_FORMAT,
            "config": self.config.to_dict(),
            "normalizer": self.normalizer.to_dict(),
            "members": [{k: v.detach().cpu() for k, v in s.items()} for s in self.states],
            **self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically."""
        return save_torch(self.state(), path)

    def check_shape(self, shape, source) -> None:
        """:class:`PvaeError` unless images of ``shape`` match the training shape."""
        if tuple(shape) != self.input_shape:
            raise PvaeError(
                f"{source}: image shape {tuple(shape)} (z, y, x), but the surrogate was "
                f"trained on {self.input_shape}; K in lattice units does not transfer"
            )

    def check_dataset(self, store: VoxelStore, source) -> None:
        """:class:`PvaeError` (one line naming ``source``) unless this surrogate can label
        ``store``'s images: the same image shape, and labels in the store's units
        (:data:`LABEL_UNITS`: lattice units, superficial convention)."""
        self.check_shape(store.shape, source)
        units = self.info.get("units")
        if units != LABEL_UNITS:
            raise PvaeError(
                f"{source}: surrogate trained on labels in units {units or '(unrecorded)'}, "
                f"but {store.root} holds K as {LABEL_UNITS}; retrain it (pvae surrogate train)"
            )

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> Prediction:
        """Predict one batch.

        Parameters
        ----------
        images : np.ndarray of bool, shape (N, Z, Y, X)
            ``True`` = pore, axes (z, y, x); K components come out in (x, y, z) order.

        Returns
        -------
        Prediction
        """
        images = np.asarray(images, dtype=bool)
        perc = np.stack([percolates(image) for image in images])  # (N, 3)
        x = torch.from_numpy(images).to(self.device, torch.float32)[:, None]  # (N, 1, Z, Y, X)
        porosity = x.mean(dim=(1, 2, 3, 4))  # (N,)
        step = CPU_CHUNK if self.device.type == "cpu" else max(len(x), 1)
        chunks = range(0, len(x), step)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            z6 = torch.cat(
                [self.network(x[i : i + step], porosity[i : i + step]) for i in chunks], dim=1
            ).float()  # (M, N, 6) standardized
        s6 = self.normalizer.decode(z6).cpu().double()  # (M, N, 6) decades
        mask = torch.from_numpy(perc)
        members_k = exp_tensor(s6, mask)  # (M, N, 3, 3)
        diag = torch.diagonal(members_k, dim1=-2, dim2=-1).clamp_min(1e-300).log10()
        spread = diag.std(dim=0) if self.n_members > 1 else torch.zeros_like(diag[0])
        return Prediction(
            k=exp_tensor(s6.mean(dim=0), mask).numpy(),
            spread=torch.where(mask, spread, 0.0).numpy(),
            percolating=perc,
            porosity=porosity.double().cpu().numpy(),
        )

    def log10_k_diagonal(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable log10 K_ii of images, for optimising what a decoder produces.

        Every direction is taken as percolating (a soft image has no connectivity);
        :meth:`predict` is the answer for a finished binary structure.

        Parameters
        ----------
        x : torch.Tensor, shape (B, 1, Z, Y, X)
            Pore indicator in [0, 1] (binary, or straight-through binarized), axes
            (z, y, x), on this ensemble's device.

        Returns
        -------
        torch.Tensor of float32, shape (B, 3)
            log10 K_xx, K_yy, K_zz (lattice units, superficial) of the ensemble-mean
            log tensor, the same reduction as :meth:`predict`.
        """
        z6 = self.network(x, x.mean(dim=(1, 2, 3, 4))).mean(dim=0)  # (B, 6) standardized
        s = to_matrix(self.normalizer.decode(z6).double()) * LN10  # (B, 3, 3) ln K
        k = torch.diagonal(torch.linalg.matrix_exp(s), dim1=-2, dim2=-1)  # (B, 3)
        return (k.log() / LN10).float()

    def predict_store(
        self, store: VoxelStore, indices=None, batch_size: int = 64, progress=None
    ) -> Prediction:
        """Predict dataset rows (default all) in batches read from the memory map."""
        self.check_shape(store.shape, store.root)
        indices = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=int)
        parts = []
        with progress_bar(len(indices), "surrogate", progress) as bar:
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                parts.append(self.predict(store.images(chunk)))
                bar.update(len(chunk))
        return Prediction.concat(parts) if parts else Prediction.empty()


def ensemble_from_state(state: dict, device="cpu", bfloat16=False) -> SurrogateEnsemble:
    """Rebuild an ensemble from a bundle dict (see :meth:`SurrogateEnsemble.state`)."""
    own = ("format", "config", "normalizer", "members")
    info = {k: v for k, v in state.items() if k not in own}
    return SurrogateEnsemble(
        SurrogateConfig.from_dict(state["config"]),
        LogNormalizer.from_dict(state["normalizer"]),
        state["members"],
        info,
        device,
        bfloat16,
    )


def load_surrogate(path: str | Path, device="cpu", bfloat16=False) -> SurrogateEnsemble:
    """Load a bundle safely (``weights_only=True``: no arbitrary unpickling); see
    :class:`SurrogateEnsemble` for ``bfloat16``."""
    path = Path(path)
    state = load_torch(path, "surrogate model")
    if not isinstance(state, dict) or state.get("format") != BUNDLE_FORMAT:
        raise PvaeError(f"{path}: not a pvae surrogate model (format {BUNDLE_FORMAT} expected)")
    return ensemble_from_state(state, device, bfloat16)
