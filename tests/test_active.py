"""Active learning of the design critic (:mod:`pvae.design.active`)."""

from pathlib import Path

import numpy as np
import pytest

from pvae.data.store import open_dataset
from pvae.design.active import CriticLearner
from pvae.design.pool import DesignPool
from pvae.surrogate import load_surrogate

DEFAULT = Path(__file__).resolve().parents[1] / "data" / "default"


def test_learning_verified_designs_moves_the_critic_to_their_labels_only():
    """The shipped critic, told that six channel structures are 0.3 decade more permeable
    than it predicts, learns that from them, keeps its predictions for unlike structures
    (the other families), and leaves the critic it started from untouched. (Other channel
    structures take some of the correction: they are like the designs.)"""
    critic = load_surrogate(DEFAULT / "surrogate.pt")
    store = open_dataset(DEFAULT)
    family = store.manifest["family"].to_numpy()
    designs, held = (
        np.flatnonzero(family == "channels")[:6],
        np.flatnonzero(family != "channels")[::20],
    )
    anchors = np.setdiff1d(np.arange(len(store)), np.concatenate([designs, held]))
    images = store.images(designs)
    k = np.diagonal(critic.predict(images).k, axis1=1, axis2=2) * 10**0.3
    assert (k > 0).all()
    held_k = store.labels()[held][:, [1, 5, 9]]  # K_xx, K_yy, K_zz of the held samples
    learner = CriticLearner(critic, DesignPool(store, anchors, "anchors"), steps=30, lr=1e-3,
                            batch=8)  # fmt: skip
    before, held_before = learner.error(images, k), learner.error(store.images(held), held_k)
    assert before == pytest.approx(0.3, abs=0.01)
    tuned = learner.learn(images, k, "six")
    assert tuned is learner.critic and tuned is not critic
    assert learner.error(images, k) < 0.5 * before
    assert learner.error(store.images(held), held_k) < held_before + 0.05  # not forgotten
    assert learner.history == [{"label": "six", "designs": 6, "error_before": before}]
    original = np.diagonal(critic.predict(images).k, axis1=1, axis2=2)
    np.testing.assert_allclose(original * 10**0.3, k, rtol=1e-6)


def test_unverifiable_designs_are_left_out():
    critic = load_surrogate(DEFAULT / "surrogate.pt")
    store = open_dataset(DEFAULT)
    pool = DesignPool(store, np.arange(8, 40), "pool")
    learner = CriticLearner(critic, pool, steps=1)
    k = np.full((2, 3), np.nan)  # an image without solid has no K
    assert learner.learn(store.images([0, 1]), k) is critic
    assert learner.history == [] and learner.summary()["designs"] == 0
