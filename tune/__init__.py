"""Everything Ray: labelling tasks, the study trainable and builder, cluster configs."""
