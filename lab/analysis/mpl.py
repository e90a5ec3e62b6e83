"""matplotlib, loaded when the first figure is drawn (headless: the Agg backend).

Loading it takes ~0.4 s, more than the rest of the command line's start: every command that
draws nothing (validate, status, up, down, exec ...) starts without it. An experiment calls
preload() as its lab tears down, so the figures after that start at once.

    from lab.analysis.mpl import plt        # plt.subplots(...) loads matplotlib on first use
"""

import threading

_pyplot = None
_loader = None
_lock = threading.Lock()


def _load():
    global _pyplot
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    _pyplot = pyplot


def preload():
    """Start loading matplotlib in a background thread (while something else waits)."""
    global _loader
    with _lock:
        if _pyplot is None and _loader is None:
            _loader = threading.Thread(target=_load, name="load-matplotlib", daemon=True)
            _loader.start()


def pyplot():
    """matplotlib.pyplot, loaded (and the background load finished: nothing half-imported is
    left for a forked figure worker to inherit)."""
    if _loader is not None:
        _loader.join()
    if _pyplot is None:
        _load()
    return _pyplot


class _LazyPyplot:
    def __getattr__(self, name):
        return getattr(pyplot(), name)


plt = _LazyPyplot()
