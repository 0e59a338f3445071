"""docs/extending.md, run: a task, an RM and a policy from a package outside ``agentrm_gym``.

The page's blocks are the test (see its first paragraph). The task's package is "installed" the way pip
installs one: a ``<name>.dist-info`` directory beside it with the ``entry_points.txt`` that the page's
``pyproject.toml`` declares, on ``PYTHONPATH`` of the subprocesses only, so that the registry finds the
entry point through ``importlib.metadata`` while this test process and the rest of the suite never see it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(DOC.read_text(encoding="utf-8"))]


def install_entry_points(root: Path, pyproject: str) -> None:
    """Write the ``dist-info`` that ``pip install`` writes for ``pyproject``'s name and entry points."""
    project = tomllib.loads(pyproject)["project"]
    name, version = project["name"].replace("-", "_"), project["version"]
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n")
    lines = []
    for group, eps in project.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{shlex.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], list[tuple[str, str]]]:
    root = tmp_path_factory.mktemp("extending")
    parts = blocks()
    for lang, body in parts:
        first, _, rest = body.partition("\n")
        if first.startswith("# file: "):
            path = root / first.removeprefix("# file: ").strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rest if lang == "toml" else body, encoding="utf-8")
            if path.name == "pyproject.toml":
                install_entry_points(root, rest)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
           "TQDM_DISABLE": "1"}
    return root, env, parts


def test_the_page_declares_a_task_an_rm_and_a_policy(page):
    root, _, _ = page
    assert (root / "my_tasks" / "counter.py").exists() and (root / "my_rms.py").exists()
    assert (root / "my_policies.py").exists() and list(root.glob("my_tasks-*.dist-info"))


def test_python_blocks_register_and_check_the_task(page):
    root, env, parts = page
    snippets = [body for lang, body in parts if lang == "python" and not body.startswith("# file: ")]
    assert snippets
    out = "".join(run([sys.executable, "-c", code], root, env) for code in snippets)
    assert "'snapshot-restore'" in out and "'oracle'" in out  # check_task's list of passed checks
    assert "The counter shows 2." in out


def test_the_installed_task_runs_through_the_cli(page):
    """`agentrm envs`, `agentrm eval` (with the task's oracle scorer and with a python: RM), a python:
    policy, and the smoke pipeline on the plug-in task, each as the page writes it."""
    root, env, parts = page
    agentrm = str(Path(sys.executable).with_name("agentrm"))
    lines = [line for lang, body in parts if lang == "bash" for line in body.splitlines()
             if line.startswith("agentrm ")]
    assert len(lines) == 5
    outputs = {}
    for line in lines:
        argv = shlex.split(line)
        outputs[argv[1]] = outputs.get(argv[1], "") + run([agentrm, *argv[1:]], root, env)
    assert "agentrm/Counter-v0" in outputs["envs"]
    counter = [json for json in (root / "counter_eval" / "episodes.jsonl").read_text().splitlines()]
    assert len(counter) == 4 and all('"task": "Counter"' in r for r in counter)
    assert (root / "rm_eval" / "results.json").exists() and (root / "policy_eval" / "results.json").exists()
    table = (root / "counter_run" / "eval" / "table.md").read_text()
    assert "Counter" in table


def test_a_broken_plug_in_warns_and_the_suite_still_imports(tmp_path):
    install_entry_points(tmp_path, '[project]\nname = "broken"\nversion = "1"\n'
                                   '[project.entry-points."agentrm_gym.tasks"]\nbad = "no_such_module:TASK"\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-W", "always", "-c", "import agentrm_gym; print(len(agentrm_gym.ENV_IDS))"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and int(res.stdout.split()[-1]) >= 9
    assert "bad = no_such_module:TASK" in res.stderr and "not loaded" in res.stderr


def test_register_task_refuses_a_clash_and_a_malformed_row():
    from agentrm_gym import TaskSpec, register_task

    with pytest.raises(ValueError, match="registered already"):
        register_task(TaskSpec("maze", "agentrm_gym.envs.maze:MazeEnv", "text game", False, 25, 50))
    with pytest.raises(ValueError, match="module:Class"):
        TaskSpec("Bad", "no colon", "text game", False, 1, 1)
