"""Description of the machine a benchmark ran on (stored with every result)."""

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch


def machine() -> dict:
    """CPU model, usable cores, library versions, GPU name, and the load when measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average_1min": os.getloadavg()[0],
    }


def result_header(dataset, store) -> dict:
    """The first fields of a dataset benchmark's JSON: command, machine and dataset."""
    return {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "dataset": str(dataset),
        "dataset_fingerprint": store.fingerprint,
        "shape": list(store.shape),
    }


def run_line(result: dict) -> str:
    """Markdown line naming the command and the machine of a result (``command`` and
    ``machine`` fields), with the load at the start."""
    m = result["machine"]
    return (
        f"`{result['command']}` on {m['cpu']} ({m['cores']} cores, load average "
        f"{m['load_average_1min']:.1f} at the start)."
    )


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); timings are meaningless without it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_results(out: Path, name: str, data, markdown: str) -> None:
    """Print ``markdown`` and write ``NAME.json`` (``data``) and ``NAME.md`` to ``out``,
    each atomically."""
    from pvae.core.atomic import atomic_write_bytes

    print("\n" + markdown)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / f"{name}.json", (json.dumps(data, indent=2) + "\n").encode())
    atomic_write_bytes(out / f"{name}.md", markdown.encode())
