"""The live progress widget shown under ``%hpo_run``; it only observes a run."""

from __future__ import annotations

from typing import Any, Protocol

import anywidget
import traitlets

from ._assets import asset
from ._progress import Progress

__all__ = ["ProgressWidget", "show"]


class _Observable(Protocol):
    def subscribe(self, observer: Any) -> None: ...


class ProgressWidget(anywidget.AnyWidget):
    """Progress bar, counts by state, best value and params, elapsed and ETA."""

    _esm = asset("progress.js")
    _css = asset("progress.css")
    progress = traitlets.Dict().tag(sync=True)

    def __init__(self, source: _Observable, **kwargs: Any) -> None:
        self._summary = ""
        super().__init__(**kwargs)
        source.subscribe(self._show)

    def _show(self, progress: Progress) -> None:
        self._summary = progress.summary()
        self.progress = progress.to_json()

    def __repr__(self) -> str:
        return self._summary


def show(widget: ProgressWidget, source: _Observable) -> None:
    """Display ``widget`` and, when the run ends, refresh the displayed output so that the saved
    notebook (and a terminal) holds the final summary rather than the first one."""
    from IPython.display import display

    handle = display(widget, display_id=True)
    shown = {"done": False}

    def refresh(progress: Progress) -> None:
        if progress.state.done and not shown["done"] and handle is not None:
            shown["done"] = True
            handle.update(widget)

    source.subscribe(refresh)
