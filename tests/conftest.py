from __future__ import annotations

import os

# Two worker processes everywhere: the CI machine has two cores. Set before hpo_nb is imported.
os.environ.setdefault("HPO_NB_WORKERS", "2")
# Worker processes import the objectives defined in these test modules by name.
_here = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_here, os.environ.get("PYTHONPATH")) if p)

import pytest  # noqa: E402

import hpo_nb  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _close_clusters():
    yield
    hpo_nb.stop_all()
    hpo_nb.close_clusters()


@pytest.fixture
def db(tmp_path) -> str:
    """A fresh SQLite storage URL."""
    return f"sqlite:///{tmp_path / 'hpo.db'}"


SERVERS = {
    "postgresql": "postgresql+psycopg://127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"], ids=lambda p: p)
def any_db(request, tmp_path):
    """A storage URL on every supported backend (the servers run on localhost here and in CI).

    The server databases are shared, so every study is deleted afterwards.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hpo.db'}"
        return
    import optuna

    url = SERVERS[request.param]
    yield url
    for name in optuna.get_all_study_names(url):
        optuna.delete_study(study_name=name, storage=url)
