from __future__ import annotations

import os

# Worker processes import the objectives defined in these test modules by name (collected
# before any cluster starts, like tests/conftest.py).
_here = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_here, os.environ.get("PYTHONPATH")) if p)
