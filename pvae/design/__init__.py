"""Using a trained pVAE: latent tables, interpolation, inverse design (pool, targets,
recombination, novelty) and its reports. Uses every layer below it."""
