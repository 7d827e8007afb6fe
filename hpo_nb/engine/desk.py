"""Where a running trial's requests are answered: the sampler suggests, the pruner decides, the
storage gives the trial's number; and what the trial learnt on its worker (parameters it
resolved there, reported values, attributes) is written to the study as it arrives."""

from __future__ import annotations

from collections.abc import Callable

from optuna.distributions import json_to_distribution

from hpo_nb.engine.mirror import Mirror, MirroredTrial
from hpo_nb.execution.protocol import (
    Answer,
    Envelope,
    Number,
    NumberAnswer,
    Prune,
    PruneAnswer,
    Report,
    Suggest,
    TrialMessage,
    ValueAnswer,
)

__all__ = ["Desk"]


class Desk:
    """Answers trial requests through ``reply``, writing through ``mirror``."""

    def __init__(self, mirror: Mirror, reply: Callable[[Envelope, Answer], None]) -> None:
        self._mirror = mirror
        self._reply = reply
        self._answers: dict[type[TrialMessage], Callable[[MirroredTrial, Envelope], None]] = {
            Report: lambda t, envelope: None,  # only what it learnt
            Suggest: self._suggest,
            Number: lambda t, envelope: self._reply(envelope, NumberAnswer(t.number)),
            Prune: self._prune,
        }

    def learn(self, t: MirroredTrial, body: TrialMessage) -> None:
        """What the trial resolved, reported and set since its last message."""
        mirror = self._mirror
        for name, dist_json in body.params:
            mirror.suggest(t, name, json_to_distribution(dist_json))
        for step, value in body.reports:  # the worker dropped repeated steps
            mirror.report(t, value, step)
        for kind, key, value in body.attrs:
            if kind == "user":
                mirror.set_user_attr(t, key, value)
            else:
                mirror.set_constraint(t, key, value)

    def answer(self, t: MirroredTrial, envelope: Envelope) -> None:
        """Answer a request of trial ``t`` (a report needs none)."""
        assert isinstance(envelope.body, TrialMessage)
        self._answers[type(envelope.body)](t, envelope)

    def _suggest(self, t: MirroredTrial, envelope: Envelope) -> None:
        body = envelope.body
        assert isinstance(body, Suggest)
        distribution = json_to_distribution(body.dist)
        value = self._mirror.suggest(t, body.name, distribution)
        self._reply(envelope, ValueAnswer(distribution.to_internal_repr(value)))

    def _prune(self, t: MirroredTrial, envelope: Envelope) -> None:
        self._reply(envelope, PruneAnswer(self._mirror.should_prune(t)))
