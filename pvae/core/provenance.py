"""Where results come from: code version, library versions, hardware."""

import functools
import platform
import subprocess
from pathlib import Path

from pvae import __version__


@functools.cache
def git_commit() -> str | None:
    """Commit of the source tree pvae runs from (None outside a git checkout)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def code_version() -> dict:
    """``pvae`` version and git commit."""
    return {"pvae": __version__, "git_commit": git_commit()}


def versions() -> dict:
    """Versions of the libraries results depend on."""
    import numpy
    import torch

    found = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }
    for name in ("ray", "optuna", "pandas", "pyarrow"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = None
    return found
