"""The race test, long (``make soak``; not part of ``make test``): Terraform-like workers lock, write digests,
release and abandon locks while overlapping enforce sweeps ask the workers' registry over loopback HTTP who is
alive. The same lab as ``tests/integration/test_race_soak.py`` (``tests/racelab.py``), with more lifetimes.

Bounded in time: the workers stop after ``--lifetimes`` lock lifetimes or ``--seconds``, whichever comes first
(then the sweepers stop and one final sweep runs). Prints the figures; exits 1 on any violation or error.

With ``--incremental`` (``SOAK_INCREMENTAL=1``) the state-table sweeper sweeps incrementally, from the open set a
lossy stream (5% of its records lost) fills, reconciling every 8 s; holders' clocks are then right or fast (a 3 h
slow holder whose acquisition the stream recorded is flagged skewed and never reaped).

Run as `PYTHONPATH=tests .venv/bin/python scripts/soak.py [--lifetimes N] [--seconds S] [--incremental]`; the
defaults come from ``SOAK_LIFETIMES`` (10000) and ``SOAK_SECONDS`` (240), e.g. ``make soak SOAK_SECONDS=60``.
"""

from __future__ import annotations

import argparse
import os
import sys

from offline_env import use_offline_aws

REGION = "us-east-1"
MAX_SHOWN = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lifetimes", type=int, default=int(os.environ.get("SOAK_LIFETIMES") or 10000))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 240))
    parser.add_argument("--incremental", action="store_true", default=os.environ.get("SOAK_INCREMENTAL") == "1")
    args = parser.parse_args()
    use_offline_aws(REGION, ("layers/reaper", "tests"))
    from racelab import Figures, RaceConfig, run_race  # noqa: PLC0415 - after the environment is set

    def progress(figures: Figures, elapsed: float) -> None:
        print(
            f"[soak] {elapsed:.0f} s: {figures.lifetimes} lifetimes, {figures.abandoned} abandoned, "
            f"{figures.reaped} reaped, {sum(figures.sweeps.values())} sweeps, {len(figures.violations)} violations",
            flush=True,
        )

    print(f"[soak] up to {args.lifetimes} lock lifetimes or {args.seconds:g} s of workers", flush=True)
    mode = {"incremental": True, "clock_skews": (0.0, 240.0)} if args.incremental else {}
    config = RaceConfig(lifetimes=args.lifetimes, seconds=args.seconds, **mode)  # type: ignore[arg-type]
    print(f"[soak] {'incremental' if args.incremental else 'full'} sweeps with the state table", flush=True)
    figures = run_race(config, progress)
    print(figures.text())
    for problem in [*figures.errors, *figures.violations][:MAX_SHOWN]:
        print(f"  {problem}")
    failed = figures.errors or figures.violations or figures.lifetimes == 0 or figures.reaped != figures.abandoned
    print(
        "[soak] FAILED" if failed else "[soak] OK: no live lock deleted, no digest touched, every abandoned lock reaped"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
