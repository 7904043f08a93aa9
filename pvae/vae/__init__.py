"""The pVAE: model and losses, targets, training with checkpoints, bundles, loading,
inference, evaluation with figures, and the fidelity of decoded structures (measured by
physics or by a surrogate critic). Uses core, physics, data and surrogate."""
