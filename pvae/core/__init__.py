"""Core utilities every other layer may use: errors and warnings, atomic writes,
progress bars, provenance, the device choice, periodic network layers and metrics.

Imports only the standard library, numpy, pandas, pyarrow and torch (and MLflow, an
optional extra, only when asked for: :mod:`pvae.core.tracking`).
"""
