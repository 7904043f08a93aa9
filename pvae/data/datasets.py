"""Which dataset a command uses when the user names none: the embedded default."""

from pathlib import Path

from pvae.core.errors import PvaeError
from pvae.data.default_data import DEFAULT_DATASET


def resolve_dataset(path: str | Path | None) -> Path:
    """The dataset directory to use: the given path, else ``data/default``.

    Raises
    ------
    PvaeError
        When no path is given and the embedded default dataset is missing.
    """
    if path is not None:
        return Path(path)
    if not (DEFAULT_DATASET / "manifest.parquet").is_file():
        raise PvaeError(
            f"no dataset given and no default dataset at {DEFAULT_DATASET}; pass --dataset DIR "
            "or rebuild it with `pvae data build-default`"
        )
    return DEFAULT_DATASET
