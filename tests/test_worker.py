"""The worker-side trial: local resolution in Optuna's order, and outcome classification."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from hpo_nb.execution import protocol
from hpo_nb.execution.channel import TaskCancelled
from hpo_nb.execution.worker import _HOLD, TrialTicket, WorkerTrial, outcome_of


class RecordingChannel:
    """Stands in for the scheduler route: records messages (as they travel: tuples become
    lists) and answers requests."""

    def __init__(self, answers=None):
        self.sent: list[tuple[str, dict]] = []
        self.answers = answers or {}

    def send(self, body, wants_answer=False):
        wire = protocol.encode(protocol.Envelope("k", "a", len(self.sent) + 1, wants_answer, body))
        payload = {k: v for k, v in json.loads(json.dumps(wire)).items() if k not in ENVELOPE}
        self.sent.append((body.op, payload))
        return protocol.Envelope("k", "a", len(self.sent), wants_answer, body)

    def wait(self, envelope):
        return self.answers[envelope.body.op]

    def request(self, body):
        return self.wait(self.send(body, wants_answer=True))

    def cancelled(self):
        return "cancelled" in self.answers


ENVELOPE = ("key", "attempt", "seq", "wants_answer", "op")


def ticket(**overrides):
    fields = dict(
        number=0,
        n_objectives=1,
        datetime_start=None,
        fixed_params={},
        relative_params={},
        relative_space={},
    )
    fields.update(overrides)
    return TrialTicket(**fields)


def test_relative_fixed_and_single_values_resolve_without_asking():
    t = ticket(
        fixed_params={"a": 3},
        relative_params={"b": 0.5, "a": 7},
        relative_space={"b": FloatDistribution(0, 1), "a": IntDistribution(0, 10)},
    )
    channel = RecordingChannel()
    trial = WorkerTrial(t, channel)
    assert trial.suggest_int("a", 0, 10) == 3  # the enqueued value wins over the sampler's
    assert trial.suggest_float("b", 0, 1) == 0.5
    assert trial.suggest_categorical("c", ["only"]) == "only"
    assert trial.suggest_float("b", 0, 1) == 0.5  # asking twice returns the same value
    # no request: the first value resolved here goes out at once, one way; the others wait
    # (see _HOLD) and travel with the trial's next message
    sent = [(op, [p[0] for p in payload["params"]]) for op, payload in channel.sent]
    assert sent == [("report", ["a"])]
    assert [p[0] for p in trial.close()["params"]] == ["b", "c"]


def test_out_of_range_relative_value_and_new_params_ask_the_controller():
    t = ticket(relative_params={"x": 5.0}, relative_space={"x": FloatDistribution(0, 10)})
    channel = RecordingChannel({"suggest": protocol.ValueAnswer(0.25)})
    trial = WorkerTrial(t, channel)
    assert trial.suggest_float("x", 0, 1) == 0.25  # 5.0 is outside [0, 1]
    assert channel.sent[0][0] == "suggest" and channel.sent[0][1]["name"] == "x"
    assert trial.params == {"x": 0.25}


def test_categorical_answers_come_back_as_choices():
    channel = RecordingChannel({"suggest": protocol.ValueAnswer(1.0)})
    trial = WorkerTrial(ticket(), channel)
    assert trial.suggest_categorical("opt", ["sgd", "adam"]) == "adam"


def test_incompatible_redefinition_raises_like_optuna():
    trial = WorkerTrial(ticket(), RecordingChannel({"suggest": protocol.ValueAnswer(0.5)}))
    trial.suggest_float("x", 0, 1)
    with pytest.raises(ValueError):
        trial.suggest_categorical("x", ["a", "b"])


def test_report_validates_like_optuna_and_drops_repeated_steps():
    channel = RecordingChannel()
    trial = WorkerTrial(ticket(), channel)
    with pytest.raises(TypeError):
        trial.report("high", 0)
    with pytest.raises(ValueError):
        trial.report(1.0, -1)
    trial.report(np.float32(1.5), 0)
    with pytest.warns(UserWarning, match="already reported"):
        trial.report(2.0, 0)
    assert [op for op, _ in channel.sent] == ["report"]
    multi = WorkerTrial(ticket(n_objectives=2), channel)
    with pytest.raises(NotImplementedError):
        multi.report(1.0, 0)


def test_cancel_reply_raises_an_exception_objectives_cannot_swallow():
    trial = WorkerTrial(ticket(), RecordingChannel({"should_prune": protocol.Cancel("stopped")}))
    assert not issubclass(TaskCancelled, Exception)
    with pytest.raises(TaskCancelled, match="stopped"):
        trial.should_prune()


def test_without_a_pruner_should_prune_asks_nothing_but_still_sees_a_cancel():
    channel = RecordingChannel()
    trial = WorkerTrial(ticket(prunes=False), channel)
    trial.report(0.5, 0)
    assert trial.should_prune() is False
    assert [op for op, _ in channel.sent] == ["report"]
    stopped = WorkerTrial(ticket(prunes=False), RecordingChannel({"cancelled": True}))
    with pytest.raises(TaskCancelled):
        stopped.should_prune()


def test_the_number_is_asked_once_when_the_ticket_has_none():
    channel = RecordingChannel({"number": protocol.NumberAnswer(41)})
    trial = WorkerTrial(ticket(number=None), channel)
    assert (trial.number, trial.number) == (41, 41)
    assert [op for op, _ in channel.sent] == ["number"]


def test_user_attrs_must_be_json():
    trial = WorkerTrial(ticket(), RecordingChannel())
    trial.set_user_attr("k", {"a": [1, 2]})
    assert trial.user_attrs == {"k": {"a": [1, 2]}}
    with pytest.raises(TypeError, match="JSON"):
        trial.set_user_attr("bad", object())


def test_trial_study_is_explained():
    with pytest.raises(AttributeError, match="not available on a dask worker"):
        WorkerTrial(ticket(), RecordingChannel()).study  # noqa: B018


def test_worker_trial_is_an_optuna_trial():
    assert isinstance(WorkerTrial(ticket(), RecordingChannel()), optuna.trial.BaseTrial)


@pytest.mark.parametrize(
    ("value", "n", "expected"),
    [
        (1.5, 1, [1.5]),
        (np.float64(2.0), 1, [2.0]),
        (np.array(3.0), 1, [3.0]),
        ([1, 2], 2, [1.0, 2.0]),
        ((0.5,), 1, [0.5]),
        (math.inf, 1, [math.inf]),
    ],
)
def test_numbers_complete(value, n, expected):
    assert outcome_of(value, n) == {"state": "complete", "values": tuple(expected)}


@pytest.mark.parametrize(
    ("value", "n", "reason"),
    [
        (None, 1, "returned None"),
        ("0.9", 1, "returned a str"),
        (float("nan"), 1, "returned NaN"),
        ([1.0], 2, "returned 1 value"),
        ({"a": 1}, 1, "not a number"),
        (object(), 1, "not a number"),
    ],
)
def test_bad_values_fail_with_a_reason(value, n, reason):
    outcome = outcome_of(value, n)
    assert outcome["state"] == "fail" and reason in outcome["reason"]


def test_values_reported_in_a_burst_travel_together_with_the_next_message(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("hpo_nb.execution.worker.time.monotonic", lambda: clock[0])
    channel = RecordingChannel({"should_prune": protocol.PruneAnswer(False)})
    trial = WorkerTrial(ticket(), channel)
    trial.report(1.0, 0)  # the first goes at once
    trial.report(2.0, 1)
    trial.report(3.0, 2)
    assert [(op, p["reports"]) for op, p in channel.sent] == [("report", [[0, 1.0]])]
    trial.should_prune()  # a request carries what waits
    assert channel.sent[-1][0] == "should_prune"
    assert channel.sent[-1][1]["reports"] == [[1, 2.0], [2, 3.0]]
    clock[0] += _HOLD + 0.1
    trial.report(4.0, 3)  # a while later: at once again
    assert channel.sent[-1][1]["reports"] == [[3, 4.0]]


def test_attributes_are_held_back_like_reports_and_the_last_message_takes_all(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("hpo_nb.execution.worker.time.monotonic", lambda: clock[0])
    channel = RecordingChannel()
    trial = WorkerTrial(ticket(), channel)
    trial.set_user_attr("first", 1)  # at once
    trial.set_user_attr("span", [0, 1])
    trial.set_constraint("c0", 0.5)
    trial.report(1.0, 0)
    assert [p["attrs"] for _, p in channel.sent] == [[["user", "first", 1]]]
    last = trial.close()  # what the finish message carries
    assert last["attrs"] == (("user", "span", [0, 1]), ("constraint", "c0", 0.5))
    assert last["reports"] == ((0, 1.0),)
    trial.flush()  # nothing goes after the end
    assert len(channel.sent) == 1


def test_the_flush_thread_sends_what_waits_once_it_is_due(monkeypatch):
    monkeypatch.setattr("hpo_nb.execution.worker._HOLD", 0.05)
    channel = RecordingChannel()
    trial = WorkerTrial(ticket(), channel)
    trial.report(1.0, 0)
    trial.report(2.0, 1)  # held back: nothing else will be sent for a while
    assert [p["reports"] for _, p in channel.sent] == [[[0, 1.0]]]
    deadline = time.monotonic() + 5
    while len(channel.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert channel.sent[1] == ("report", {"params": [], "reports": [[1, 2.0]], "attrs": []})


def test_a_value_sampled_ahead_is_used_only_for_the_same_distribution():
    proposed = {
        "lr": (FloatDistribution(1e-4, 1.0, log=True), 0.01),
        "n": (IntDistribution(1, 8), 3),
    }
    channel = RecordingChannel({"suggest": protocol.ValueAnswer(5.0)})
    trial = WorkerTrial(ticket(proposed=proposed), channel)
    assert trial.suggest_float("lr", 1e-4, 1.0, log=True) == 0.01  # no round trip
    assert [(op, [p[0] for p in m["params"]]) for op, m in channel.sent] == [("report", ["lr"])]
    assert trial.suggest_int("n", 1, 10) == 5  # another range: the controller samples it
    assert channel.sent[-1][0] == "suggest" and channel.sent[-1][1]["name"] == "n"


def test_a_trial_sent_ahead_then_given_on_request_runs_once():
    """The controller sent a trial ahead, but the task ended its own first and asked: the
    answer is the same trial, which may arrive after the copy sent ahead."""
    import collections
    import queue

    from hpo_nb.execution.channel import WorkerChannel

    channel = WorkerChannel.__new__(WorkerChannel)
    channel.attempt, channel._reply_timeout = "a1", 5.0
    channel._inbox, channel._unread = queue.SimpleQueue(), collections.deque()
    channel._ahead, channel._taken = None, set()
    channel.cancelled = lambda: False  # type: ignore[method-assign]
    channel._inbox.put(protocol.encode(protocol.TrialAhead(b"t7", 7)))
    channel._inbox.put(protocol.encode(protocol.GiveTrial(b"t7", 7)))
    request = protocol.Envelope("key", "a1", 1, True, protocol.Finish(state="complete"))
    assert channel.wait(request).id == 7
    assert channel.take_ahead() is None  # not run a second time
    channel._inbox.put(protocol.encode(protocol.TrialAhead(b"t8", 8)))  # the next one is taken
    assert channel.take_ahead().id == 8
