"""Training a surrogate ensemble on LBM-labelled datasets.

Each labelled dataset is split train / validation / test by a seeded permutation of
its labelled rows (:func:`pvae.data.splits.make_splits`): members learn on ``train`` with
the 48-symmetry augmentation of :class:`pvae.data.store.VoxelDataset` (image and K rotated
together, K' = R K R^T, so the log-tensor target rotates exactly, see
:mod:`pvae.surrogate.logtensor`), stop early on the ``val`` loss and keep their best
epoch; ``test`` is never seen and is recorded (by sample ID) for honest evaluation.

Members differ only by seed (initialisation, batch order, augmentation draws); their
disagreement is the uncertainty estimate. Every epoch seeds torch from
``(seed, member, epoch)``, so a run is reproducible on CPU.

Loss: mean squared error of the standardized log components over known components
(:func:`pvae.surrogate.logtensor.log_tensor` mask), off-diagonals weighted 2 (the
Frobenius norm of the symmetric matrix error).
"""

import copy
import datetime
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pvae.core.device import resolve_device
from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.core.provenance import code_version
from pvae.data.splits import epoch_seed, make_splits, training_subset
from pvae.data.store.reader import VoxelStore, open_dataset
from pvae.data.store.torch_dataset import VoxelDataset
from pvae.surrogate.domain import fit_domain
from pvae.surrogate.ensemble import LABEL_UNITS, Prediction, SurrogateEnsemble
from pvae.surrogate.evaluation import accuracy
from pvae.surrogate.logtensor import LogNormalizer, log_tensor
from pvae.surrogate.model import PermeabilityCNN, SurrogateConfig

_WEIGHTS = (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)


