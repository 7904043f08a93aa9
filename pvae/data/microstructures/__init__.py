"""Seeded synthetic microstructure families: channels, spheres, foam, grf."""

from pvae.data.microstructures.synthesize import (
    FAMILIES,
    family_options,
    parse_shape,
    synthesize,
    synthesize_sample,
)

__all__ = ["FAMILIES", "family_options", "parse_shape", "synthesize", "synthesize_sample"]
