"""samconfig.toml is safe as shipped: every environment states its region and none enforces; `make deploy` is
guided for an environment that has no parameters yet."""

from __future__ import annotations

import runpy
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
ENVIRONMENTS = [name for name in CONFIG if name != "version"]
has_parameters = runpy.run_path(str(ROOT / "scripts" / "samconfig_env.py"))["has_parameters"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_states_its_region_and_never_enforces_as_shipped(env):
    assert CONFIG[env]["global"]["parameters"]["region"]
    deploy = CONFIG[env]["deploy"]["parameters"]
    assert deploy["region"] == CONFIG[env]["global"]["parameters"]["region"]
    assert "Mode=enforce" not in deploy.get("parameter_overrides", "")


def test_the_first_deploy_of_an_environment_is_guided_and_later_ones_use_the_saved_parameters():
    assert ENVIRONMENTS
    assert all(has_parameters(CONFIG, env) is False for env in ENVIRONMENTS)
    saved = {"prod": {"deploy": {"parameters": {"parameter_overrides": "LockTableNames=t Mode=dry-run"}}}}
    assert has_parameters(saved, "prod") is True
    assert has_parameters(saved, "staging") is None
