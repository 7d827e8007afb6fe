"""What a sampler may be chosen or configured from (the study's shape, before any trial)."""

from __future__ import annotations

import dataclasses

from hpo_nb.search.space import SearchSpace

__all__ = ["Context"]


@dataclasses.dataclass(frozen=True)
class Context:
    """What a sampler may be chosen or configured from."""

    directions: tuple[str, ...] = ("minimize",)
    space: SearchSpace | None = None
    n_trials: int | None = None
    concurrency: int = 1
