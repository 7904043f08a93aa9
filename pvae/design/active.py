"""Active learning of the design critic: fine-tuned on designs as LBM verifies them.

Inverse design optimises structures against the critic (a surrogate CNN ensemble) and
sends the best to LBM. Where designs leave the catalogue the critic is least sure, and
every verification is a new label exactly where it is needed. A :class:`CriticLearner`
keeps every verified design of a run and, after each round of verifications,
fine-tunes each member for ``steps`` AdamW steps on a batch of those designs (their
LBM K diagonal; the unverified off-diagonal components are left out of the loss) and
of as many pool samples (their full labels, so the critic does not forget the
catalogue), under a random cube symmetry per step (image and K rotated together,
K' = R K R^T). The remaining candidates are then re-scored by the tuned critic.

The solves it learns from are the design's own verifications: active learning costs
no LBM solve beyond the budget. ``history`` records, per round, the critic's error on
the new designs *before* it learned them (a prequential measure: does the critic get
better where the designs go?).
"""

import math

import numpy as np
import torch

from pvae.data.symmetry import cube_symmetries
from pvae.design.pool import DesignPool
from pvae.surrogate import SurrogateEnsemble
from pvae.surrogate.logtensor import log_tensor
from pvae.surrogate.model import PermeabilityCNN
from pvae.surrogate.training import masked_loss

DIAGONAL = torch.tensor([True, True, True, False, False, False])  # of (xx, yy, zz, xy, xz, yz)


class CriticLearner:
    """The critic of one inverse-design run, fine-tuned on its verified designs.

    Parameters
    ----------
    critic : SurrogateEnsemble
        The critic to start from (left unchanged; :attr:`critic` is the tuned copy).
    pool : DesignPool
        Labelled samples replayed beside the designs.
    steps : int
        AdamW steps per member and round (>= 1).
    lr : float
        Fine-tuning step size.
    batch : int
        Designs per step (the most recent first when there are more), and as many
        pool samples.
    seed : int
    """

    def __init__(self, critic: SurrogateEnsemble, pool: DesignPool, steps: int = 20,
                 lr: float = 2e-4, batch: int = 16, seed: int = 0):  # fmt: skip
        self.critic, self.pool = critic, pool
        self.steps, self.lr, self.batch = steps, lr, batch
        self.rng = np.random.default_rng(seed)
        self.symmetries = cube_symmetries(critic.input_shape)
        self.images: list[np.ndarray] = []  # verified designs, (Z, Y, X) bool each
        self.k: list[np.ndarray] = []  # their LBM K diagonal (3,), lattice units
        self.history: list[dict] = []

    def learn(self, images, k_diagonal, label: str = "") -> SurrogateEnsemble:
        """Add verified designs, fine-tune every member, return the tuned critic.

        Parameters
        ----------
        images : np.ndarray of bool, shape (N, Z, Y, X)
            Verified structures, True = pore.
        k_diagonal : np.ndarray, shape (N, 3)
            Their LBM K_xx, K_yy, K_zz (lattice units, superficial; 0 = blocked; NaN =
            unknown, left out).
        label : str
            Recorded with the round in :attr:`history` (e.g. the target id).

        Returns
        -------
        SurrogateEnsemble
            The tuned critic (also :attr:`critic`).
        """
        keep = np.isfinite(k_diagonal).all(axis=1)
        images, k_diagonal = np.asarray(images, bool)[keep], np.asarray(k_diagonal)[keep]
        if not len(images):
            return self.critic
        self.history.append({"label": label, "designs": int(len(images)),
                             "error_before": self.error(images, k_diagonal)})  # fmt: skip
        self.images.extend(images)
        self.k.extend(k_diagonal)
        states = [self._tune(state, member) for member, state in enumerate(self.critic.states)]
        critic = self.critic
        self.critic = SurrogateEnsemble(critic.config, critic.normalizer, states, critic.info,
                                        critic.device, critic.bfloat16)  # fmt: skip
        return self.critic

    def summary(self) -> dict:
        """Designs learned and the per-round prequential errors (for ``summary.json``)."""
        return {"steps": self.steps, "lr": self.lr, "designs": len(self.images),
                "rounds": self.history}  # fmt: skip

    def error(self, images: np.ndarray, k_diagonal: np.ndarray) -> float:
        """Median |critic - LBM| log10 K_ii (decades) over the directions both call
        percolating; NaN when there are none."""
        predicted = np.diagonal(self.critic.predict(images).k, axis1=1, axis2=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            miss = np.abs(np.log10(predicted) - np.log10(k_diagonal))
        miss = miss[np.isfinite(miss)]
        return float(np.median(miss)) if len(miss) else math.nan

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (B, 1, Z, Y, X), standardized log components (B, 6) and their mask."""
        recent = np.arange(len(self.images))[::-1][: self.batch]
        rows = self.rng.choice(self.pool.rows, size=min(self.batch, len(self.pool.rows)),
                               replace=False)  # fmt: skip
        rows = np.sort(rows)
        images = np.concatenate([np.stack([self.images[i] for i in recent]),
                                 self.pool.store.images(rows)])  # fmt: skip
        designs = torch.diag_embed(torch.from_numpy(np.stack([self.k[i] for i in recent])))
        labels = torch.from_numpy(self.pool.store.labels()[rows, 1:].reshape(-1, 3, 3))
        k = torch.cat([designs, labels]).double()  # (B, 3, 3)
        symmetry = self.symmetries[int(self.rng.integers(len(self.symmetries)))]
        x = symmetry.apply(torch.from_numpy(images)).float()[:, None].contiguous()
        s6, mask = log_tensor(symmetry.apply_tensor(k))
        mask[: len(recent)] &= DIAGONAL  # a design's off-diagonals were not verified
        target = self.critic.normalizer.encode(s6).float()
        return x, target, mask

    def _tune(self, state: dict, member: int) -> dict:
        """One member's state dict after ``steps`` AdamW steps (CPU tensors)."""
        torch.manual_seed(int(self.rng.integers(2**31)) + member)
        model = PermeabilityCNN(self.critic.config)
        model.load_state_dict(state)
        model.to(self.critic.device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr)
        device = self.critic.device
        for _ in range(self.steps):
            x, target, mask = (t.to(device) for t in self._batch())
            loss = masked_loss(model(x, x.mean(dim=(1, 2, 3, 4))), target, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