@dataclass(frozen=True)
class TrainSettings:
    """How an ensemble is trained (saved in the bundle).

    Attributes
    ----------
    members : int
        Ensemble size (>= 1; >= 2 for a spread).
    epochs : int
        Maximum epochs per member (cosine learning-rate decay over them).
    patience : int
        Stop a member after this many epochs without a better validation loss.
    batch_size : int
    lr, weight_decay : float
        AdamW settings.
    seed : int
        Member m uses seed ``seed + m``.
    split : tuple of float
        Train, validation, test fractions of each dataset's labelled rows.
    split_seed : int
    max_train : int, optional
        Use only the first ``max_train`` training rows (dataset by dataset).
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``.
    """

    members: int = 3
    epochs: int = 60
    patience: int = 15
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    max_train: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("members", "epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise PvaeError(f"surrogate training: {name} = {getattr(self, name)}, need >= 1")
        if not self.lr > 0:
            raise PvaeError(f"surrogate training: lr = {self.lr}, need > 0")
        if self.max_train is not None and self.max_train < 1:
            raise PvaeError(f"surrogate training: max_train = {self.max_train}, need >= 1")
        if len(self.split) != 3 or min(self.split) <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise PvaeError(f"surrogate training: split {self.split}: need 3 fractions > 0, sum 1")


def labelled_splits(store: VoxelStore, split, seed: int) -> dict[str, np.ndarray]:
    """Train / val / test rows of a dataset, drawn from its labelled rows only."""
    rows = np.flatnonzero(store.labelled())
    if len(rows) < 3:
        raise PvaeError(f"{store.root}: {len(rows)} labelled samples; need at least 3 to train")
    return {name: rows[part] for name, part in make_splits(len(rows), split, seed).items()}


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weighted MSE over known components; all (B, 6), mask bool."""
    weights = mask * torch.tensor(_WEIGHTS, device=pred.device)
    error = torch.where(mask, pred - target, 0.0)
    return (weights * error**2).sum() / weights.sum().clamp_min(1.0)


class _Validation:
    """Validation samples held in memory as tensors (no augmentation)."""

    def __init__(self, stores, rows, normalizer: LogNormalizer, device):
        pairs = list(zip(stores, rows, strict=True))
        images = np.concatenate([s.images(r) for s, r in pairs])
        k = np.concatenate([s.labels()[r, 1:].reshape(-1, 3, 3) for s, r in pairs])
        self.x = torch.from_numpy(images).to(device, torch.float32)[:, None]  # (V, 1, D, H, W)
        self.porosity = self.x.mean(dim=(1, 2, 3, 4))
        s6, self.mask = log_tensor(torch.from_numpy(k))
        self.target = normalizer.encode(s6).to(device)
        self.mask = self.mask.to(device)
        self.k = k

    @torch.no_grad()
    def loss(self, model: PermeabilityCNN, batch_size: int = 64) -> float:
        model.eval()
        total, weight = 0.0, 0.0
        for i in range(0, len(self.x), batch_size):
            part = slice(i, i + batch_size)
            pred = model(self.x[part], self.porosity[part])
            w = float((self.mask[part] * torch.tensor(_WEIGHTS, device=pred.device)).sum())
            total += float(masked_loss(pred, self.target[part], self.mask[part])) * w
            weight += w
        return total / max(weight, 1.0)


def train_member(config, normalizer, train_set, validation, settings, member, device, bar):
    """Train one member; returns its best state dict (CPU tensors) and its history."""
    seed = settings.seed + member
    torch.manual_seed(seed)
    model = PermeabilityCNN(config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs)
    best, best_loss, best_epoch, history = None, float("inf"), 0, []
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        torch.manual_seed(epoch_seed(seed, epoch))
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=settings.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)),
        )
        model.train()
        sums = np.zeros(2)
        for batch in loader:
            x = batch["image"].to(device)  # (B, 1, D, H, W)
            s6, mask = log_tensor(batch["k"])  # labels rotated with the image
            pred = model(x, batch["porosity"].to(device))
            loss = masked_loss(pred, normalizer.encode(s6).to(device), mask.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += (loss.item() * len(x), len(x))
        schedule.step()
        val_loss = validation.loss(model)
        history.append({"epoch": epoch, "train_loss": float(sums[0] / max(sums[1], 1)),
                        "val_loss": val_loss, "time_s": time.perf_counter() - start})  # fmt: skip
        bar.update(1)
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        elif epoch - best_epoch >= settings.patience:
            bar.update(settings.epochs - epoch)
            break
    if best is None:
        raise PvaeError(f"surrogate member {member} diverged (non-finite loss); lower the lr")
    return best, {"member": member, "seed": seed, "best_epoch": best_epoch,
                  "best_val_loss": best_loss, "epochs": history}  # fmt: skip


def train_ensemble(
    datasets,
    config: SurrogateConfig = SurrogateConfig(),  # noqa: B008 - frozen, immutable default
    settings: TrainSettings = TrainSettings(),  # noqa: B008 - frozen, immutable default
    progress: bool | None = None,
) -> SurrogateEnsemble:
    """Train a surrogate ensemble on the labelled samples of one or more datasets.

    Parameters
    ----------
    datasets : sequence of (str or Path or VoxelStore)
        LBM-labelled datasets of one image shape (unlabelled rows are ignored).
    config : SurrogateConfig
    settings : TrainSettings
    progress : bool, optional
        Progress bar over member epochs (default only on a terminal).

    Returns
    -------
    SurrogateEnsemble
        On the training device; ``info`` holds the datasets with fingerprints and
        their split sample IDs, the training history and ``validation`` metrics
        (:func:`pvae.surrogate.evaluation.accuracy` of the ensemble on ``val``).
    """
    stores = [d if isinstance(d, VoxelStore) else open_dataset(d) for d in datasets]
    shapes = {s.shape for s in stores}
    if len(shapes) != 1:
        raise PvaeError(f"surrogate training: datasets of different shapes {sorted(shapes)}")
    device = resolve_device(settings.device)
    splits = [labelled_splits(s, settings.split, settings.split_seed) for s in stores]
    train_rows, left = [], settings.max_train
    for split in splits:
        train_rows.append(np.asarray(training_subset(list(split["train"]), left), dtype=int))
        left = None if left is None else max(left - len(train_rows[-1]), 0)
    pairs = list(zip(stores, train_rows, strict=True))
    train_set = torch.utils.data.ConcatDataset([VoxelDataset(s, r, augment=True) for s, r in pairs])
    k_train = np.concatenate([s.labels()[r, 1:] for s, r in pairs])
    normalizer = LogNormalizer.fit(*log_tensor(torch.from_numpy(k_train).reshape(-1, 3, 3)))
    val_rows = [split["val"] for split in splits]
    validation = _Validation(stores, val_rows, normalizer, device)
    states, histories = [], []
    with progress_bar(settings.members * settings.epochs, "surrogate", progress, "epoch") as bar:
        for member in range(settings.members):
            state, history = train_member(
                config, normalizer, train_set, validation, settings, member, device, bar
            )
            states.append(state)
            histories.append(history)
    info = {
        "input_shape": list(stores[0].shape),
        "units": dict(LABEL_UNITS),
        "training": {**asdict(settings), "split": list(settings.split)},
        "train_samples": int(len(train_set)),
        "history": histories,
        "datasets": [
            _dataset_record(s, sp, r) for s, sp, r in zip(stores, splits, train_rows, strict=True)
        ],
        "code_version": code_version(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    ensemble = SurrogateEnsemble(config, normalizer, states, info, device)
    predictions = [ensemble.predict_store(s, r) for s, r in zip(stores, val_rows, strict=True)]
    ensemble.info["validation"] = accuracy(Prediction.concat(predictions), validation.k)
    parts = zip(stores, train_rows, val_rows, strict=True)
    ensemble.info["domain"] = fit_domain(list(parts)).to_dict()
    return ensemble


def _dataset_record(store: VoxelStore, split: dict, train_rows: np.ndarray) -> dict:
    ids = store.manifest["sample_id"].to_numpy()
    return {
        "path": str(Path(store.root).resolve()),
        "fingerprint": store.fingerprint,
        "train": ids[train_rows].tolist(),
        "val": ids[split["val"]].tolist(),
        "test": ids[split["test"]].tolist(),
    }
