"""The control panel widget: it shows what a :class:`~hpo_nb.frontends.console.Console` tells it and
passes the user's commands back; it decides nothing itself.

The contract with ``widgets/panel.js`` is written down once, in ``widgets/PROTOCOL.md``, with
its types in :mod:`hpo_nb.frontends.panel_protocol`: the synced traits below, ``trials``
messages with finished trials as rows (a reset answers the front end's ``sync``, later messages
carry only new rows, so an update's size does not grow with the history) and ``{"cmd": ...}``
commands from the front end.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import anywidget
import traitlets

from hpo_nb.frontends.assets import asset
from hpo_nb.frontends.panel_protocol import TrialRow, TrialsMessage

__all__ = ["Panel", "snapshot_html"]


class Panel(anywidget.AnyWidget):
    """Search-space editor, algorithm pickers, run controls and live views of one study."""

    _esm = asset("panel.js")
    _css = asset("panel.css")
    # The synced traits: panel_protocol.TRAITS gives each one's JSON type.
    study = traitlets.Dict().tag(sync=True)
    progress = traitlets.Dict().tag(sync=True)
    config = traitlets.Dict().tag(sync=True)
    options = traitlets.Dict().tag(sync=True)
    space = traitlets.Dict().tag(sync=True)
    draft_error = traitlets.Unicode("").tag(sync=True)
    config_error = traitlets.Unicode("").tag(sync=True)
    can = traitlets.Dict().tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    top: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)  # TrialRow items
    importance = traitlets.Dict().tag(sync=True)
    exports: traitlets.List[str] = traitlets.List().tag(sync=True)

    def __init__(self, on_command: Callable[[dict[str, Any]], None], **kwargs: Any) -> None:
        """``on_command`` receives each :data:`~hpo_nb.frontends.panel_protocol.Command`."""
        super().__init__(**kwargs)
        self._on_command = on_command
        self.on_msg(self._receive)

    def _receive(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and isinstance(content.get("cmd"), str):
            self._on_command(content)  # the handler reports a name it does not know

    def send_rows(self, rows: Sequence[Mapping[str, Any]], total: int, reset: bool = False) -> None:
        """Finished trials (rows of :func:`hpo_nb.engine.rows.trial_row`): all the view should
        hold (``reset``) or the new ones."""
        if rows or reset:
            message: TrialsMessage = {
                "kind": "trials",
                "reset": reset,
                "rows": cast(list[TrialRow], list(rows)),
                "total": total,
            }
            self.send(message)

    def __repr__(self) -> str:
        return str(self.progress.get("summary") or f"hpo_nb panel: {self.study.get('name')}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, and a static snapshot for readers without a kernel (GitHub,
        nbviewer): they skip the widget's mime type and show the HTML."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/html"] = snapshot_html(self.progress, self.top, self.study)
        return bundle


def snapshot_html(
    progress: dict[str, Any], top: list[dict[str, Any]], study: dict[str, Any]
) -> str:
    """The panel's state as plain HTML: state, counts, best trial and the top trials."""
    esc = html.escape
    name = esc(str(study.get("name") or progress.get("study") or ""))
    if not progress:
        return f"<div class='hpo-snapshot'><b>hpo_nb</b> {name}: not started</div>"
    counts = ", ".join(
        f"{progress.get(k, 0)} {k}" for k in ("complete", "pruned", "failed", "running")
    )
    reason = esc(str(progress.get("reason") or ""))
    best = ""
    if progress.get("best_value") is not None:
        params = ", ".join(f"{esc(k)}={esc(_fmt(v))}" for k, v in progress["best_params"].items())
        best = (
            f"<div>best <b>{esc(_fmt(progress['best_value']))}</b> "
            f"(trial {progress.get('best_number')}): {params}</div>"
        )
    names = list(dict.fromkeys(k for row in top for k in row.get("p", {})))
    head = "".join(f"<th>{esc(n)}</th>" for n in ["trial", "value(s)", *names])
    body = "".join(
        "<tr>"
        + f"<td>{row['n']}</td><td>{esc(', '.join(_fmt(v) for v in row.get('v') or []))}</td>"
        + "".join(f"<td>{esc(_fmt(row['p'].get(n, '')))}</td>" for n in names)
        + "</tr>"
        for row in top
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if top else ""
    return (
        "<div class='hpo-snapshot'>"
        f"<div><b>hpo_nb</b> study <b>{name}</b>: {esc(str(progress.get('state', '')))}"
        f"{' (' + reason + ')' if reason else ''}</div>"
        f"<div>{progress.get('finished', 0)}/{progress.get('target', 0)} finished ({counts})</div>"
        f"{best}{table}</div>"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)
