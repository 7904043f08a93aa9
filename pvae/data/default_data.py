"""The embedded default dataset: ``data/default/``, rebuilt by ``pvae data build-default``.

A few hundred periodic 32^3 samples of the three synthetic families, labelled by LBM
with the default solver settings. Everything that decides its content is recorded
here (and in the manifest metadata); rebuilding with the same pvae version gives the
same fingerprint, which ``data/default.json`` records and a test verifies.
"""

from pathlib import Path

from pvae.data.microstructures.synthesize import synthesize_mix

ROOT = Path(__file__).resolve().parents[2] / "data"
DEFAULT_DATASET = ROOT / "default"
RECORD = ROOT / "default.json"
RECIPE = {
    "size": 32,
    "seed": 2025,
    "parts": [("channels", 128), ("spheres", 128), ("foam", 128)],
    "lbm": {
        "collision": "trt",
        "tau": 1.0,
        "tol": 1e-5,
        "convergence": "change",  # the rule it was labelled with (LBMSettings)
        "check_every": 100,
        "max_steps": 50_000,
        "dtype": "float32",
        # the labels are reproduced bit for bit by the kernel that made them: numba's
        # arithmetic (the C kernel's float32 arithmetic agrees to ~1e-6 of K, not to the bit)
        "backend": "numba",
    },  # fmt: skip
}


def recipe_parts(per_family: int | None = None) -> list[tuple[str, int]]:
    """(family, count) of the recipe, or ``per_family`` samples of each family."""
    return [(family, per_family or count) for family, count in RECIPE["parts"]]


def synthesize_default(
    out: str | Path,
    overwrite: bool = False,
    progress=None,
    seed: int | None = None,
    per_family: int | None = None,
) -> Path:
    """The unlabelled default dataset (images and generator parameters only).

    ``seed`` other than the recipe's gives a companion set of the same families and
    size with other samples (e.g. more training data for the surrogate, or inverse-design
    targets no model has seen); ``per_family`` makes it smaller or larger.
    """
    parts = [(family, count, None) for family, count in recipe_parts(per_family)]
    seed = RECIPE["seed"] if seed is None else seed
    return synthesize_mix(parts, RECIPE["size"], seed, out, overwrite=overwrite, progress=progress)
