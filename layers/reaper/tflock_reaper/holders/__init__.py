"""Holder checks that ask something outside the lock table (adapters): CI systems over HTTP or AWS APIs, and
the state table for signs of progress. :func:`make_providers` wires them for one sweep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tflock_reaper.holder import ProviderBuilder
from tflock_reaper.holders.aws_ci import codebuild_provider, codepipeline_provider
from tflock_reaper.holders.github import github_provider
from tflock_reaper.holders.gitlab import gitlab_provider
from tflock_reaper.holders.http import http_provider
from tflock_reaper.holders.progress import StateProgress
from tflock_reaper.policy import SecretRef
from tflock_reaper.state import StateStore


def make_providers(
    *, clients: Any, secrets: Callable[[SecretRef], str], state: StateStore
) -> dict[str, ProviderBuilder]:
    """One builder per check kind. Each built check caches its queries, and the sweep builds each configured
    check once, so a (provider, target) pair is queried at most once per sweep."""
    providers: dict[str, ProviderBuilder] = {
        "state_progress": lambda settings: StateProgress(settings, state),
        "codebuild": codebuild_provider(lambda: clients.client("codebuild")),
        "codepipeline": codepipeline_provider(lambda: clients.client("codepipeline")),
        "github": github_provider(secrets),
        "gitlab": gitlab_provider(secrets),
        "http": http_provider(secrets),
    }
    return providers
