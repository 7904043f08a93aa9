"""The one exception type that the command line turns into a one-line message."""


class PvaeError(Exception):
    """Bad input or an impossible request, explained for the user.

    The message names the file (or option) and the problem in one line. The CLI
    prints it as ``pvae: error: <message>`` and exits with status 2, without a
    traceback unless ``--debug`` is given.
    """
