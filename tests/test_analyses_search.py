"""``agentrm analyze bon-scaling | heatmap | weak-to-strong``: the Best-of-N estimator on hand-made
candidates, the CLI's errors, and each analysis at ``--size smoke`` on a smoke-preset run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from agentrm_gym.train.analyses_search import best_of_n, scaling_rows
from agentrm_gym.trajectory import Step, Trajectory


def _brute_force(keys: list[float], values: list[float], n: int) -> float:
    """The pick's value averaged over every n-subset, tied keys sharing the pick."""
    total = []
    for subset in itertools.combinations(range(len(keys)), n):
        top = max(keys[i] for i in subset)
        total.append(np.mean([values[i] for i in subset if keys[i] == top]))
    return float(np.mean(total))


def test_best_of_n_is_exact_over_subsets() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(16).round(2).tolist()
    assert best_of_n(values, values, 1) == pytest.approx(np.mean(values))  # one sample: the mean
    assert best_of_n(values, values, 16) == pytest.approx(max(values))  # the oracle with all 16: the max
    keys = rng.integers(0, 3, size=7).astype(float).tolist()  # a heuristic's many ties
    vals = rng.random(7).tolist()
    for n in range(1, 8):
        assert best_of_n(keys, vals, n) == pytest.approx(_brute_force(keys, vals, n))
    assert best_of_n([1.0, 1.0, 0.0], [1.0, 0.0, 0.0], 3) == pytest.approx(0.5)  # ties share the pick
    assert best_of_n([None, 0.0], [1.0, 0.0], 2) == pytest.approx(0.0)  # a missing score ranks lowest
    # the oracle's expected best never falls as N grows
    curve = [best_of_n(values, values, n) for n in (1, 2, 4, 8, 16)]
    assert curve == sorted(curve)


def _candidate(actions: list[str], progress: float, score: float) -> dict:
    traj = Trajectory("Maze", "m-1", "reach the goal", "start",
                      [Step(a, "obs") for a in actions], progress=progress, success=progress == 1.0)
    return {"success": progress == 1.0, "progress": progress, "score": score, "trajectory": traj.to_dict()}


def test_scaling_rows_of_hand_made_candidates() -> None:
    record = {"task": "Maze", "task_id": "m-1", "candidates": [
        _candidate(["up", "up", "up"], 0.2, 0.9),        # 2 repeats, the RM's favourite
        _candidate(["up", "left", "down"], 1.0, 0.1),    # no repeat, solved
        _candidate(["left", "left", "down"], 0.4, 0.5),  # 1 repeat
        _candidate(["down", "right", "up"], 0.6, 0.3)]}  # no repeat
    rows = scaling_rows([record], [1, 2, 4])
    key = ("Maze", "m-1")
    assert rows["sample"][key][1] == pytest.approx(0.55)
    for name in ("bon:1 (explicit)", "bon:1 (heuristic)", "pass@1 (oracle)"):
        assert rows[name][key][1] == pytest.approx(0.55)
    assert rows["bon:4 (explicit)"][key][1] == pytest.approx(0.2)
    assert rows["bon:4 (heuristic)"][key] == pytest.approx((0.5, 0.8))  # two tied without a repeat: their mean
    assert rows["pass@4 (oracle)"][key] == pytest.approx((1.0, 1.0))


