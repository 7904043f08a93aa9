"""Atomic writes: a crash never leaves a half-written file or directory that looks complete."""

import contextlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pvae.core.errors import PvaeError


def check_out(out: str | Path, overwrite: bool = False) -> Path:
    """An output path a command may write: missing, an empty folder, or ``overwrite``.

    Commands call it before any work, so a refusal costs nothing and writes nothing.

    Raises
    ------
    PvaeError
        One line naming ``out``, when it exists (a file, or a non-empty folder) and
        ``overwrite`` is not given.
    """
    out = Path(out)
    if not overwrite and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PvaeError(f"{out}: exists and is not empty; use --overwrite to replace it")
    return out


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_directory(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place on success.

    Parameters
    ----------
    out : str or Path
        Final directory. If it exists and is not empty, :class:`PvaeError` unless
        ``overwrite`` (:func:`check_out`).
    overwrite : bool
        Replace an existing ``out`` (only once the new one is complete).

    Yields
    ------
    Path
        The temporary directory to fill. On an exception it is removed, together
        with any parent folders this call created, and ``out`` is untouched.
    """
    out = check_out(out, overwrite)
    missing = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_name(out)
    temp.mkdir()
    try:
        yield temp
        if out.exists():
            old = _temp_name(out)
            out.rename(old)
            temp.rename(out)
            shutil.rmtree(old)
        else:
            temp.rename(out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if missing:
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; fsync and rename it into place on success.

    For files a library writes itself (an SQLite database, say): the library writes the
    temporary name, and ``path`` appears only once that file is complete.
    """
    temp = _temp_name(Path(path))
    try:
        yield temp
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a file under a temporary name, fsync it, then rename it into place."""
    path = Path(path)
    with atomic_file(path) as temp:
        temp.write_bytes(data)
    return path


def json_safe(obj):
    """``obj`` made strict-JSON: numpy scalars and arrays become Python values, NaN and
    infinities become None, recursively through dicts, lists and tuples."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray | np.generic):
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj) -> str:
    """Indented, key-sorted strict JSON of ``obj`` (:func:`json_safe`)."""
    return json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False)


def atomic_write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented, key-sorted strict JSON (:func:`json_safe`) atomically."""
    return atomic_write_bytes(path, (json_text(obj) + "\n").encode())


def atomic_write_parquet(
    frame: pd.DataFrame, path: str | Path, metadata: dict | None = None
) -> Path:
    """Write a DataFrame as Parquet atomically, with JSON metadata under key ``pvae``.

    Parameters
    ----------
    frame : pd.DataFrame
        The table; its index is not stored.
    path : str or Path
        Target ``.parquet`` file.
    metadata : dict, optional
        Stored as JSON in the Parquet schema metadata (read back with
        :func:`read_parquet_metadata`).
    """
    path = Path(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata is not None:
        merged = dict(table.schema.metadata or {})
        merged[b"pvae"] = json.dumps(metadata, sort_keys=True).encode()
        table = table.replace_schema_metadata(merged)
    with atomic_file(path) as temp:
        pq.write_table(table, temp)
    return path


def read_parquet_metadata(path: str | Path) -> dict:
    """The ``pvae`` JSON metadata of a Parquet file written by :func:`atomic_write_parquet`."""
    raw = (pq.read_schema(path).metadata or {}).get(b"pvae")
    return json.loads(raw) if raw else {}
