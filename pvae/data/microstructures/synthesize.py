"""Seeded synthesis of whole datasets from the generator families.

Sample ``i`` of a run with seed ``s`` draws from its own random stream
``SeedSequence(s, spawn_key=(i,))``: the same seed gives bit-identical samples, and
sample ``i`` does not depend on how many samples are made or on the worker count.
"""

import contextlib
import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.data.microstructures import channels, foam, grf, spheres
from pvae.data.store.layout import pack
from pvae.data.store.manifest import manifest_row
from pvae.data.store.reader import open_dataset
from pvae.data.store.writer import write_dataset

FAMILIES = {
    "channels": (channels.ChannelsOptions, channels.generate),
    "spheres": (spheres.SpheresOptions, spheres.generate),
    "foam": (foam.FoamOptions, foam.generate),
    "grf": (grf.GRFOptions, grf.generate),
}
# what `pvae data build` mixes unless --families says otherwise: the default dataset's
# families, so that earlier builds and their recipes stay reproducible
BUILD_FAMILIES = ("channels", "spheres", "foam")
MIN_SIDE, MAX_SIDE = 16, 256


def parse_shape(text: str | int | tuple) -> tuple[int, int, int]:
    """Image shape from ``"64"`` (cube) or ``"64x32x48"`` (Z x Y x X), sides 16-256."""
    if isinstance(text, int | tuple | list):
        parts = [text] * 3 if isinstance(text, int) else list(text)
    else:
        parts = str(text).lower().split("x")
        parts = parts * 3 if len(parts) == 1 else parts
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise PvaeError(f"--size {text}: expected S or ZxYxX, e.g. 64 or 64x32x48") from None
    if len(shape) != 3 or not all(MIN_SIDE <= n <= MAX_SIDE for n in shape):
        raise PvaeError(f"--size {text}: need 3 sides, each from {MIN_SIDE} to {MAX_SIDE}")
    return shape


def family_options(family: str, overrides: dict | None = None):
    """The options dataclass of a family with ``overrides`` applied.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    overrides : dict, optional
        Field name -> value; pairs are given as 2-sequences or ``"lo,hi"`` strings.
    """
    if family not in FAMILIES:
        raise PvaeError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    cls = FAMILIES[family][0]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise PvaeError(f"{family}: unknown option {key!r}; options: {', '.join(fields)}")
        if isinstance(fields[key].default, tuple):
            value = tuple(float(v) for v in (value.split(",") if isinstance(value, str) else value))
            if len(value) != 2 or not value[0] <= value[1]:
                raise PvaeError(f"{family}: option {key} needs two values lo <= hi")
        values[key] = value
    return cls(**values)


def parse_param(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` from the command line, the value read as a YAML scalar."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise PvaeError(f"--param {text}: expected KEY=VALUE")
    return key.strip(), yaml.safe_load(value)


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index`` in a run with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def synthesize_sample(family: str, shape, seed: int, index: int, options=None):
    """Generate one sample.

    Returns
    -------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore.
    params : dict
        The family's per-sample parameters plus ``seed`` and ``index``.
    """
    options = options if options is not None else family_options(family)
    image, params = FAMILIES[family][1](tuple(shape), sample_rng(seed, index), options)
    return image, {"seed": seed, "index": index, **params}


def sample_id(family: str, seed: int, index: int) -> str:
    """ID of a synthetic sample: ``<family>-s<seed>-<index:05d>``."""
    return f"{family}-s{seed}-{index:05d}"


def _packed_sample(job) -> tuple[int, np.ndarray, dict]:
    position, family, shape, seed, index, options = job
    image, params = synthesize_sample(family, shape, seed, index, options)
    row = manifest_row(
        sample_id(family, seed, index),
        source="synthetic",
        family=family,
        params=params,
        shape=shape,
        porosity=float(image.mean()),
    )
    return position, pack(image), row


def default_workers() -> int:
    """Worker processes to use: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def synthesize(
    family: str,
    count: int,
    shape,
    seed: int,
    out: str | Path,
    options=None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Generate a dataset of ``count`` samples of one family into the directory ``out``.

    Parameters
    ----------
    family : str
        ``channels``, ``spheres``, ``foam`` or ``grf``.
    count : int
        Number of samples (>= 1).
    shape : str, int or tuple
        (Z, Y, X) image shape, see :func:`parse_shape`.
    seed : int
        Base seed; see the module docstring.
    out : str or Path
        New dataset directory (written atomically).
    options : dataclass, optional
        Family options, see :func:`family_options`.
    workers : int, optional
        Processes; default all available CPUs. Output does not depend on it.
    overwrite : bool
        Replace an existing ``out``.
    progress : bool, optional
        Progress bar; default: only on a terminal.

    Returns
    -------
    Path
        The dataset directory.
    """
    return synthesize_mix(
        [(family, count, options)], shape, seed, out, workers, overwrite, progress
    )


def synthesize_mix(
    parts: list[tuple],
    shape,
    seed: int,
    out: str | Path,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Generate one dataset holding several families.

    Parameters
    ----------
    parts : list of (family, count, options)
        ``options`` may be None for the family's defaults. Sample i of a family is
        the same as sample i of :func:`synthesize` with that family and seed.
    shape, seed, out, workers, overwrite, progress
        As in :func:`synthesize`.

    Returns
    -------
    Path
        The dataset directory (samples in the order of ``parts``).
    """
    shape = parse_shape(shape)
    jobs, recipe = [], []
    for family, count, options in parts:
        options = options if options is not None else family_options(family)
        if count < 1:
            raise PvaeError(f"--count {count}: need at least one sample")
        jobs += [(len(jobs) + i, family, shape, seed, i, options) for i in range(count)]
        recipe.append({"family": family, "count": count, "options": dataclasses.asdict(options)})
    total = len(jobs)
    workers = max(1, min(workers or default_workers(), total))
    info = {"made_by": "synthesize", "seed": seed, "families": recipe}
    label = "+".join(r["family"] for r in recipe)
    with write_dataset(out, total, shape, info, overwrite=overwrite) as writer:
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        chunk = max(1, min(32, total // (4 * workers)))
        with (
            pool or contextlib.nullcontext(),
            progress_bar(total, f"synth {label}", progress) as bar,
        ):
            results = (
                pool.map(_packed_sample, jobs, chunksize=chunk)
                if pool
                else map(_packed_sample, jobs)
            )
            for position, packed, row in results:
                writer.put_packed(position, packed, row)
                bar.update()
    return Path(out)


def holds_mix(root: str | Path, seed: int, parts: list[tuple[str, int]], shape) -> bool:
    """Whether ``root`` already holds the images of this mix (a build then resumes)."""
    try:
        store = open_dataset(root)
    except PvaeError:
        return False
    found = [(p["family"], p["count"]) for p in store.metadata.get("families", [])]
    return store.metadata.get("seed") == seed and found == list(parts) and store.shape == shape


def mix_parts(count: int, families=BUILD_FAMILIES) -> list[tuple[str, int]]:
    """``count`` samples shared out over ``families`` (the first ones take the remainder)."""
    families = list(families)
    if not families or len(set(families)) != len(families):
        raise PvaeError(f"--families {','.join(families)}: need distinct family names")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise PvaeError(
            f"--families: unknown {', '.join(unknown)}; choose from {', '.join(FAMILIES)}"
        )
    if count < len(families):
        raise PvaeError(f"--count {count}: need at least one sample per family ({len(families)})")
    share, extra = divmod(count, len(families))
    return [(family, share + (i < extra)) for i, family in enumerate(families)]
