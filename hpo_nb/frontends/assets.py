"""Find the widget's front-end files: ``widgets/`` in a checkout (hot reload), else the wheel's.

``panel.js`` is generated: ``npm run build`` in ``widgets/`` bundles ``widgets/src/`` into it
(``npm run watch`` rebuilds on every edit, and with ``ANYWIDGET_HMR=1`` the panel reloads).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["asset"]

_PACKAGE = Path(__file__).resolve().parents[1]  # hpo_nb/
_CHECKOUT = _PACKAGE.parent


def asset(name: str) -> Path:
    """Path of ``widgets/<name>``; raises ``FileNotFoundError`` if it is in neither place."""
    for folder in (_CHECKOUT / "widgets", _PACKAGE / "_static"):
        if folder.parent == _CHECKOUT and not (_CHECKOUT / "pyproject.toml").is_file():
            continue  # an installed package: a stray top-level widgets/ is not ours
        path = folder / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"hpo_nb widget file {name!r} is missing: reinstall hpo_nb")
