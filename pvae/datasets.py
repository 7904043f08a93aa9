"""Which dataset a command uses when the user names none."""

from pathlib import Path

from pvae.errors import PvaeError


def resolve_dataset(path: str | Path | None) -> Path:
    """The dataset directory to use: the given path, else the embedded default.

    Raises
    ------
    PvaeError
        When no path is given and no default dataset is available.
    """
    if path is not None:
        return Path(path)
    raise PvaeError("no dataset given: pass --dataset DIR (or set `dataset:` in the experiment)")
