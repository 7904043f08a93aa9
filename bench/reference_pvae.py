"""Baseline: the research code's VAE3D (CNN-pVAE, Nguyen, Heider, Kochmann, Aldakheel,
CMAME 2025), rebuilt from its published architecture for benchmarks.

Encoder: 4 Conv3d layers (kernel 3, stride 2, padding 1) with 48/48/192/128 channels, each
followed by Dropout3d(0.2) and ReLU; flatten -> Linear to (mu, logvar) of a 250-d latent.
Decoder: Linear + ReLU -> the last encoder shape -> 4 ConvTranspose3d layers (kernel 3,
stride 2, padding 1; output padding where the encoder's side was even, as the research code
sets it for 100^3) with Dropout3d and ReLU between them -> logits. Regressor: MLP
16-16-4 (ReLU, dropout 0.1) on mu. Zero padding and no normalisation, as published. Used
only by benchmarks, as the reference for speed.
"""

import math

import torch
from torch import nn

CHANNELS = (48, 48, 192, 128)
LATENT = 250
DROPOUT = 0.2


class ReferencePVAE(nn.Module):
    """The research code's VAE3D for a cubic input of side ``side`` (at least 16).

    Each Conv3d takes a side n to ceil(n / 2); each ConvTranspose3d takes n to 2n - 1,
    plus an output padding of 1 where the encoder halved an even side, so that the
    logits have the input's shape (100 -> 7 -> 100).
    """

    def __init__(self, side: int, n_targets: int = 4):
        super().__init__()
        sides = [side]
        for _ in CHANNELS:
            sides.append(math.ceil(sides[-1] / 2))
        self.small = sides[-1]
        flat = CHANNELS[-1] * self.small**3
        layers, c_in = [], 1
        for c in CHANNELS:
            layers += [nn.Conv3d(c_in, c, 3, stride=2, padding=1), nn.Dropout3d(DROPOUT), nn.ReLU()]
            c_in = c
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.mu = nn.Linear(flat, LATENT)
        self.logvar = nn.Linear(flat, LATENT)
        self.expand = nn.Sequential(nn.Linear(LATENT, flat), nn.ReLU())
        ups, chans = [], (*CHANNELS[::-1], 1)
        for c_from, c_to, n_in, n_out in zip(
            chans[:-1], chans[1:], sides[::-1][:-1], sides[::-1][1:], strict=True
        ):
            extra = n_out - (2 * n_in - 1)  # 1 where the encoder halved an even side
            ups += [nn.ConvTranspose3d(c_from, c_to, 3, stride=2, padding=1, output_padding=extra)]
            ups += [nn.Dropout3d(DROPOUT), nn.ReLU()] if c_to != 1 else []
        self.decoder = nn.Sequential(*ups)
        widths, layers = (LATENT, 16, 16), []
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(), nn.Dropout(0.1)]
        self.regressor = nn.Sequential(*layers, nn.Linear(widths[-1], n_targets))

    def forward(self, x: torch.Tensor) -> dict:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        g = self.expand(z).view(len(z), CHANNELS[-1], self.small, self.small, self.small)
        return {
            "logits": self.decoder(g),
            "mu": mu,
            "logvar": logvar,
            "z": z,
            "prediction": self.regressor(mu),
        }

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def flatten_share(side: int) -> float:
    """Share of the reference's parameters in its flatten layers at cube side ``side``."""
    model = ReferencePVAE(side)
    flat = sum(m.weight.numel() for m in (model.mu, model.logvar, model.expand[0]))
    return flat / model.parameter_count()
