"""The environment the benchmark and soak scripts run in: dummy credentials, nothing that could reach real AWS
or go through a proxy, and the repository's packages on the import path. Imported by the scripts beside it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def use_offline_aws(region: str, paths: tuple[str, ...] = ("layers/reaper",), **extra: str) -> None:
    """Replace every ``AWS_*``/``POWERTOOLS_*``/proxy variable with moto-friendly dummies (plus ``extra``), and put
    ``paths`` (relative to the repository) first on ``sys.path``."""
    for name in [n for n in os.environ if n.startswith(("AWS_", "POWERTOOLS_")) or n.lower().endswith("_proxy")]:
        del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # a dummy value for moto  # noqa: S106
        AWS_DEFAULT_REGION=region,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        **extra,
    )
    for path in paths:
        if str(REPO_ROOT / path) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT / path))
