"""The wire protocol between a trial task on a dask worker and the run's controller.

Every message is a frozen dataclass; :func:`encode` turns one into the plain dict dask's
events carry (msgpack), and :func:`decode` turns such a dict back, by its ``op`` (a task's
message) or its ``answer`` (the controller's) tag, through one table per direction.

A task's messages travel in an :class:`Envelope` (its dask key, the attempt, i.e. one
execution of that task, a sequence number within the attempt, and whether it waits for an
answer); the controller restores their order from it. What a trial learnt since its last
message (parameters resolved on the worker, reported values, attributes) rides along in
``params``, ``reports`` and ``attrs`` of every trial message.

>>> decode(encode(Envelope("k", "a", 1, True, Suggest(name="x", dist="{}")))).body
Suggest(params=(), reports=(), attrs=(), name='x', dist='{}')
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

__all__ = [
    "AHEAD",
    "Answer",
    "Cancel",
    "Envelope",
    "Error",
    "Finish",
    "GiveTrial",
    "NoTrial",
    "Number",
    "NumberAnswer",
    "Prune",
    "PruneAnswer",
    "Report",
    "Revoke",
    "Start",
    "Suggest",
    "TaskMessage",
    "TrialAhead",
    "ValueAnswer",
    "decode",
    "decode_answer",
    "encode",
]

FinishState = Literal["complete", "pruned", "fail", "cancelled", "idle"]


# -- a task's messages ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskMessage:
    """Base of a task's messages; ``op`` names each kind on the wire."""

    op: ClassVar[str] = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Start(TaskMessage):
    """A task started on a worker (``worker``, its ``gpu``, ``pid``); with an envelope that
    waits for an answer it asks for its first trial, else its first trial came with it."""

    op: ClassVar[str] = "start"
    worker: str
    gpu: str | None
    pid: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialMessage(TaskMessage):
    """Base of the messages about the running trial: each carries what it learnt since."""

    params: tuple[tuple[str, str], ...] = ()  # (name, distribution as JSON), resolved here
    reports: tuple[tuple[int, float], ...] = ()  # (step, value)
    attrs: tuple[tuple[str, str, Any], ...] = ()  # ("user" | "constraint", key, value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report(TrialMessage):
    """Only what the trial learnt (no answer)."""

    op: ClassVar[str] = "report"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Suggest(TrialMessage):
    """Asks the sampler for parameter ``name`` of distribution ``dist`` (JSON)."""

    op: ClassVar[str] = "suggest"
    name: str
    dist: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Number(TrialMessage):
    """Asks for the trial's number in the storage."""

    op: ClassVar[str] = "number"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Prune(TrialMessage):
    """Asks the pruner whether the trial should stop."""

    op: ClassVar[str] = "should_prune"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finish(TrialMessage):
    """The trial's end, or the task's (``idle``: it ran its last trial; ``cancelled``: the run
    gave it up). ``next``: the id of the trial sent ahead that the task started at once; with
    an envelope that waits for an answer, the task asks for its next trial instead."""

    op: ClassVar[str] = "finish"
    state: FinishState
    values: tuple[float, ...] | None = None
    reason: str = ""
    traceback: str = ""
    next: int | None = None


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One message of one attempt of task ``key``, number ``seq`` (from 1) of the attempt."""

    key: str
    attempt: str
    seq: int
    wants_answer: bool
    body: TaskMessage


# -- the controller's answers -----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Answer:
    """Base of the controller's answers; ``answer`` names each kind on the wire."""

    answer: ClassVar[str] = ""


@dataclasses.dataclass(frozen=True)
class GiveTrial(Answer):
    """The trial a task asked for: its pickled ticket and its id (unique in the run)."""

    answer: ClassVar[str] = "trial"
    ticket: bytes
    id: int


@dataclasses.dataclass(frozen=True)
class TrialAhead(Answer):
    """The task's next trial, sent while its current one runs (no one asked)."""

    answer: ClassVar[str] = "ahead"
    ticket: bytes
    id: int


@dataclasses.dataclass(frozen=True)
class Revoke(Answer):
    """Take back trial ``id`` sent ahead, unless it started already."""

    answer: ClassVar[str] = "revoke"
    id: int


@dataclasses.dataclass(frozen=True)
class NoTrial(Answer):
    """No trial is left for the task: it ends."""

    answer: ClassVar[str] = "none"


@dataclasses.dataclass(frozen=True)
class Cancel(Answer):
    """The run gave the task up."""

    answer: ClassVar[str] = "cancel"
    reason: str


@dataclasses.dataclass(frozen=True)
class Error(Answer):
    """The request failed (its trial fails with ``message``)."""

    answer: ClassVar[str] = "error"
    message: str


@dataclasses.dataclass(frozen=True)
class ValueAnswer(Answer):
    """The suggested value, in the distribution's internal representation."""

    answer: ClassVar[str] = "value"
    value: Any


@dataclasses.dataclass(frozen=True)
class NumberAnswer(Answer):
    answer: ClassVar[str] = "number"
    number: int


@dataclasses.dataclass(frozen=True)
class PruneAnswer(Answer):
    answer: ClassVar[str] = "prune"
    prune: bool


AHEAD = (TrialAhead, Revoke)  # answers no one waits for: a task keeps them aside

_MESSAGES: dict[str, type[TaskMessage]] = {
    cls.op: cls for cls in (Start, Report, Suggest, Number, Prune, Finish)
}
_ANSWERS: dict[str, type[Answer]] = {
    cls.answer: cls
    for cls in (
        GiveTrial,
        TrialAhead,
        Revoke,
        NoTrial,
        Cancel,
        Error,
        ValueAnswer,
        NumberAnswer,
        PruneAnswer,
    )
}
_ENVELOPE = ("key", "attempt", "seq", "wants_answer")
_FIELD_NAMES = {cls: [f.name for f in dataclasses.fields(cls)] for cls in _MESSAGES.values()}


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def encode(item: Envelope | Answer) -> dict[str, Any]:
    """The plain dict that travels (tuples become lists on the way)."""
    if isinstance(item, Envelope):
        head = {k: getattr(item, k) for k in _ENVELOPE}
        return {**head, "op": item.body.op, **_fields(item.body)}
    return {"answer": item.answer, **_fields(item)}


def decode(wire: dict[str, Any]) -> Envelope:
    """A task's message from its wire form (keys dask adds on the way, such as the
    scheduler's ``worker``, are not the message's and are left out)."""
    key, attempt, seq, wants_answer = (wire[k] for k in _ENVELOPE)
    cls = _MESSAGES[wire["op"]]
    fields = {name: wire[name] for name in _FIELD_NAMES[cls] if name in wire}
    for name in ("params", "reports", "attrs"):
        if name in fields:
            fields[name] = tuple(tuple(item) for item in fields[name])
    if fields.get("values") is not None:
        fields["values"] = tuple(fields["values"])
    return Envelope(key, attempt, seq, wants_answer, cls(**fields))


def decode_answer(wire: dict[str, Any]) -> Answer:
    """A controller's answer from its wire form."""
    fields = dict(wire)
    return _ANSWERS[fields.pop("answer")](**fields)
