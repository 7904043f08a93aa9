"""The one exception type that the command line turns into a one-line message."""


class PvaeError(Exception):
    """Bad input or an impossible request, explained for the user.

    The message names the file (or option) and the problem in one line. The CLI
    prints it as ``pvae: error: <message>`` and exits with status 2, without a
    traceback unless ``--debug`` is given.
    """


def check_range(where: str, name: str, pair, low: float, high: float) -> None:
    """:class:`PvaeError` unless ``pair`` is ``(lo, hi)`` with ``low < lo <= hi <= high``
    (the validation of every range option of a generator family)."""
    lo, hi = pair
    if not low < lo <= hi <= high:
        raise PvaeError(f"{where}: {name} needs {low:g} < lo <= hi <= {high:g}, got {lo}, {hi}")
