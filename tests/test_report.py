"""The run report (``agentrm report``): plots and report.md on a smoke pipeline run, the exact Best-of-N
scaling, strict JSON files and the RM trainer's TensorBoard directory (``agentrm ppo``: tests/test_rl.py)."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the report's plots need the [report] extra")

from agentrm_gym.files import strict_json, write_json_atomic  # noqa: E402
from agentrm_gym.train.report import (  # noqa: E402
    PLOTS,
    bon_scaling,
    pick_probabilities,
    plot_gains,
    plot_table1,
    read_scalars,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"


def strict_loads(text: str):
    """``json.loads`` that rejects NaN / Infinity (as JavaScript, jq and Go do)."""
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="the pipeline needs the [llm] extra")
    from agentrm_gym.train.pipeline import preset, run_pipeline

    out = tmp_path_factory.mktemp("smoke") / "run"
    run_pipeline(preset("smoke"), out=out)
    return out


# ------------------------------------------------------------------------------------- strict JSON


def test_write_json_atomic_writes_strict_json(tmp_path) -> None:
    path = write_json_atomic(tmp_path / "x.json", {"a": float("nan")})
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"a": None}
    assert strict_loads(text) == {"a": None}
    data = {"b": [float("inf"), -math.inf, 1.5, np.float32("nan"), np.float64(2.0)], "c": (np.int64(3), "s"),
            "d": {"e": np.array([1.0, np.nan])}, "p": tmp_path}
    back = strict_loads(write_json_atomic(tmp_path / "y.json", data, indent=None).read_text(encoding="utf-8"))
    assert back == {"b": [None, None, 1.5, None, 2.0], "c": [3, "s"], "d": {"e": [1.0, None]}, "p": str(tmp_path)}
    assert strict_json({"k": [float("nan")]}) == {"k": [None]}


def test_every_json_file_of_a_run_is_strict(smoke_run) -> None:
    files = [p for p in smoke_run.rglob("*.json") if "policy" not in p.parts and "encoder" not in p.parts]
    assert smoke_run / "eval" / "results.json" in files and smoke_run / "config.json" in files
    for p in files:
        strict_loads(p.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------- Best-of-N


def brute_force(keys, values, n):
    picks = [max(c, key=lambda i: (keys[i], -i)) for c in itertools.combinations(range(len(keys)), n)]
    return sum(values[i] for i in picks) / len(picks)


def test_pick_probabilities_equal_the_mean_over_all_subsets() -> None:
    rng = random.Random(0)
    for _ in range(40):
        m = rng.randint(1, 7)
        keys = [rng.choice([0.1, 0.2, 0.3, 0.5]) for _ in range(m)]  # many ties: the first of them wins
        values = [rng.random() for _ in range(m)]
        for n in range(1, m + 1):
            p = pick_probabilities(keys, n)
            assert sum(p) == pytest.approx(1.0)
            assert sum(pi * v for pi, v in zip(p, values, strict=True)) == pytest.approx(brute_force(keys, values, n))
    assert pick_probabilities([3.0, 1.0, 2.0], 3) == [1.0, 0.0, 0.0]
    assert pick_probabilities([1.0, 1.0], 2) == [1.0, 0.0]  # np.argmax: the first of ties
    assert pick_probabilities([float("nan"), 0.0], 2) == [0.0, 1.0]  # a NaN score ranks last
    with pytest.raises(ValueError):
        pick_probabilities([1.0], 2)


def test_bon_scaling_agrees_with_table1(smoke_run) -> None:
    results = json.loads((smoke_run / "eval" / "results.json").read_text(encoding="utf-8"))
    s = bon_scaling(smoke_run)
    n = s["n"][-1]
    assert s["n"] == list(range(1, n + 1)) and n == 2  # the smoke run saves 2 candidates per episode
    assert s["held_in"] == ["Maze"] and set(s["tasks"]) == {"Maze", "PDDL"}
    assert {"explicit", "implicit", "judge", "oracle", "random"} <= set(s["curves"])
    table = results["table"]
    for task in s["tasks"]:
        sample = table["sample"]["tasks"][task]["progress_rate"]
        assert s["per_task"]["random"][task] == pytest.approx([sample] * n)
        assert s["per_task"]["oracle"][task][-1] == pytest.approx(table[f"pass@{n} (oracle)"]["tasks"][task]["progress_rate"])
        for rm in ("implicit", "judge"):  # rows derived from the same candidates and scores
            assert s["per_task"][rm][task][0] == pytest.approx(sample)  # N=1: a random candidate
            assert s["per_task"][rm][task][-1] == pytest.approx(table[f"bon:{n} ({rm})"]["tasks"][task]["progress_rate"])
    for group in ("held_in", "held_out", "all"):
        avg = table["sample"]["averages"][f"{group}_progress_rate"]
        assert s["curves"]["random"][group][0] == pytest.approx(avg)
        assert all(o >= r - 1e-9 for o, r in zip(s["curves"]["oracle"][group], s["curves"]["random"][group], strict=True))


def test_bon_scaling_of_five_candidates(tmp_path) -> None:
    write_json_atomic(tmp_path / "config.json", {"rm_tasks": ["A"], "eval_tasks": ["A", "B"]})
    rng = random.Random(1)
    lines, scores = [], []
    for task in ("A", "B"):
        for i in range(3):
            cands = [{"success": False, "progress": rng.random(), "score": rng.random()} for _ in range(5)]
            lines.append({"task": task, "task_id": str(i), "method": "bon:5", "candidates": cands})
            scores.append({"task": task, "task_id": str(i), "scores": [c["progress"] for c in cands]})  # a perfect RM
    (tmp_path / "eval" / "scores").mkdir(parents=True)
    (tmp_path / "eval" / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "eval" / "scores" / "perfect.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scores))
    s = bon_scaling(tmp_path)
    assert s["n"] == [1, 2, 3, 4, 5]
    assert s["curves"]["perfect"]["all"] == pytest.approx(s["curves"]["oracle"]["all"])
    oracle = s["curves"]["oracle"]["all"]
    assert all(b >= a for a, b in zip(oracle, oracle[1:], strict=False))
    a = [r for r in lines if r["task"] == "A"]
    want = np.mean([brute_force([c["score"] for c in r["candidates"]], [100 * c["progress"] for c in r["candidates"]], 4)
                    for r in a])
    assert s["per_task"]["explicit"]["A"][3] == pytest.approx(want)
    assert s["curves"]["explicit"]["held_in"] == pytest.approx(s["per_task"]["explicit"]["A"])
    write_report(tmp_path)  # a run with candidates only: still a report, with the scaling plot
    assert (tmp_path / "report" / PLOTS["bon"]).read_bytes().startswith(PNG)
    assert not (tmp_path / "report" / PLOTS["table1"]).exists()


# ---------------------------------------------------------------------------------------- report


def test_write_report_on_the_smoke_run(smoke_run) -> None:
    path = write_report(smoke_run)
    assert path == smoke_run / "report" / "report.md"
    text = path.read_text(encoding="utf-8")
    for name in PLOTS.values():
        assert (smoke_run / "report" / name).read_bytes().startswith(PNG), name
        assert f"]({name})" in text  # embedded by a relative path
    table_md = (smoke_run / "eval" / "table.md").read_text(encoding="utf-8")
    assert "| method | Maze* | PDDL |" in table_md and "| method | Maze* | PDDL |" in text
    assert "### Progress rate (%)" in text
    walls = {p.parent.name: json.loads(p.read_text())["wall_seconds"] for p in smoke_run.glob("*/done.json")}
    assert set(walls) == {"expert", "sft", "explore", "extract", "rm", "eval"}
    for stage, seconds in walls.items():
        assert f"| {stage} | {seconds:.1f} |" in text
    assert "| rm_tasks | Maze |" in text and "| eval_methods | greedy, bon:2, beam:2x2 |" in text
    assert "losses/sft" in text and "rm/cv_pairwise_accuracy" in text
    scaling = strict_loads((smoke_run / "report" / "bon_scaling.json").read_text(encoding="utf-8"))
    assert scaling["n"] == [1, 2]


def test_read_scalars_finds_the_training_curves(smoke_run) -> None:
    pytest.importorskip("tensorboard")
    scalars = read_scalars(smoke_run)
    assert len(scalars["tb/sft"]["losses/sft"]) == 30
    steps = [s for s, _ in scalars["tb/rm"]["rm/cv_pairwise_accuracy"]]
    assert steps == sorted(steps)
    implicit = {k: v for k, v in scalars.items() if k in ("tb/rm_implicit", "rm_implicit")}
    objective = json.loads((smoke_run / "rm_implicit" / "agentrm_rm.json").read_text(encoding="utf-8"))["objective"]
    assert implicit and any(f"losses/rm_{objective}" in tags for tags in implicit.values())


def test_report_of_a_run_without_evaluation(tmp_path) -> None:
    write_json_atomic(tmp_path / "config.json", {"name": "x", "rm_tasks": ["Maze"]})
    write_json_atomic(tmp_path / "expert" / "done.json", {"episodes": 1, "wall_seconds": 1.25})
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No `eval/results.json`" in text and "No saved Best-of-N candidates" in text
    assert "No RM training curves" in text and "| expert | 1.2 |" in text
    assert not list((tmp_path / "report").glob("*.png"))
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


def test_plots_take_null_values(tmp_path) -> None:
    results = {
        "table": {"greedy": {"tasks": {"A": {"progress_rate": None}, "B": {"progress_rate": 10.0}},
                             "averages": {"held_in_progress_rate": None, "all_progress_rate": 10.0}},
                  "sample": {"tasks": {"A": {"progress_rate": 5.0}}, "averages": {}}},
        "gains": {"bon:5 (explicit)": {"sample": {"held_in_progress_rate": {"mean": None, "lo": None, "hi": None},
                                                  "all_progress_rate": {"mean": 2.0, "lo": -1.0, "hi": 4.0},
                                                  "all_success_rate": {"mean": 1.0, "lo": None, "hi": 3.0}}},
                  "beam:2x2": {"greedy": {}}},
    }
    assert plot_table1(results, ["A", "B"], ["A"], tmp_path / "t.png").read_bytes().startswith(PNG)
    assert plot_gains(results, tmp_path / "g.png").read_bytes().startswith(PNG)
    assert plot_gains({"gains": {}}, tmp_path / "none.png") is None


def test_report_cli(smoke_run, tmp_path) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    result = CliRunner().invoke(app, ["report", str(smoke_run)])
    assert result.exit_code == 0, result.output
    assert str(smoke_run / "report" / "report.md") in result.output
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "error:" in result.output and "no such run directory" in result.output


def test_demo_ends_with_the_report(smoke_run, capsys, monkeypatch) -> None:
    from agentrm_gym.cli import demo

    demo.write_demo_report(str(smoke_run))
    assert f"report: {smoke_run / 'report' / 'report.md'}" in capsys.readouterr().out

    def broken(run_dir):
        raise RuntimeError("no fonts\nat all")

    monkeypatch.setattr("agentrm_gym.train.report.write_report", broken)
    demo.write_demo_report(str(smoke_run))  # a plotting failure is one warning line, not an exception
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: no report (RuntimeError: no fonts at all)" in err


# ------------------------------------------------------------------------------------- TensorBoard


def test_rm_trainer_logs_to_log_dir(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    from agentrm_gym.rm import train_value_rm
    from agentrm_gym.trajectory import AgentState, Step

    samples = []
    for i in range(8):
        s = AgentState("Maze", "Reach the goal.", "You are at 1, 1.")
        for j in range(i % 3 + 1):
            s = s.extend(Step(f"move {['up', 'down', 'left'][j]}", f"You are at {j}, 1."))
        samples.append((s, i / 8))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_value_rm(samples, backbone="tiny", out_dir=tmp_path / "rm", log_dir=tmp_path / "tb" / "rm", epochs=1,
                       batch_size=4, max_length=32, tiny_kwargs={"hidden_size": 16, "num_layers": 1, "num_heads": 2,
                                                                 "vocab_size": 200})
    finally:
        torch.set_num_threads(threads)
    assert list((tmp_path / "tb" / "rm").glob("events.out.tfevents*"))
    assert not list((tmp_path / "rm").glob("events.out.tfevents*"))
    tags = read_scalars(tmp_path)["tb/rm"]
    assert "losses/rm_mse" in tags and "rm/val_loss" in tags

