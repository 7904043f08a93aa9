"""Progress bars: shown on a terminal by default, silent in logs and pipes."""

from tqdm import tqdm


def progress_bar(total: int, desc: str, progress: bool | None = None, unit: str = "sample"):
    """A tqdm bar on stderr.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str
        Label shown before the bar.
    progress : bool, optional
        True: always show; False: never; None (default): only when stderr is a terminal.
    """
    disable = None if progress is None else not progress
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True)
