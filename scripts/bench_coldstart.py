"""Benchmark (not a test): each handler module's import time (a cold start's init), against ``import boto3``.

Every measurement is one import in a FRESH interpreter (a subprocess of this venv's Python), timed with
``time.perf_counter`` around the ``import`` statement; the best of ``--runs`` (default 5) is kept. Each handler is
imported with ``layers/reaper`` and its function directory on ``sys.path`` (``PYTHONPATH``, as Lambda puts the layer's
``python/`` and the package on it) and the deployed function's Powertools settings in the environment. The
baseline, ``import boto3`` alone, is measured the same way in the same run. One unmeasured warm-up import of each
comes first, so that every measured run finds the ``.pyc`` files written (unless ``PYTHONDONTWRITEBYTECODE`` is set
in this environment, which the output then says: the repository's modules are then compiled in every run).

The target (issue 16, "Cold start"): each handler module's import takes at most :data:`TARGET_RATIO` (1.5) times
``import boto3`` measured in the same run. Each handler's line says ``PASS`` or by how much it is ``over``.

With ``-X importtime`` (one more run per handler) the packages that cost the most, by their own import time,
are listed.

Then the sizes of the built layer and of each function package, if ``.aws-sam/build`` exists (``make sam-build``):
the bytes of their files and the size of their deflated zip (what is uploaded).

Run as `.venv/bin/python scripts/bench_coldstart.py [--runs 5] [--top 8]`.
"""

from __future__ import annotations

import argparse
import compileall
import io
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: A handler module's import may take at most this many times ``import boto3`` (issue 16).
TARGET_RATIO = 1.5
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
TIMED_IMPORT = (
    "import time\nstarted = time.perf_counter()\nimport {module}\nprint(repr(time.perf_counter() - started))\n"
)


@dataclass(frozen=True)
class Target:
    label: str
    module: str
    path: tuple[str, ...]


TARGETS = (
    Target("import boto3", "boto3", ()),
    Target("sweeper_handler", "sweeper_handler", ("layers/reaper", "functions/sweeper")),
    Target("stream_handler", "stream_handler", ("layers/reaper", "functions/stream")),
    Target("interactions_handler", "interactions_handler", ("layers/reaper", "functions/interactions")),
    # What the interactions function's first signed press imports on top of its handler (its init): the press's
    # service, the state table, the wiring, Powertools Parameters (the signing secret), the Slack app channel (the
    # message's update) and slack_sdk. Not a handler import: shown for Slack's 3 seconds, without a verdict.
    Target(
        "interactions first press",
        ", ".join(
            (
                "interactions_handler",
                "tflock_reaper.services.interactions",
                "tflock_reaper.entrypoints.wiring",
                "tflock_reaper.adapters.state_table",
                "tflock_reaper.adapters.slack_messages",
                "tflock_reaper.adapters.channels.slack_app",
                "aws_lambda_powertools.utilities.parameters",
            )
        ),
        ("layers/reaper", "functions/interactions"),
    ),
)
#: Targets that are not a handler's import (no verdict against the target).
NO_VERDICT = frozenset({"import boto3", "interactions first press"})


#: Where :func:`stage` puts the package and the handlers as they are deployed (set by ``main``).
STAGE: Path = REPO_ROOT


@contextmanager
def stage() -> Iterator[Path]:
    """The package and the handlers as ``make sam-build`` ships them: copied, then compiled to ``.pyc`` files that
    are never checked against their source (``unchecked-hash``, as the build does: Lambda's ``/opt`` and task root
    are read-only, so a module without a ``.pyc`` there is compiled on every cold start). Installed packages (boto3,
    pydantic, Powertools) come from this venv, with the ``.pyc`` files pip wrote."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        root = Path(tmp)
        for source in ("layers/reaper", "functions/sweeper", "functions/stream", "functions/interactions"):
            shutil.copytree(
                REPO_ROOT / source, root / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        compileall.compile_dir(
            root, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, workers=1
        )
        yield root


def _environment(target: Target) -> dict[str, str]:
    """This environment minus anything AWS/Powertools, plus dummy credentials and the deployed function's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_")) and k != "PYTHONPATH"}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # a dummy value: nothing is called at import  # noqa: S106
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        POWERTOOLS_SERVICE_NAME="tflock-reaper",
        POWERTOOLS_METRICS_NAMESPACE="TflockReaper",
        POWERTOOLS_LOG_LEVEL="INFO",
        LOCK_TABLE_NAME="tf-locks",
        STATE_TABLE_NAME="tflock-reaper-state",
    )
    if target.path:
        env["PYTHONPATH"] = os.pathsep.join(str(STAGE / p) for p in target.path)
    return env


