"""docs/sample-alert.md is what the real renderers produce today (``scripts/render_sample_alert.py``)."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_sample_alert_document_is_up_to_date():
    render = runpy.run_path(str(ROOT / "scripts" / "render_sample_alert.py"))["render"]
    expected = (ROOT / "docs" / "sample-alert.md").read_text(encoding="utf-8")
    assert render() == expected, "regenerate: .venv/bin/python scripts/render_sample_alert.py > docs/sample-alert.md"


def test_the_sample_is_a_blocked_reap_of_a_prod_apply_with_the_command():
    sample = runpy.run_path(str(ROOT / "scripts" / "render_sample_alert.py"))["sample_notification"]()
    assert (sample.kind, sample.severity, sample.age, sample.who) == (
        "reap_blocked",
        "error",
        "3h12m",
        "runner@ci-runner-7",
    )
    assert any(r.startswith("holder liveness unknown") for r in sample.reasons)
    assert sample.force_unlock_command == f"terraform force-unlock -force {sample.lock_id}"


def test_the_readme_shows_the_rendered_sample_alert():
    root = Path(__file__).parents[2]
    doc = (root / "docs" / "sample-alert.md").read_text()
    readme = (root / "docs" / "alerts.md").read_text()  # the alerts reference shows it; the README links there
    slack_text = doc.split("```text\n", 1)[1].split("```", 1)[0]
    assert slack_text in readme
