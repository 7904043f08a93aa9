"""Warnings meant for the user (printed by the CLI as one ``pvae: warning:`` line)."""


class PvaeWarning(UserWarning):
    """Something the user should know that does not stop the work."""
