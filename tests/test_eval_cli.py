"""``agentrm eval``: outputs, the option checks, and resuming an interrupted run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import agentrm_gym  # noqa: F401
from agentrm_gym.agents.evaluation import EvalConfig, EvalError, run_eval
from agentrm_gym.agents.planners import make_planner
from agentrm_gym.cli import app
from agentrm_gym.trajectory import read_jsonl


def test_cli_writes_episodes_results_and_tensorboard(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["eval", "--env", "Maze", "--policy", "noisy:0.5", "--method", "beam:2x2",
                                 "--scorer", "maze-distance", "--episodes", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "success %" in r.output and "beam:2x2" in r.output
    lines = list(read_jsonl(out / "episodes.jsonl"))
    assert [x["task_id"] for x in lines] == ["double_t-1-1", "double_t-1-2", "double_t-1-3"]
    assert all(x["sampling"]["method"] == "beam:2x2" and x["meta"]["cost"]["env_steps"] > 0 for x in lines)
    res = json.loads((out / "results.json").read_text())
    assert res["episodes"] == 3 and 0 <= res["progress_rate"] <= 100
    assert res["progress_rate"] == pytest.approx(100 * sum(x["progress"] for x in lines) / 3)
    assert list((out / "tb").glob("events.out.tfevents.*"))
    # a second run into the same directory must be explicit
    r = CliRunner().invoke(app, ["eval", "--env", "Maze", "--episodes", "1", "--out", str(out)])
    assert r.exit_code == 2 and "--resume" in r.output


def test_search_needs_a_scorer_and_rm_errors_clearly(tmp_path):
    with pytest.raises(EvalError, match="--scorer progress"):
        run_eval(EvalConfig(method="bon:3", out=str(tmp_path / "a")))
    with pytest.raises(EvalError, match="either --rm or --scorer"):
        run_eval(EvalConfig(method="bon:3", rm="x", scorer="progress", out=str(tmp_path / "b")))
    with pytest.raises(EvalError, match="unknown --scorer"):
        run_eval(EvalConfig(method="bon:3", scorer="nope", out=str(tmp_path / "c")))


def test_interrupted_eval_resumes_without_redoing_episodes(tmp_path):
    out = str(tmp_path / "run")
    ran: list[str] = []

    def factory(stop_after: int | None):
        def make(method, policy, scorer, **kw):
            planner = make_planner(method, policy, scorer, **kw)
            run = planner.run

            def counted(env, task_id, seed=0):
                if stop_after is not None and len(ran) == stop_after:
                    raise KeyboardInterrupt  # the user pressed Ctrl-C during this episode
                ran.append(task_id)
                return run(env, task_id, seed)

            planner.run = counted
            return planner

        return make

    cfg = EvalConfig(env="Maze", policy="noisy:0.5", method="bon:2", scorer="maze-distance", episodes=6, out=out)
    with pytest.raises(KeyboardInterrupt):
        run_eval(cfg, planner_factory=factory(3), progress_bar=False)
    first = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    assert len(first) == 3
    # an interrupted writer may leave half a line: resume drops it and redoes only that episode
    with open(tmp_path / "run" / "episodes.jsonl", "a") as f:
        f.write(first[0][: len(first[0]) // 2].replace("double_t-1-1", "double_t-1-4"))
    ran.clear()
    res = run_eval(EvalConfig(**{**cfg.__dict__, "resume": True}), planner_factory=factory(None), progress_bar=False)
    assert ran == ["double_t-1-4", "double_t-1-5", "double_t-1-7"]
    assert res["skipped"] == 3 and res["episodes"] == 6
    lines = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    assert lines[:3] == first and len(lines) == 6
    assert len({json.loads(x)["task_id"] for x in lines}) == 6
    # resuming a finished run runs nothing
    ran.clear()
    res = run_eval(EvalConfig(**{**cfg.__dict__, "resume": True}), planner_factory=factory(None), progress_bar=False)
    assert ran == [] and res["skipped"] == 6


def test_two_workers_write_the_episodes_one_process_writes(tmp_path):
    """``agentrm eval --workers 2``: each worker plays with its own env and policy; same file as one process."""
    files = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        r = CliRunner().invoke(app, ["eval", "--env", "Maze", "--policy", "noisy:0.5", "--method", "bon:2",
                                     "--scorer", "maze-distance", "--episodes", "4", "--workers", str(workers),
                                     "--out", str(out)])
        assert r.exit_code == 0, r.output
        recs = list(read_jsonl(out / "episodes.jsonl"))
        for rec in recs:
            rec["meta"]["cost"].pop("wall_seconds", None)
        files[workers] = recs
    assert [r["task_id"] for r in files[2]] == ["double_t-1-1", "double_t-1-2", "double_t-1-3", "double_t-1-4"]
    assert files[1] == files[2]
