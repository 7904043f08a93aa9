"""Connecting to Ray: an existing cluster when there is one, a small local one otherwise."""

import contextlib
import logging
import os

import ray

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
            with _quiet(TOKEN_NOTICE):
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
