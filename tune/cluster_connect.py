"""Connecting to Ray: an existing cluster when there is one, a small local one otherwise."""

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import ray

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; starts there are not serialized
    fcntl = None

# Ray's notice that a new local cluster uses token authentication (Ray's default, kept):
# for a Ray that pvae starts for itself it is noise on every command
TOKEN_NOTICE = "ray._private.authentication.authentication_token_setup"


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Silence one logger's warnings (not errors) for the duration."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _start_lock():
    """Hold a machine-wide lock while this process starts its local Ray.

    Ray picks the ports of a new local cluster before its processes bind them, so two
    clusters started at the same moment can pick the same port and one of them fails
    (ray-project/ray#53906): two ``pvae data label`` runs launched together, say. Once
    ``ray.init`` returns, the ports are bound and the next start sees them taken.
    """
    if fcntl is None:
        yield
        return
    path = Path(tempfile.gettempdir()) / f"pvae-ray-start-{os.getuid()}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def ray_session(
    num_cpus: int | None = None,
    address: str | None = None,
    object_store_memory: int = 80 * 2**20,
):
    """Use a running Ray (``address``, ``RAY_ADDRESS`` or already initialised) or start one.

    Parameters
    ----------
    num_cpus : int, optional
        CPUs of a locally started cluster (default: all).
    address : str, optional
        Cluster address (``auto``, ``ray://host:10001``, ...); default ``RAY_ADDRESS``.
    object_store_memory : int
        Object store of a locally started cluster, bytes (data reach tasks by path,
        so it only carries results).

    Yields
    ------
    dict
        ``ray.cluster_resources()`` after connecting. A cluster this call started is
        shut down on exit; one it joined is left running.
    """
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            with _quiet(TOKEN_NOTICE), _start_lock():
                ray.init(
                    address="local",  # a new one: never the last `ray start` cluster
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    object_store_memory=object_store_memory,
                    log_to_driver=False,
                    configure_logging=False,
                )
            started = True
    try:
        yield ray.cluster_resources()
    finally:
        if started:
            ray.shutdown()
