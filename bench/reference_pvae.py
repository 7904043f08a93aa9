"""Baseline: a pVAE with the research code's published shape (CNN-pVAE, CMAME 2025).

Encoder: 4 stride-2 Conv3d layers with 48/48/192/128 channels, flatten -> Linear to
(mu, logvar) of a 250-dim latent; decoder mirrored (Linear -> 4 ConvTranspose3d);
regressor MLP on mu. Used only by benchmarks, as the reference for speed.
"""

import torch
from torch import nn

CHANNELS = (48, 48, 192, 128)
LATENT = 250


class ReferencePVAE(nn.Module):
    """Research-code-shaped pVAE for a cubic input of side ``side`` (at least 16).

    Each Conv3d (kernel 4, stride 2, padding 1) takes a side n to floor(n / 2); each
    ConvTranspose3d doubles it, with an output padding of 1 where the encoder's side was
    odd, so that the logits have the input's shape at any side (100 -> 6 -> 100).
    """

    def __init__(self, side: int, n_targets: int = 4):
        super().__init__()
        sides = [side]
        for _ in CHANNELS:
            sides.append(sides[-1] // 2)
        self.small = sides[-1]
        flat = CHANNELS[-1] * self.small**3
        layers, c_in = [], 1
        for c in CHANNELS:
            layers += [nn.Conv3d(c_in, c, 4, stride=2, padding=1), nn.BatchNorm3d(c), nn.ReLU()]
            c_in = c
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.mu = nn.Linear(flat, LATENT)
        self.logvar = nn.Linear(flat, LATENT)
        self.expand = nn.Linear(LATENT, flat)
        ups, chans = [], (*CHANNELS[::-1], 1)
        for c_from, c_to, n_in, n_out in zip(
            chans[:-1], chans[1:], sides[::-1][:-1], sides[::-1][1:], strict=True
        ):
            extra = n_out - 2 * n_in  # 1 where the encoder halved an odd side
            ups += [nn.ConvTranspose3d(c_from, c_to, 4, stride=2, padding=1, output_padding=extra)]
            ups += [nn.BatchNorm3d(c_to), nn.ReLU()] if c_to != 1 else []
        self.decoder = nn.Sequential(*ups)
        self.regressor = nn.Sequential(nn.Linear(LATENT, 128), nn.ReLU(), nn.Linear(128, n_targets))

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
    flat = sum(m.weight.numel() for m in (model.mu, model.logvar, model.expand))
    return flat / model.parameter_count()
