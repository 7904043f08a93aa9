"""``pvae data build`` and ``build-default``: datasets built and labelled as Ray work.

``build_default`` synthesizes the embedded default dataset (or a companion set) by its
recipe (:mod:`pvae.data.default_data`) and labels it by LBM. ``build_dataset`` makes a
large mixed-family dataset, labelled by the surrogate:

Four resumable stages, each with a progress bar and an ETA:

1. **synthesize** the families in equal shares (sample i of a family is the same as in
   ``pvae data synth`` with that seed); a rerun keeps images that match;
2. **surrogate** labels for every pending sample, except those the ensemble is unsure
   of (spread above ``fallback_spread``) or that lie outside its applicability domain
   (:mod:`pvae.surrogate.domain`): those are
3. **LBM**-labelled as Ray tasks (journal: a killed run resumes);
4. **check**: LBM on a random ``check_fraction`` of the surrogate-labelled samples,
   compared with their surrogate labels (``label_check.parquet``; the manifest keeps
   the surrogate labels, so the dataset is the one a user gets without a check).

The manifest's ``label_source`` says per sample which method labelled it. The
dataset folder also gets ``build.json`` (recipe, wall time and counts per stage, the
LBM share and the check's errors) and the labelling ensemble as ``surrogate.pt`` (the
dataset's default critic, :mod:`pvae.vae.fidelity`).
"""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pvae.core.atomic import atomic_write_json, atomic_write_parquet
from pvae.core.errors import PvaeError
from pvae.data.default_data import (
    DEFAULT_DATASET,
    RECIPE,
    RECORD,
    recipe_parts,
    synthesize_default,
)
from pvae.data.microstructures.synthesize import (
    BUILD_FAMILIES,
    holds_mix,
    mix_parts,
    parse_shape,
    synthesize_mix,
)
from pvae.data.store.labelling import LabelJournal, settings_key
from pvae.data.store.reader import open_dataset
from pvae.physics.lbm import LBMSettings
from pvae.surrogate.ensemble import SurrogateEnsemble
from pvae.surrogate.labelling import (
    CHECK_FRACTION,
    FALLBACK_SPREAD,
    check_errors,
    check_rows,
    error_summary,
)
from tune.cluster_connect import ray_session
from tune.labelling import label_dataset, run_label_tasks
from tune.surrogate_labelling import label_with_surrogate

REPORT = "build.json"
CHECK = "label_check.parquet"
CHECK_JOURNAL = "check-journal"
_NO_ROWS = pd.DataFrame(columns=["index", "k_xx", "k_yy", "k_zz"])


