"""``pvae data label --method surrogate``: surrogate labels, LBM for the uncertain ones.

The surrogate labels every pending sample in-process; samples whose ensemble spread
exceeds ``fallback_lbm_above``, or that lie outside the surrogate's applicability
domain (:mod:`pvae.surrogate.domain`), are left unlabelled and then solved by LBM as Ray tasks
with :func:`tune.labelling.label_dataset` (resumable; their ``label_source`` is
``lbm``). The manifest records per sample which method produced its label.
"""

from pathlib import Path

from pvae.core.device import resolve_device
from pvae.physics.lbm import LBMSettings
from pvae.surrogate.ensemble import SurrogateEnsemble, load_surrogate
from pvae.surrogate.labelling import write_surrogate_labels
from tune.labelling import label_dataset


def label_with_surrogate(
    root: str | Path,
    model: str | Path | SurrogateEnsemble,
    fallback_lbm_above: float | None = None,
    lbm_settings: LBMSettings | None = None,
    workers: int | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    relabel: bool = False,
    progress: bool | None = None,
    domain_check: bool = True,
) -> dict:
    """Label a dataset with a surrogate ensemble, falling back to LBM where it is unsure.

    Parameters
    ----------
    root : str or Path
        Dataset directory.
    model : str or Path or SurrogateEnsemble
        A surrogate bundle (``pvae surrogate train --out``) or a loaded ensemble.
    fallback_lbm_above : float, optional
        Ensemble spread (decades of log10 K, largest over the axes) above which a
        sample is labelled by LBM instead; None: the surrogate labels everything.
    lbm_settings : LBMSettings, optional
        Solver settings of the fallback (default :class:`LBMSettings`).
    workers, batch_size : int, optional
        LBM tasks at once and samples per task (see :func:`tune.labelling.label_dataset`);
        ``batch_size`` is also the surrogate's images per forward pass (default 64).
    device : str
        ``auto``, ``cpu`` or ``cuda``: for the surrogate here and for the LBM tasks.
    relabel : bool
        Replace existing labels too.
    progress : bool, optional
    domain_check : bool
        Also send samples outside the surrogate's applicability domain to LBM.

    Returns
    -------
    dict
        ``surrogate`` and ``lbm`` (rows labelled now by each), ``uncertain`` and
        ``outside_domain`` (why rows went to LBM), ``domain_checked``,
        ``already_labelled``, ``not_converged`` (LBM), ``max_spread``, ``model``
        (fingerprint), ``fingerprint``.
    """
    if not isinstance(model, SurrogateEnsemble):
        model = load_surrogate(model, resolve_device(device))
    summary = write_surrogate_labels(
        root, model, fallback_lbm_above, relabel, batch_size or 64, progress, domain_check
    )
    result = {
        "surrogate": summary["surrogate"],
        "lbm": 0,
        "uncertain": summary["uncertain"],
        "outside_domain": summary["outside_domain"],
        "domain_checked": summary["domain_checked"],
        "already_labelled": summary["already_labelled"],
        "not_converged": 0,
        "max_spread": summary["max_spread"],
        "model": model.fingerprint,
        "fingerprint": summary["fingerprint"],
    }
    if len(summary["fallback"]):
        lbm = label_dataset(root, lbm_settings, workers, device, batch_size, False, progress)
        result.update(lbm=lbm["labelled"], not_converged=lbm["not_converged"])
        result["fingerprint"] = lbm["fingerprint"]
    return result
