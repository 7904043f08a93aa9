"""The embedded default dataset: ``data/default/``, rebuilt by ``pvae data build-default``.

A few hundred periodic 32^3 samples of the three synthetic families, labelled by LBM
with the default solver settings. Everything that decides its content is recorded
here (and in the manifest metadata); rebuilding with the same pvae version gives the
same fingerprint, which ``data/default.json`` records and a test verifies.
"""

from pathlib import Path

from pvae.atomic import atomic_write_json
from pvae.errors import PvaeError
from pvae.microstructures.synthesize import holds_mix, parse_shape, synthesize_mix
from pvae.store.reader import open_dataset

ROOT = Path(__file__).resolve().parents[1] / "data"
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
        "check_every": 100,
        "max_steps": 50_000,
        "dtype": "float32",
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


def build_default(
    out: str | Path = DEFAULT_DATASET,
    workers: int | None = None,
    progress=None,
    seed: int | None = None,
    per_family: int | None = None,
) -> dict:
    """Synthesize and LBM-label the default dataset, then record its fingerprint.

    An interrupted build resumes: existing images of the recipe are kept and the
    labelling journal skips finished samples. With another ``seed`` (and ``out``) it
    builds a companion set by the same recipe, optionally with ``per_family`` samples
    of each family; only the default is recorded.

    Returns
    -------
    dict
        The record (recipe, fingerprint, summary); written to ``data/default.json``
        when ``out`` is ``data/default``.
    """
    from pvae.physics.lbm import LBMSettings
    from tune.labelling import label_dataset  # Ray runs the labelling

    out = Path(out)
    seed = RECIPE["seed"] if seed is None else seed
    if out.resolve() == DEFAULT_DATASET and (seed != RECIPE["seed"] or per_family):
        raise PvaeError(f"{out}: the default dataset is built by its recipe alone; give --out")
    if not holds_mix(out, seed, recipe_parts(per_family), parse_shape(RECIPE["size"])):
        synthesize_default(out, True, progress, seed, per_family)
    settings = LBMSettings(**RECIPE["lbm"])
    label_dataset(out, settings, workers=workers, device="cpu", progress=progress)
    summary = open_dataset(out).summary()
    record = {
        "recipe": RECIPE | {"seed": seed, "parts": recipe_parts(per_family)},
        "fingerprint": summary["fingerprint"],
        "summary": summary,
    }
    if out.resolve() == DEFAULT_DATASET:
        atomic_write_json(RECORD, record)
    return record
