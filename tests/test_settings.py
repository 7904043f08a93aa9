"""Settings dataclasses validate themselves; the CLI takes its defaults from them."""

import dataclasses

import pytest

from analysis.selection import SelectionRule
from pvae.cli import build_parser
from pvae.cli.options import from_fields, lbm_settings
from pvae.cli.surrogate import TRAIN_OPTIONS
from pvae.core.errors import PvaeError
from pvae.data.imaging.binarize import Binarization
from pvae.data.microstructures.channels import ChannelsOptions
from pvae.data.microstructures.foam import FoamOptions
from pvae.data.microstructures.spheres import SpheresOptions
from pvae.design.inverse import InverseSettings
from pvae.physics.lbm import LBMSettings
from pvae.surrogate import SurrogateConfig, TrainSettings
from pvae.vae.config import ModelConfig, TrainConfig

BAD = [
    (ModelConfig, {"latent_dim": 0}),
    (TrainConfig, {"epochs": 0}),
    (TrainConfig, {"beta": -1.0}),
    (InverseSettings, {"candidates": 0}),
    (InverseSettings, {"min_novelty": 1.5}),
    (LBMSettings, {"tau": 0.4}),
    (LBMSettings, {"tol": 0.0}),
    (SurrogateConfig, {"channels": ()}),
    (TrainSettings, {"split": (0.5, 0.5, 0.5)}),
    (TrainSettings, {"lr": 0.0}),
    (ChannelsOptions, {"porosity": (0.6, 0.2)}),
    (ChannelsOptions, {"max_attempts": 0}),
    (FoamOptions, {"cell_size": (0.0, 5.0)}),
    (SpheresOptions, {"radius_fraction": (0.2, 0.9)}),
    (SpheresOptions, {"porosity": (0.0, 0.5)}),
    (Binarization, {"pore_value": 1.0, "threshold": 0.5}),
    (SelectionRule, {"tie_tolerance": -0.1}),
]


@pytest.mark.parametrize(("cls", "change"), BAD, ids=lambda v: getattr(v, "__name__", str(v)))
def test_settings_refuse_bad_values(cls, change):
    cls()  # the defaults are valid
    with pytest.raises(PvaeError):
        cls(**change)


def parse(*argv):
    return build_parser().parse_args([str(a) for a in argv])


def test_cli_defaults_are_the_dataclass_defaults(tmp_path):
    assert lbm_settings(parse("props", tmp_path / "x.npy")) == LBMSettings()
    given = lbm_settings(parse("props", tmp_path / "x.npy", "--tau", "0.8", "--max-steps", "7"))
    assert given == dataclasses.replace(LBMSettings(), tau=0.8, max_steps=7)
    args = parse("surrogate", "train", "--dataset", tmp_path, "--out", tmp_path / "m.pt")
    names = [name for name, _ in TRAIN_OPTIONS]
    assert from_fields(TrainSettings, args, names) == TrainSettings()
    assert args.channels == ",".join(map(str, SurrogateConfig().channels))
    args = parse("inverse", "--model", tmp_path, "--target", "porosity=0.5")
    assert all(getattr(args, name) is None for name in ("candidates", "starts", "lbm_budget"))
