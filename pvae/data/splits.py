"""Fixed train / validation / test splits, nested training subsets and epoch seeds."""

import numpy as np

from pvae.core.errors import PvaeError


def make_splits(count: int, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> dict[str, list[int]]:
    """Split ``count`` sample indices by a seeded permutation.

    Parameters
    ----------
    count : int
        Number of samples (>= 3).
    fractions : tuple of float
        Train, validation, test fractions (sum 1); validation and test get at least one.
    seed : int
        Seed of the permutation: the same seed gives the same split.

    Returns
    -------
    dict
        ``train``, ``val``, ``test``: lists of indices. ``train`` is in permutation
        order, so :func:`training_subset` prefixes are random but nested.
    """
    if count < 3:
        raise PvaeError(f"a dataset of {count} samples cannot be split into train/val/test")
    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, round(fractions[1] * count))
    n_test = max(1, round(fractions[2] * count))
    n_train = count - n_val - n_test
    return {
        "train": order[:n_train].tolist(),
        "val": sorted(order[n_train : n_train + n_val].tolist()),
        "test": sorted(order[n_train + n_val :].tolist()),
    }


def training_subset(train: list[int], size: int | None) -> list[int]:
    """The first ``size`` training indices (all if None or larger).

    Because the training split is in a fixed random order, the subset of size n is
    contained in every subset of size m > n: dataset-size studies compare like with
    like. A size larger than the split is capped (the caller may warn).
    """
    return list(train) if size is None else list(train[: min(size, len(train))])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling, augmentation and sampling, from (seed, epoch):
    a run restored at any epoch continues exactly as an uninterrupted one."""
    return seed * 100_003 + epoch
