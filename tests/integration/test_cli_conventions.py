"""The CLI's conventions (issue 15.8): colour only on a terminal and never with NO_COLOR (the Makefile's help too),
``--output table|json``, shell completion, ``--help`` with examples, exit codes and required options, and the CLI's
own libraries (rich, shtab) kept out of the Lambda functions."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import lock_item
from tables import LOCK_TABLE, put
from tflock_reaper.entrypoints import cli
from tflock_reaper.entrypoints.cli import EXIT_OK, main
from tflock_reaper.entrypoints.cli.codes import EXIT_CODES, exit_codes_help

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
COMMANDS = ("locks", "sweep", "explain", "unlock", "enable-stream", "completion")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def stale(dynamodb):
    put(dynamodb, lock_item("tf-state/dev/app.tfstate", created=datetime.now(UTC) - timedelta(hours=1)))


def test_colour_only_on_a_terminal_and_never_with_no_color(stale, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal()
    assert main(["locks", "--table", LOCK_TABLE], out=terminal) == EXIT_OK
    assert ANSI.search(terminal.getvalue()), terminal.getvalue()
    assert "\x1b[33mstale" in terminal.getvalue()  # the status, in yellow

    piped = io.StringIO()
    assert main(["locks", "--table", LOCK_TABLE], out=piped) == EXIT_OK
    assert not ANSI.search(piped.getvalue())

    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    assert main(["locks", "--table", LOCK_TABLE], out=terminal) == EXIT_OK
    assert not ANSI.search(terminal.getvalue())
    assert "stale" in terminal.getvalue()


def test_a_hostile_who_cannot_write_to_the_terminal(dynamodb, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    put(dynamodb, lock_item("tf-state/x.tfstate", who="evil\x1b]0;pwned\x07\nforged row"))
    terminal = Terminal()
    main(["locks", "--table", LOCK_TABLE], out=terminal)
    assert "\x1b]" not in terminal.getvalue()
    assert "\nforged row" not in terminal.getvalue()


def test_the_makefile_help_is_coloured_only_on_a_terminal(monkeypatch):
    if shutil.which("make") is None:
        pytest.skip("no make")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "MAKEFLAGS", "MAKELEVEL")}

    def make_help(*, tty: bool, **extra: str) -> str:
        if not tty:
            return subprocess.run(
                ["make", "--no-print-directory", "help"], cwd=REPO, env={**env, **extra}, capture_output=True,
                text=True, check=True, timeout=60,
            ).stdout  # fmt: skip
        primary, secondary = os.openpty()
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "help"], cwd=REPO, env={**env, **extra}, stdout=secondary
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=60)
        os.close(primary)
        return b"".join(chunks).decode()

    assert "\x1b[36mhelp" in make_help(tty=True)
    assert not ANSI.search(make_help(tty=True, NO_COLOR="1"))
    piped = make_help(tty=False)
    assert not ANSI.search(piped)
    assert "  help           List the targets\n" in piped


def test_completion_scripts_for_bash_and_zsh():
    out = io.StringIO()
    assert main(["completion", "bash"], out=out) == EXIT_OK
    script = out.getvalue()
    assert "complete -o bashdefault -F _shtab_tflock_reaper tflock-reaper" in script

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (
            f"source /dev/stdin <<'EOF'\n{script}\nEOF\n"
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; _shtab_tflock_reaper; printf "%s\\n" "${{COMPREPLY[@]}}"'
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True, timeout=30)
        return done.stdout.split()

    assert complete("tflock-reaper", "un") == ["unlock"]
    assert complete("tflock-reaper", "sweep", "--fai") == ["--fail-on"]
    assert complete("tflock-reaper", "locks", "--sort", "") == ["age", "path"]

    out = io.StringIO()
    assert main(["completion", "zsh"], out=out) == EXIT_OK
    assert out.getvalue().startswith("#compdef tflock-reaper\n")
    if shutil.which("zsh"):
        subprocess.run(["zsh", "-n"], input=out.getvalue(), text=True, check=True, timeout=30)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_examples_and_exit_codes_in_its_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "\nexamples:\n  " in text
    assert exit_codes_help() in text


@pytest.mark.parametrize(
    ("command", "required"),
    [
        ("sweep", "--policy FILE"),
        ("explain", "--policy FILE"),
        ("unlock", "--id LOCK_ID"),
        ("enable-stream", "--table"),
    ],
)
def test_required_options_show_as_required(command, required, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    usage = text.split("\n\n", 1)[0]
    assert f" {required}" in usage
    assert f"[{required}" not in usage
    assert "\nrequired:\n" in text


def test_the_module_docstring_lists_the_exit_codes_help_shows():
    assert cli.__doc__ is not None
    section = cli.__doc__.split("Exit codes:\n", 1)[1].split("\n\n", 1)[0]
    assert section.split() == exit_codes_help().split()[2:]
    assert [code for code, _ in EXIT_CODES] == [0, 1, 2, 3, 4, 5, 130, 141]


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "tflock_reaper", "--version"], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.startswith("tflock-reaper ")


def test_the_lambda_functions_never_import_the_cli_libraries():
    """rich and shtab are CLI-only: not in the layer's requirements, and not imported by the handlers (nor by the
    CLI itself until it prints a table or a completion script)."""
    layer = (REPO / "layers" / "reaper" / "requirements.txt").read_text().lower()
    assert "rich" not in layer
    assert "shtab" not in layer
    probe = (
        "import sys\n"
        "import sweeper_handler, stream_handler\n"
        "import tflock_reaper.entrypoints.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'shtab')))\n"
    )
    paths = [REPO / "layers" / "reaper", REPO / "functions" / "sweeper", REPO / "functions" / "stream"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths), "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
