"""``agentrm`` reports a user error as one ``error: ...`` line (what was wrong, what to do) and exits with 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from agentrm_gym.cli import app
from agentrm_gym.core import UnknownTask
from agentrm_gym.extras import is_available


def one_error_line(args: list[str], **kwargs) -> str:
    r = CliRunner().invoke(app, args, **kwargs)
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    return lines[0]


def test_unknown_task_lists_the_known_ones():
    line = one_error_line(["play", "mazee"])
    assert "unknown task 'mazee'" in line and "agentrm/Maze-v0" in line and "agentrm/PDDL-v0" in line
    line = one_error_line(["eval", "--env", "mazee", "--episodes", "1"])
    assert "unknown task 'mazee'" in line


def test_missing_policy_directory_is_named(tmp_path):
    line = one_error_line(["eval", "--env", "Maze", "--policy", str(tmp_path / "missing"), "--episodes", "1",
                           "--out", str(tmp_path / "run")])
    assert f"policy '{tmp_path / 'missing'}': no such directory" in line and "Repo id" not in line
    assert "RUN/sft/policy" in line  # what to pass instead
    (tmp_path / "empty").mkdir()
    line = one_error_line(["eval", "--env", "Maze", "--policy", str(tmp_path / "empty"), "--episodes", "1",
                           "--out", str(tmp_path / "run2")])
    assert "config.json is missing" in line
    line = one_error_line(["eval", "--env", "Maze", "--policy", "noisy:lots", "--episodes", "1",
                           "--out", str(tmp_path / "run3")])
    assert "noisy:P needs a probability P in [0, 1], got 'lots'" in line


def test_bad_config_override_names_the_field_and_type(tmp_path):
    line = one_error_line(["pipeline", "all", "--preset", "smoke", "--out", str(tmp_path / "run"),
                           "--set", "eval_episodes=abc"])
    assert "eval_episodes=abc" in line and "eval_episodes takes int" in line
    line = one_error_line(["pipeline", "expert", "--preset", "smoke", "--out", str(tmp_path / "run"),
                           "--set", "no_such_field=1"])
    assert "bad override 'no_such_field=1'" in line and "eval_episodes" in line  # the known fields
    assert not (tmp_path / "run").exists()  # nothing started


def test_bad_arguments_are_one_line_with_the_help_command():
    line = one_error_line(["eval"])
    assert "agentrm eval: Missing option '--env'" in line and "See `agentrm eval --help`" in line
    line = one_error_line(["eval", "--env", "Maze", "--episodes", "many"])
    assert "Invalid value for '--episodes'" in line
    line = one_error_line(["no-such-command"])
    assert "No such command 'no-such-command'" in line and "agentrm --help" in line
    line = one_error_line(["export", "somewhere", "--format", "messages"])
    assert "Missing option '--out'" in line


def test_reward_model_and_missing_extra_errors(tmp_path):
    line = one_error_line(["rm", "eval", "--rm", str(tmp_path / "nope"), "--env", "Maze"])
    assert "no such reward-model directory" in line
    if is_available("vllm"):
        pytest.skip("vllm is installed here: no MissingExtra to show")
    line = one_error_line(["eval", "--env", "Maze", "--policy", "vllm:some/model", "--episodes", "1",
                           "--out", str(tmp_path / "run")])
    assert "pip install 'agentrm-gym[vllm]'" in line


def test_help_is_untouched_and_debug_keeps_the_traceback():
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0 and "pipeline" in r.output
    r = CliRunner().invoke(app, ["pipeline"])  # a group without a command shows its help
    assert "Usage" in r.output and "error:" not in r.output
    r = CliRunner().invoke(app, ["play", "mazee"], env={"AGENTRM_DEBUG": "1"})
    assert isinstance(r.exception, UnknownTask)


def test_console_entry_point_in_a_subprocess():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("AGENTRM_DEBUG", None)
    p = subprocess.run([sys.executable, "-m", "agentrm_gym", "play", "mazee"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: unknown task 'mazee'"), p.stderr
