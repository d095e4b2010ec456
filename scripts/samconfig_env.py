"""Whether an environment of samconfig.toml already has its deploy parameters (``make deploy`` is guided otherwise).

Run as `.venv/bin/python scripts/samconfig_env.py --has-parameters ENV`: exit 0 when ``[ENV.deploy.parameters]`` has
``parameter_overrides``, 1 when it has none yet (a first deploy), 2 when samconfig.toml has no such environment.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

SAMCONFIG = Path(__file__).resolve().parents[1] / "samconfig.toml"


def has_parameters(config: dict[str, object], env: str) -> bool | None:
    """True/False as above; None when the environment is not in the file."""
    section = config.get(env)
    if not isinstance(section, dict):
        return None
    deploy = section.get("deploy", {})
    parameters = deploy.get("parameters", {}) if isinstance(deploy, dict) else {}
    return bool(isinstance(parameters, dict) and parameters.get("parameter_overrides"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--has-parameters", metavar="ENV", required=True)
    args = parser.parse_args()
    answer = has_parameters(tomllib.loads(SAMCONFIG.read_text()), args.has_parameters)
    if answer is None:
        print(f"samconfig.toml has no [{args.has_parameters}] environment", file=sys.stderr)
        return 2
    return 0 if answer else 1


if __name__ == "__main__":
    sys.exit(main())