def _run(target: Target, *flags: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *flags, "-c", TIMED_IMPORT.format(module=target.module)],
        cwd=REPO_ROOT,
        env=_environment(target),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{target.label}: import failed:\n{result.stderr}")
    return result


def import_seconds(target: Target, runs: int) -> float:
    _run(target)  # warm-up: writes the .pyc files
    return min(float(_run(target).stdout.strip().splitlines()[-1]) for _ in range(runs))


def heaviest(target: Target, top: int) -> list[tuple[str, int]]:
    """Own (self) import time per top-level package, in microseconds, from one ``-X importtime`` run."""
    per_package: Counter[str] = Counter()
    for line in _run(target, "-X", "importtime").stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        per_package[name.split(".")[0]] += int(self_us)
    return per_package.most_common(top)


def _sizes(directory: Path) -> tuple[int, int, int]:
    """(files, bytes of the files, bytes of their deflated zip)."""
    files = [p for p in sorted(directory.rglob("*")) if p.is_file()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(directory))
    return len(files), sum(p.stat().st_size for p in files), buffer.tell()


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.3f} MB"


def print_sizes() -> None:
    print("\npackage sizes (.aws-sam/build):")
    if not BUILD_DIR.is_dir():
        print("  no .aws-sam/build: run make sam-build first")
        return
    for name in ("ReaperLayer", "SweeperFunction", "StreamFunction", "InteractionsFunction"):
        directory = BUILD_DIR / name
        if not directory.is_dir():
            print(f"  {name:<20} missing: run make sam-build first")
            continue
        files, size, zipped = _sizes(directory)
        print(f"  {name:<20} {files:>5} files  {_mb(size):>11} unzipped  {_mb(zipped):>11} zipped")


def verdict(seconds: float, limit: float) -> str:
    """``PASS`` within the target, else ``over`` and by how much."""
    if seconds <= limit:
        return "PASS"
    return f"over ({(seconds - limit) * 1000:.1f} ms above the target)"


def main() -> int:
    parser = argparse.ArgumentParser(description="Import time of each handler module against import boto3.")
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per module; the best is kept")
    parser.add_argument("--top", type=int, default=8, help="heaviest packages listed per handler (0: none)")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]} ({sys.executable}); best of {args.runs} fresh interpreters each")
    print("  the package and handlers staged as `make sam-build` ships them: precompiled (.pyc, unchecked-hash)")
    global STAGE
    with stage() as STAGE:
        seconds = {target.label: import_seconds(target, args.runs) for target in TARGETS}
        heavy = {t.label: heaviest(t, args.top) for t in TARGETS if t.label != "import boto3"} if args.top else {}
    baseline = seconds["import boto3"]
    limit = baseline * TARGET_RATIO
    print(f"  target: each handler at most {TARGET_RATIO:.2f}x import boto3 ({limit * 1000:.1f} ms in this run)")
    for target in TARGETS:
        ratio = seconds[target.label] / baseline
        line = f"  {target.label:<24} {seconds[target.label] * 1000:8.1f} ms  {ratio:5.2f}x import boto3"
        if target.label not in NO_VERDICT:
            line += "  " + verdict(seconds[target.label], limit)
        print(line)
    for label, packages in heavy.items():
        listed = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in packages)
        print(f"  {label} by package (own import time, one -X importtime run): {listed}")
    print_sizes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
