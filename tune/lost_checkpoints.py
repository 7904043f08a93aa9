"""Checkpoints a killed study's saved state still names, given back before it resumes.

Ray keeps ``keep_checkpoints`` checkpoints per trial and deletes the one a new checkpoint
displaces as soon as it registers the new one; it saves the experiment's state (what
``Tuner.restore`` reads) only at its next step. A driver killed between the two leaves a
state whose unfinished trial resumes from a checkpoint that no longer exists, and Ray
fails that trial ("Could not recover from checkpoint as it does not exist on storage
anymore"). :func:`revive_lost_checkpoints` recreates each such checkpoint as a folder
holding only :data:`LOST_MARKER`; the trial function (:func:`tune.trainable.train_trial`)
finds no trainer state there and trains the trial from its first epoch, as a trial
without checkpoints would restart. Seeded training repeats the same epochs, and the
study's history keeps one row per trial and epoch.

It reads Ray's saved state with Ray's own loaders (``ray`` is pinned in
``constraints.txt``).
"""

from ray.train._internal.storage import _exists_at_fs_path, get_fs_and_path
from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
from ray.tune.experiment.trial import Trial, _TrainingRunMetadata
from ray.tune.utils.serialization import _loads_with_cloudpickle

LOST_MARKER = "lost_checkpoint.txt"
_FINISHED = ("TERMINATED",)


def saved_latest_checkpoints(experiment_path: str) -> dict[str, tuple[object, str]]:
    """Per unfinished trial of the newest saved state in ``experiment_path`` (a local
    folder or a ``s3://``-like URI): its latest checkpoint as ``(filesystem, path)``, a
    ``pyarrow.fs`` filesystem and a path on it; trials without one are left out."""
    newest = _find_newest_experiment_checkpoint(str(experiment_path))
    if newest is None:
        return {}
    filesystem, _ = get_fs_and_path(str(experiment_path))
    with filesystem.open_input_stream(newest) as saved:
        state = _loads_with_cloudpickle(saved.readall())
    latest = {}
    for trial_state, run_state in state["trial_data"]:
        trial = Trial.from_json_state(trial_state, stub=True)
        manager = _TrainingRunMetadata.from_json_state(run_state).checkpoint_manager
        result = manager.latest_checkpoint_result
        if trial.status in _FINISHED or result is None or result.checkpoint is None:
            continue
        latest[trial.trial_id] = (result.checkpoint.filesystem, result.checkpoint.path)
    return latest


def revive_lost_checkpoints(experiment_path: str) -> list[str]:
    """Recreate the missing latest checkpoints of unfinished trials (see the module).

    Returns
    -------
    list of str
        Ids of the trials that will restart from their first epoch.
    """
    revived = []
    for trial_id, (filesystem, path) in saved_latest_checkpoints(experiment_path).items():
        if _exists_at_fs_path(filesystem, path):
            continue
        filesystem.create_dir(path)
        with filesystem.open_output_stream(f"{path}/{LOST_MARKER}") as marker:
            marker.write(b"deleted by Ray before its state was saved; the trial restarts\n")
        revived.append(trial_id)
    return revived