def build_dataset(
    out: str | Path,
    count: int,
    size,
    seed: int,
    ensemble: SurrogateEnsemble,
    families=BUILD_FAMILIES,
    fallback_spread: float | None = FALLBACK_SPREAD,
    check_fraction: float = CHECK_FRACTION,
    settings: LBMSettings | None = None,
    workers: int | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict:
    """Build (or resume) a surrogate-labelled mixed-family dataset.

    Parameters
    ----------
    out : str or Path
        Dataset directory. An existing one that holds the same mix resumes; another
        non-empty one is refused unless ``overwrite``.
    count : int
        Samples in all, shared equally over ``families``.
    size : int or str or tuple
        Image shape (``64`` or ``ZxYxX``); must be the surrogate's training shape.
    seed : int
        Synthesis seed (and of the check's draw).
    ensemble : SurrogateEnsemble
        The labeller; it must carry an applicability domain.
    families : sequence of str
    fallback_spread : float, optional
        Spread (decades of log10 K) above which a sample goes to LBM; None: no spread test.
    check_fraction : float
        Share of surrogate-labelled samples also solved by LBM for the check (0 to 1).
    settings : LBMSettings, optional
        Solver settings of the fallback and the check.
    workers : int, optional
        LBM tasks at once (default: CPUs, or 4 per GPU).
    device : str
        ``auto``, ``cpu`` or ``cuda`` (surrogate and LBM).
    overwrite : bool
    progress : bool, optional

    Returns
    -------
    dict
        The report also written to ``build.json``: ``recipe``, ``stages`` (per stage
        ``wall_s`` and counts; a stage a resumed run skipped keeps its earlier record),
        ``label_sources`` (counts in the manifest), ``lbm_share``, ``check``
        (:func:`error_summary`), ``samples_per_s`` and ``fingerprint``.
    """
    out, shape = Path(out), parse_shape(size)
    parts = mix_parts(count, families)
    if not 0.0 <= check_fraction <= 1.0:
        raise PvaeError(f"--check-fraction {check_fraction}: need 0 <= fraction <= 1")
    ensemble.check_shape(shape, f"--size {size}")
    if ensemble.domain is None:
        raise PvaeError("--surrogate has no applicability domain (an older bundle); "
                        "add one with: pvae surrogate domain MODEL")  # fmt: skip
    settings = settings or LBMSettings()
    resume = holds_mix(out, seed, parts, shape)
    if not resume and out.exists() and any(out.iterdir()) and not overwrite:
        raise PvaeError(f"{out}: exists and holds another dataset; give --overwrite to replace it")
    stages = _read_report(out).get("stages", {}) if resume else {}

    started = time.perf_counter()
    if not resume:
        synthesize_mix([(f, n, None) for f, n in parts], shape, seed, out, overwrite=True,
                       progress=progress)  # fmt: skip
        stages["synthesize"] = {"wall_s": round(time.perf_counter() - started, 1), "samples": count}
    report = (out, parts, seed, ensemble, fallback_spread, check_fraction, settings, stages)
    _write_report(*report)
    with ray_session():
        tick = time.perf_counter()
        labels = label_with_surrogate(out, ensemble, fallback_spread, settings, workers, device,
                                      progress=progress)  # fmt: skip
        if labels["surrogate"] or labels["lbm"] or "label" not in stages:
            stages["label"] = {
                "wall_s": round(time.perf_counter() - tick, 1),
                **{k: labels[k] for k in ("surrogate", "lbm", "uncertain", "outside_domain",
                                          "not_converged", "max_spread")},
            }  # fmt: skip
        _write_report(*report)
        tick = time.perf_counter()
        errors = _check(out, check_fraction, seed, settings, workers, device, progress)
        if "check" not in stages or errors is not None:
            stages["check"] = {"wall_s": round(time.perf_counter() - tick, 1)}
    ensemble.save(out / "surrogate.pt")
    return _write_report(*report)


def _check(out, fraction, seed, settings, workers, device, progress) -> pd.DataFrame | None:
    """LBM on the check rows (resumable journal) -> ``label_check.parquet``; None when
    an earlier run already wrote it for the same rows."""
    rows = check_rows(out, fraction, seed)
    path = out / CHECK
    if path.exists() and np.array_equal(pd.read_parquet(path)["index"].to_numpy(), rows):
        return None
    journal = LabelJournal(out, settings_key(settings), CHECK_JOURNAL)
    done = set(journal.rows()["index"].astype(int))
    todo = np.array([i for i in rows if i not in done], dtype=np.int64)
    if len(todo):
        run_label_tasks(str(out.resolve()), todo, journal, settings, workers, device,
                        progress=progress)  # fmt: skip
    found = journal.rows()
    errors = check_errors(out, found[found["index"].isin(rows)] if len(rows) else _NO_ROWS)
    atomic_write_parquet(errors, path)
    journal.clear()
    return errors


def _read_report(out: Path) -> dict:
    try:
        return json.loads((out / REPORT).read_text())
    except (OSError, ValueError):
        return {}


def _write_report(out, parts, seed, ensemble, spread, fraction, settings, stages) -> dict:
    store = open_dataset(out)
    manifest = store.manifest
    sources = manifest["label_source"].replace("", "unlabelled").value_counts().to_dict()
    errors = pd.read_parquet(out / CHECK) if (out / CHECK).exists() else None
    total = sum(stages[s]["wall_s"] for s in ("synthesize", "label") if s in stages)
    report = {
        "recipe": {
            "families": [{"family": f, "count": n} for f, n in parts],
            "shape": list(store.shape),
            "seed": seed,
            "surrogate": ensemble.fingerprint,
            "fallback_spread": spread,
            "domain_threshold": ensemble.domain.threshold,
            "domain_quantile": ensemble.domain.quantile,
            "check_fraction": fraction,
            "lbm": json.loads(settings_key(settings)),
        },
        "stages": stages,
        "wall_s": round(total, 1),  # synthesize + label: the dataset, without the check
        "samples_per_s": round(len(manifest) / total, 2) if total else None,
        "label_sources": {k: int(v) for k, v in sources.items()},
        "lbm_share": round(float((manifest["label_source"] == "lbm").mean()), 4),
        "check": error_summary(errors) if errors is not None else None,
        "fingerprint": store.fingerprint,
    }
    atomic_write_json(out / REPORT, report)
    return report


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
