"""CNN permeability surrogate: an ensemble of 3D CNNs trained on LBM labels.

The surrogate is a second labelling method next to LBM (:mod:`pvae.physics.lbm`): it
maps a periodic voxel image to the permeability tensor K (lattice units, superficial
convention, (x, y, z) components) in milliseconds, with an ensemble spread that says
when to trust it. Modules:

* :mod:`~pvae.surrogate.logtensor` -- the learning target (matrix logarithm of K);
* :mod:`~pvae.surrogate.model` -- the network and its config;
* :mod:`~pvae.surrogate.training` -- training an ensemble with symmetry augmentation;
* :mod:`~pvae.surrogate.ensemble` -- the saved bundle and batched prediction;
* :mod:`~pvae.surrogate.domain` -- the applicability domain (is an image like the training ones?);
* :mod:`~pvae.surrogate.evaluation` -- accuracy and calibration against LBM labels;
* :mod:`~pvae.surrogate.labelling` -- writing surrogate labels into a dataset.
"""

from pvae.surrogate.ensemble import Prediction, SurrogateEnsemble, load_surrogate
from pvae.surrogate.model import SurrogateConfig
from pvae.surrogate.training import TrainSettings, train_ensemble

__all__ = [
    "Prediction",
    "SurrogateConfig",
    "SurrogateEnsemble",
    "TrainSettings",
    "load_surrogate",
    "train_ensemble",
]
