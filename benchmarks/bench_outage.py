"""Database outages mid-study: what a run keeps, on PostgreSQL and MariaDB through a TCP proxy.

python benchmarks/bench_outage.py                 # a 10 s outage, and one past the patience
python benchmarks/bench_outage.py --outage 4 --trials 16   # smaller

The database servers keep running: the proxy between the run and the server drops every
connection and refuses new ones for the outage (tests/reliability/tcp_proxy.py).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "reliability"))

SMOKE = ["--outage", "5", "--trials", "12", "--servers", "postgresql"]
SERVERS = {
    "postgresql": (("127.0.0.1", 5432), "postgresql+psycopg://127.0.0.1:{port}/test"),
    "mysql": (("127.0.0.1", 3306), "mysql+pymysql://root@127.0.0.1:{port}/test"),
}
GIVE_UP_PATIENCE = 2.0  # seconds, for the outage past the patience


def _objective() -> Any:
    """A nested function: cloudpickle sends it by value, so workers need not import this file."""

    def slow_square(trial: Any) -> float:
        import time

        x = trial.suggest_float("x", -1.0, 1.0)
        time.sleep(0.1)
        return x * x

    return slow_square


def _states(url: str, name: str) -> collections.Counter[str]:
    import optuna

    study = optuna.load_study(study_name=name, storage=url)
    return collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))


def _until(condition: Any, timeout: float) -> float:
    """Seconds until ``condition()`` (inf if it never held within ``timeout``)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            return float("inf")
        time.sleep(0.1)
    return time.monotonic() - start


def outage(server: str, seconds: float, trials: int, patience: float) -> dict[str, Any]:
    """One run with ``seconds`` of outage after its third trial; what the storage holds."""
    import dataclasses

    import optuna
    from tcp_proxy import TcpProxy

    import hpo_nb
    from hpo_nb.engine import run as run_module

    target, template = SERVERS[server]
    direct = template.format(port=target[1])
    proxy = TcpProxy(target)
    name = f"outage-{uuid.uuid4().hex[:8]}"
    settings = run_module.settings
    run_module.settings = dataclasses.replace(settings, storage_patience=patience)
    slow_square = _objective()
    try:
        run = hpo_nb.run(
            slow_square, n_trials=trials, storage=proxy.url(template), study=name, workers=2
        )
        _until(lambda: run.progress.complete >= 3, 120)
        proxy.down()
        time.sleep(seconds)
        ended_in_outage = run.done
        proxy.up()
        caught_up = _until(lambda: run.done, 300)
        settled = _until(lambda: not _states(direct, name).get("RUNNING"), 120)
        states = _states(direct, name)
        result = {
            "server": server,
            "outage": seconds,
            "patience": patience,
            "state": run.state.value,
            "ended in outage": ended_in_outage,
            "caught up": caught_up if not ended_in_outage else settled,
            "complete in memory": run.progress.complete,
            "complete stored": states.get("COMPLETE", 0),
            "running left": states.get("RUNNING", 0),
            "retries seen": sum("retrying" in e for e in run.progress.events),
        }
        if ended_in_outage:
            resumed = hpo_nb.resume(name, {"slow_square": slow_square}, storage=direct)
            resumed.wait(timeout=300)
            result["resumed"] = resumed.state.value
            result["after resume"] = dict(_states(direct, name))
        return result
    finally:
        run_module.settings = settings
        proxy.close()
        optuna.delete_study(study_name=name, storage=direct)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the server is gone")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    args = parser.parse_args(argv)
    lines = [
        f"## A database outage mid-study ({args.trials} trials of 0.1 s on 2 workers; "
        "`python benchmarks/bench_outage.py`)\n",
        f"The server is cut off (a TCP proxy refuses connections) for {args.outage:g} s after "
        "the third trial: once within the run's patience (60 s, `HPO_NB_STORAGE_PATIENCE`), "
        f"once past a patience of {GIVE_UP_PATIENCE:g} s, after which the run fails and "
        "writes what it holds once the server is back; then `hpo_nb.resume` finishes it.\n",
        "| server | patience s | run | complete in memory / stored | RUNNING left | retries "
        "noted | s from back to all written | resumed |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for server in args.servers:
        for patience in (60.0, GIVE_UP_PATIENCE):
            r = outage(server, args.outage, args.trials, patience)
            resumed = r.get("resumed", "-")
            if "after resume" in r:
                resumed += f" ({r['after resume'].get('COMPLETE', 0)} complete, "
                resumed += f"{r['after resume'].get('RUNNING', 0)} running)"
            lines.append(
                f"| {server} | {patience:g} | {r['state']} | {r['complete in memory']} / "
                f"{r['complete stored']} | {r['running left']} | {r['retries seen']} | "
                f"{r['caught up']:.1f} | {resumed} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    return text


if __name__ == "__main__":
    main()
