"""Holder checks that ask something outside the lock table (adapters): CI systems over HTTP or AWS APIs, and
the state table for signs of progress. :func:`make_providers` wires them for one sweep."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tflock_reaper.adapters.holders.progress import StateProgress
from tflock_reaper.domain.deadline import UNBOUNDED, Budget
from tflock_reaper.domain.liveness import HolderCheck, ProviderBuilder
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.policy import SecretRef


def _no_options() -> dict[str, Any]:
    return {}


def _lazy(
    module: str, name: str, argument: Any, options: Callable[[], dict[str, Any]] = _no_options
) -> ProviderBuilder:
    """The provider ``tflock_reaper.adapters.holders.<module>.<name>(argument, **options())``, imported and made
    when the sweep builds its first check of that kind (not at a cold start, nor in a sweep without one), then
    shared by its other checks of that kind."""
    made: list[ProviderBuilder] = []

    def build(settings: Any) -> HolderCheck:
        if not made:
            provider = getattr(importlib.import_module(f"tflock_reaper.adapters.holders.{module}"), name)
            made.append(provider(argument, **options()))
        return made[0](settings)

    return build


def make_providers(
    *, clients: Any, secrets: Callable[[SecretRef], str], state: StateStore, budget: Budget = UNBOUNDED
) -> dict[str, ProviderBuilder]:
    """One builder per check kind. Each built check caches its queries, and the sweep builds each configured
    check once, so a (provider, target) pair is queried at most once per sweep. The HTTP checks' requests draw on
    ``budget`` (the sweep's time for outbound requests): once it is spent they answer ``unknown`` unasked."""

    def web() -> dict[str, Any]:
        # One session per kind of HTTP check, made with its first check: a sweep without one never imports it.
        from tflock_reaper.adapters.holders.web import Web  # noqa: PLC0415 - cold start

        return {"web": Web(budget=budget)}

    providers: dict[str, ProviderBuilder] = {
        "state_progress": lambda settings: StateProgress(settings, state),
        "codebuild": _lazy("aws_ci", "codebuild_provider", lambda: clients.client("codebuild")),
        "codepipeline": _lazy("aws_ci", "codepipeline_provider", lambda: clients.client("codepipeline")),
        "github": _lazy("github", "github_provider", secrets, web),
        "gitlab": _lazy("gitlab", "gitlab_provider", secrets, web),
        "http": _lazy("http", "http_provider", secrets, web),
    }
    return providers
