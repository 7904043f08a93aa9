"""Novelty of a designed structure: how far it is from every structure of a reference set.

``novelty = 1 - max IoU`` of the design's pore phase with any reference sample, the
maximum taken over the cube symmetries that keep the image shape (48 for a cube) and
over every periodic shift. A design that is a training sample, or a rotated, mirrored
or shifted copy of one, has novelty 0; two independent random structures of porosity
phi overlap with IoU about phi / (2 - phi), so novelty about 1 - phi / (2 - phi).

For one shift s the intersection of pore phases A and B is the periodic
cross-correlation ``c(s) = sum_x A(x) B(x + s)``, all shifts at once by FFT, and
``IoU(s) = c(s) / (|A| + |B| - c(s))`` grows with c(s): the best IoU over shifts comes
from the largest c. Symmetries are applied to the design (one FFT each); the
references' FFTs are computed once. Since IoU <= min(|A|, |B|) / max(|A|, |B|),
references are visited in order of that bound and the search stops when no remaining
one can beat the best IoU found.
"""

import numpy as np
import torch

from pvae.data.symmetry import cube_symmetries

BATCH_BYTES = 256 * 2**20  # correlations in flight per batch of references


class NoveltyIndex:
    """Reference structures prepared for novelty queries.

    Parameters
    ----------
    references : np.ndarray of bool, shape (N, Z, Y, X)
        True = pore, axes (z, y, x); for example a model's training split.
    device : str
    batch : int, optional
        References correlated at once, each with every symmetry (memory about
        ``batch * G * Z * Y * X * 8`` bytes); default: as many as fit
        :data:`BATCH_BYTES`, at most 16 (16 at 32^3, 2 at 64^3).
    """

    def __init__(self, references: np.ndarray, device: str = "cpu", batch: int | None = None):
        references = np.asarray(references, dtype=bool)
        if references.ndim != 4 or not len(references):
            raise ValueError("novelty needs at least one reference structure (N, Z, Y, X)")
        self.shape = references.shape[1:]
        self.device = torch.device(device)
        voxels = torch.from_numpy(references).to(self.device, torch.float32)
        self.sizes = voxels.flatten(1).sum(1)  # (N,) pore voxels
        self.spectra = torch.fft.rfftn(voxels, dim=(1, 2, 3))  # (N, Z, Y, X//2+1)
        self.symmetries = cube_symmetries(self.shape)
        per_reference = len(self.symmetries) * int(np.prod(self.shape)) * 8
        self.batch = batch or int(np.clip(BATCH_BYTES // per_reference, 1, 16))

    def __len__(self) -> int:
        return len(self.sizes)

    def best_match(self, design: np.ndarray) -> tuple[float, int]:
        """Best IoU of ``design`` with any reference under symmetries and shifts.

        Parameters
        ----------
        design : np.ndarray of bool, shape (Z, Y, X)

        Returns
        -------
        iou : float
            In [0, 1]; 1 for an exact (transformed) copy.
        index : int
            The reference reaching it.
        """
        design = np.asarray(design, dtype=bool)
        if design.shape != self.shape:
            raise ValueError(
                f"design shape {design.shape} differs from the references' {self.shape}"
            )
        x = torch.from_numpy(design).to(self.device, torch.float32)
        size = x.sum()
        if size == 0:
            return 0.0, 0
        views = torch.stack([s.apply(x).contiguous() for s in self.symmetries])  # (G, Z, Y, X)
        conj = torch.fft.rfftn(views, dim=(1, 2, 3)).conj()  # (G, Z, Y, X//2+1)
        # IoU <= min(|A|, |B|) / max(|A|, |B|): visit references by that bound, stop below best
        bound = torch.minimum(size, self.sizes) / torch.maximum(size, self.sizes)  # (N,)
        order = torch.argsort(bound, descending=True)
        best_iou, best_index = 0.0, int(order[0])
        for lo in range(0, len(self), self.batch):
            chunk = order[lo : lo + self.batch]
            if float(bound[chunk[0]]) <= best_iou:
                break
            overlap = torch.fft.irfftn(
                self.spectra[chunk][:, None] * conj[None], s=self.shape, dim=(2, 3, 4)
            )  # (n, G, Z, Y, X): c(s) per reference and symmetry
            c = overlap.flatten(1).amax(1).round()  # (n,) largest pore overlap over s and G
            iou = c / (size + self.sizes[chunk] - c)
            j = int(torch.argmax(iou))
            if float(iou[j]) > best_iou:
                best_iou, best_index = float(iou[j]), int(chunk[j])
        return min(max(best_iou, 0.0), 1.0), best_index

    def novelty(self, designs: np.ndarray) -> np.ndarray:
        """``1 - best IoU`` of each design; shape (S,) for designs (S, Z, Y, X)."""
        return np.array([1.0 - self.best_match(d)[0] for d in designs])