def test_cli_rejects_unknown_names_and_sizes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app
    from agentrm_gym.cli.analyze import takes_size
    from agentrm_gym.train.analyses import RUNNERS

    runner = CliRunner()
    res = runner.invoke(app, ["analyze", "bon-scalin", str(tmp_path)])
    assert res.exit_code == 2 and "unknown analysis 'bon-scalin'" in res.output and "weak-to-strong" in res.output
    res = runner.invoke(app, ["analyze", "bon-scaling", str(tmp_path), "--size", "huge"])
    assert res.exit_code == 2 and "unknown size 'huge'" in res.output and "smoke or full" in res.output
    res = runner.invoke(app, ["analyze", "heatmap", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such run directory" in res.output
    assert {"bon-scaling", "heatmap", "perturbation", "weak-to-strong", "state-ablation", "data-scaling"} <= set(RUNNERS)
    assert not takes_size(RUNNERS["state-ablation"]) and takes_size(RUNNERS["bon-scaling"])
    from agentrm_gym.train.analyses_search import size_spec

    with pytest.raises(ValueError, match="unknown size 'tiny'"):
        size_spec({"smoke": {}, "full": {}}, "tiny", "bon-scaling")


def test_perturbation_is_registered_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    # the module missing from the install (None in sys.modules: its import fails as if it were not there)
    monkeypatch.setitem(sys.modules, "agentrm_gym.train.analyses_perturb", None)
    res = CliRunner().invoke(app, ["analyze", "perturbation", str(tmp_path), "--size", "smoke"])
    assert res.exit_code == 2 and "analyses_perturb" in res.output and "bon-scaling" in res.output


# ------------------------------------------------------------------------------- on a smoke run
def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    res = CliRunner().invoke(app, ["analyze", *args])
    assert res.exit_code == 0, res.output
    return res.output


def _outputs(run: Path, name: str) -> dict:
    from agentrm_gym.extras import is_available

    out = run / "analysis"
    assert (out / f"{name}.md").read_text().startswith("# ")
    assert "**Cost**" in (out / f"{name}.md").read_text()
    if is_available("matplotlib"):
        assert (out / f"{name}.png").stat().st_size > 0
    return json.loads((out / f"{name}.json").read_text())


@pytest.mark.slow
def test_bon_scaling_smoke(analysis_run: Path) -> None:
    text = _cli("bon-scaling", str(analysis_run), "--size", "smoke")
    assert "Best-of-N scaling" in text
    result = _outputs(analysis_run, "bon_scaling")
    assert result["n"] == [1, 2, 4] and result["candidates"] == 4
    cands = [json.loads(line) for line in (analysis_run / "analysis" / "bon_scaling" / "candidates.jsonl").open()]
    assert len(cands) == sum(result["episodes"].values()) and all(len(c["candidates"]) == 4 for c in cands)
    assert all(c["candidates"][0]["trajectory"]["steps"] for c in cands)
    lv = result["levels"]
    for g in ("held_in", "held_out", "all"):
        one = lv["sample"][f"{g}_progress_rate"]["mean"]
        assert lv["bon:1 (explicit)"][f"{g}_progress_rate"]["mean"] == pytest.approx(one)
        assert lv["pass@4 (oracle)"][f"{g}_progress_rate"]["mean"] >= lv["bon:4 (explicit)"][f"{g}_progress_rate"]["mean"]
    assert {b["method"] for b in result["beam"]} == {"beam:1x2", "beam:2x2", "bon:1 (explicit)", "bon:2 (explicit)",
                                                     "bon:4 (explicit)"}
    # a rerun plays nothing new: the saved candidates are reused as they are
    before = (analysis_run / "analysis" / "bon_scaling" / "candidates.jsonl").read_bytes()
    _cli("bon-scaling", str(analysis_run), "--size", "smoke")
    assert (analysis_run / "analysis" / "bon_scaling" / "candidates.jsonl").read_bytes() == before


@pytest.mark.slow
def test_heatmap_smoke(analysis_run: Path) -> None:
    _cli("heatmap", str(analysis_run), "--size", "smoke")
    result = _outputs(analysis_run, "heatmap")
    held_in, tasks = result["held_in"], result["tasks"]
    rm_rows = result["rm"]["rows"]
    assert list(rm_rows) == [*held_in, "all held-in (the run's RM)"]
    for row in rm_rows.values():
        assert set(row["gain"]) == {*tasks, "held_in", "held_out", "all"}
        assert set(row["pairwise_accuracy"]) == set(held_in)
    assert result["rm"]["rescore_max_abs_diff"] < 1e-6  # the refitted features reproduce the run's RM
    pol_rows = result["policy"]["rows"]
    assert list(pol_rows) == [*held_in, "all tasks (the run's policy)"]
    assert all(set(r["progress"]) == {*tasks, "held_in", "held_out", "all"} for r in pol_rows.values())
    for t in held_in:
        variant = json.loads((analysis_run / "analysis" / "heatmap" / f"policy_{t}" / "variant.json").read_text())
        assert variant["tasks"] == [t] and variant["episodes"] > 0


@pytest.mark.slow
def test_weak_to_strong_smoke(analysis_run: Path) -> None:
    from agentrm_gym.train.analyses_search import W2S_SIZES
    from agentrm_gym.train.config import load_config

    _cli("weak-to-strong", str(analysis_run), "--size", "smoke")
    result = _outputs(analysis_run, "weak_to_strong")
    kinds = [p["kind"] for p in result["policies"]]
    assert kinds == ["sft", "sft-large"] + ["noisy"] * len(W2S_SIZES["smoke"]["noise"])
    n = result["n"]
    for p in result["policies"]:
        for key in ("sample", f"bon:{n} (explicit)", f"bon:{n} (heuristic)", f"pass@{n} (oracle)"):
            assert p["levels"][key]["all_progress_rate"]["episodes"] == sum(result["episodes"].values())
        assert f"bon:{n} (explicit) - sample" in p["gains"]
    cfg = load_config(analysis_run / "config.json")
    variant = json.loads((analysis_run / "analysis" / "weak_to_strong" / "policy" / "variant.json").read_text())
    assert (variant["n_layer"], variant["n_embd"]) == (2 * cfg.n_layer, 2 * cfg.n_embd)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["labels", "rm-candidates"])
def test_issue21_analyses_need_two_held_in_tasks(analysis_run: Path, name: str) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    res = CliRunner().invoke(app, ["analyze", name, str(analysis_run)])  # the smoke preset holds out all but Maze
    assert res.exit_code != 0
    assert "at least two held-in tasks" in res.output
