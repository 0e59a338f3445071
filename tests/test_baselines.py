"""The baselines Table 1 reads the explicit RM against (issue 21): ties shared, the statistics-only and
encoder-only heads fitted on the RM's own pairs, their rows and paired gains, the CV figures in the table."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from agentrm_gym.rm.baselines import BASELINES, StatsRewardModel, fit_baselines, load_baseline
from agentrm_gym.rm.card import RMLoadError
from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel
from agentrm_gym.rm.pooled import STAT_NAMES, PooledConfig, text_stats
from agentrm_gym.train import table as tab
from agentrm_gym.train.config import preset
from agentrm_gym.train.evaluate import build_results
from agentrm_gym.train.report import pick_probabilities
from agentrm_gym.trajectory import AgentState, Step, Trajectory


def _state(task: str, task_id: str, actions: list[str]) -> AgentState:
    return AgentState(task=task, goal=f"reach the goal of {task_id}", observation="You are here.",
                      steps=tuple(Step(action=a, observation=f"after {a}") for a in actions), task_id=task_id)


def _records(seed: int = 0, tasks: tuple[str, ...] = ("A", "B"), groups: int = 12) -> list[dict]:
    """Groups of 3 states whose value falls with the number of repeated actions (what the heuristic sees)."""
    rng = random.Random(seed)
    out = []
    for task in tasks:
        for g in range(groups):
            for _ in range(3):
                repeats = rng.randint(0, 4)
                actions = [f"go {i}" for i in range(rng.randint(2, 6))] + ["look"] * (repeats + 1)
                value = max(0.0, 1.0 - 0.2 * repeats + rng.uniform(-0.05, 0.05))
                out.append({"state": _state(task, str(g), actions), "value": value, "group": f"{task}/{g}",
                            "task_id": str(g), "task": task})
    return out


def test_ties_share_the_pick_in_table_rows() -> None:
    cands = [{"task": "A", "task_id": "1", "candidates": [{"success": True, "progress": 1.0},
                                                          {"success": False, "progress": 0.0},
                                                          {"success": False, "progress": 0.5}]}]
    rows = tab.candidate_rows(cands, {"tied": {("A", "1"): [0.0, 0.0, -1.0]},
                                      "nan": {("A", "1"): [float("nan"), None, 2.0]}}, 3)
    assert rows["bon:3 (tied)"][("A", "1")] == pytest.approx((0.5, 0.5))  # the mean of the two tied picks
    assert rows["bon:3 (nan)"][("A", "1")] == (0.0, 0.5)  # a NaN or missing score ranks last
    assert list(tab.top_candidates([None, float("nan")])) == [0, 1]


def test_shared_pick_probabilities_equal_the_mean_over_all_subsets() -> None:
    rng = random.Random(3)
    for _ in range(60):
        m = rng.randint(1, 6)
        n = rng.randint(1, m)
        keys = [rng.choice([0.0, 1.0, 2.0, float("nan")]) for _ in range(m)]
        subsets = list(itertools.combinations(range(m), n))
        want = [0.0] * m
        for sub in subsets:
            top = tab.top_candidates([keys[i] for i in sub])
            for t in top:
                want[sub[t]] += 1.0 / len(top) / len(subsets)
        assert pick_probabilities(keys, n, ties="share") == pytest.approx(want)
    assert pick_probabilities([1.0, 1.0], 2) == [1.0, 0.0]  # the default stays np.argmax's first of ties


def test_fit_baselines_on_the_rm_pairs_and_load_them(tmp_path: Path) -> None:
    records = _records()
    fmt = RMFormat(style="compact")
    texts = [fmt.text(r["state"]) for r in records]
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(records), 8))  # an encoder that knows nothing
    fitted = fit_baselines(records, texts, noise, PooledConfig(cv="task", alphas=[0.1, 1.0]), fmt)
    assert set(fitted) == set(BASELINES) - {"ridge"}  # "ridge" is the explicit RM's own head: nothing to fit
    assert fitted["heuristic"]["alpha"] is None and "weights" not in fitted["heuristic"]
    # the statistics see the repeats; noise does not transfer to the task left out
    assert fitted["stats-only"]["metrics"]["task_pairwise_accuracy"] > 0.8
    assert fitted["heuristic"]["metrics"]["task_pairwise_accuracy"] > 0.8
    assert fitted["encoder-only"]["metrics"]["task_pairwise_accuracy"] < 0.7
    assert len(fitted["stats-only"]["weights"]) == len(STAT_NAMES)
    (tmp_path / "baselines.json").write_text(json.dumps(fitted))
    stats = load_baseline("stats-only", tmp_path)
    assert isinstance(stats, StatsRewardModel)
    states = [r["state"] for r in records[:6]]
    fmt_texts = [fmt.text(s) for s in states]
    want = np.stack([text_stats(t, fmt.obs_chars) for t in fmt_texts]) @ np.asarray(fitted["stats-only"]["weights"])
    assert stats.score(states) == pytest.approx(want + fitted["stats-only"]["bias"])
    assert isinstance(load_baseline("heuristic", tmp_path), FewerRepeatsRewardModel)
    with pytest.raises(RMLoadError, match="'ridge' needs the pooled RM"):
        load_baseline("ridge", tmp_path)
    with pytest.raises(RMLoadError, match="pooled RM"):
        load_baseline("encoder-only", tmp_path)  # no encoder to reuse
    with pytest.raises(RMLoadError, match="no 'stats-only' baseline"):
        load_baseline("stats-only", tmp_path / "missing")


def _write_eval(root: Path) -> tuple[list[str], list[str]]:
    """An eval directory with saved candidates (explicit scores) and an RM card with candidates and baselines."""
    rng = random.Random(1)
    (root / "eval").mkdir(parents=True)
    (root / "rm").mkdir()
    lines = []
    for task in ("A", "B"):
        for i in range(4):
            cands = []
            for _ in range(3):
                progress = rng.random()
                traj = Trajectory(task=task, task_id=str(i), goal="g", observation="o",
                                  steps=[Step(action="look", observation="x")] * rng.randint(1, 3), progress=progress)
                cands.append({"success": progress > 0.9, "progress": progress, "score": progress + rng.gauss(0, .1),
                              "trajectory": traj.to_dict()})
            lines.append({"task": task, "task_id": str(i), "method": "bon:3", "candidates": cands})
    (root / "eval" / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    card = {"kind": "pooled_value", "training": {"tasks": ["A", "C"]},
            "metrics": {"cv": "task", "cv_folds": 2, "chosen": "/x/policy+stats", "task_pairwise_accuracy": 0.7,
                        "candidates": {"/x/policy+stats": {"alpha": 1.0, "task_pairwise_accuracy": 0.7,
                                                           "pairwise_accuracy": 0.72, "bon_lift": 0.05},
                                       "/x/policy": {"alpha": 3.0, "task_pairwise_accuracy": 0.48,
                                                     "pairwise_accuracy": 0.5, "bon_lift": 0.0}},
                        "baselines": {"stats-only": {"alpha": 0.1, "task_pairwise_accuracy": 0.66,
                                                     "pairwise_accuracy": 0.67, "bon_lift": 0.04, "per_task": {}}},
                        "selector": {"chosen": "heuristic-ties", "ridge": {"mean": 0.01, "ci": [-0.006, 0.026]},
                                     "heuristic-ties": {"mean": 0.005, "ci": [0.0004, 0.0104]}},
                        "selector_seen": {"chosen": "ridge", "tasks": ["A", "C"],
                                          "ridge": {"mean": 0.018, "ci": [0.004, 0.033]},
                                          "heuristic-ties": {"mean": 0.004, "ci": [-0.001, 0.009]}}}}
    (root / "rm" / "agentrm_rm.json").write_text(json.dumps(card))
    return ["A", "B"], lines


def test_baseline_rows_gains_and_cv_figures_in_table(tmp_path: Path) -> None:
    tasks, lines = _write_eval(tmp_path)
    cfg = preset("smoke").replace(eval_tasks=tasks, rm_tasks=["A"], eval_methods=["greedy", "bon:3"], bootstrap=100)
    heuristic = FewerRepeatsRewardModel()
    extra = {"heuristic": {(r["task"], r["task_id"]): [float(x) for x in heuristic.score(
        [Trajectory.from_dict(c["trajectory"]).state() for c in r["candidates"]])] for r in lines}}
    results = build_results(cfg, tmp_path / "eval", extra)
    table = results["table"]
    assert {"sample", "bon:3 (explicit)", "bon:3 (heuristic)", "pass@3 (oracle)"} <= set(table)
    gains = results["gains"]["bon:3 (explicit)"]["bon:3 (heuristic)"]
    for group in ("held_in", "held_out", "all"):
        g = gains[f"{group}_progress_rate"]
        assert g["lo"] <= g["mean"] <= g["hi"]
    # the heuristic's row is the mean over tied candidates (here: the fewest repeats, often tied)
    rows = tab.candidate_rows(lines, extra, 3)
    for r in lines:
        progress = [c["progress"] for c in r["candidates"]]
        picks = tab.top_candidates(extra["heuristic"][(r["task"], r["task_id"])])
        assert rows["bon:3 (heuristic)"][(r["task"], r["task_id"])][1] == pytest.approx(np.mean(np.take(progress, picks)))
    assert results["rm_cv"]["cv"] == "task" and "stats-only" in results["rm_cv"]["baselines"]
    assert set(results["rm_cv"]["candidates"]) == {"policy+stats", "policy"}  # no path in results.json
    assert results["rm_cv"]["chosen"] == "policy+stats"
    md = tab.render_markdown(results, tasks, ["A"])
    assert "| bon:3 (heuristic) |" in md
    assert "What the learned RM adds over its baselines" in md and "- over `heuristic`" in md
    assert "| policy+stats (chosen) | 0.700 |" in md and "| baseline: stats-only | 0.660 |" in md
    assert "leave-one-task-out" in md
    assert "- on its training tasks (A, C): `ridge`, chosen on task-id folds within them (ridge +1.8 [+0.4, +3.3], " \
           "heuristic-ties +0.4 [-0.1, +0.9])" in md
    assert "- on other tasks: `heuristic-ties`, chosen on the folds above (ridge +1.0 [-0.6, +2.6]" in md


def test_demo_preset_reads_the_rm_against_its_baselines() -> None:
    for name in ("demo", "full"):
        assert set(BASELINES) <= set(preset(name).eval_rms)


def test_pooled_rm_saves_its_baselines(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agentrm_gym.rm.pooled import train_pooled_rm

    records = _records(groups=5)
    candidates = [PooledConfig(backbone="minilm", max_length=64, stats=True, cv="task", alphas=[0.1, 1.0]),
                  PooledConfig(backbone="minilm", max_length=64, stats=False, cv="task", alphas=[0.1, 1.0])]
    rm = train_pooled_rm(records, candidates, out_dir=tmp_path / "rm")
    metrics = rm.card()["metrics"]
    assert set(metrics["baselines"]) == set(BASELINES) - {"ridge"}
    # the selector was chosen against the heuristic on the CV folds, and the RM comes back with it
    assert metrics["selector"]["chosen"] in ("ridge", "heuristic-ties")
    assert rm.card()["selector"] == metrics["selector"]["chosen"]
    from agentrm_gym.rm import load_reward_model

    states = [r["state"] for r in records[:6]]
    again = load_reward_model(tmp_path / "rm")
    assert again.tie_break == rm.tie_break
    assert again.score(states) == pytest.approx(rm.score(states))
    ridge = load_baseline("ridge", tmp_path / "rm", rm)
    assert ridge.tie_break is None and ridge.encoder is rm.encoder
    # encoder-only is the chosen encoder's embedding alone: the same figures as the candidate without stats
    assert metrics["baselines"]["encoder-only"]["task_pairwise_accuracy"] == pytest.approx(
        metrics["candidates"]["minilm"]["task_pairwise_accuracy"])
    encoder_only = load_baseline("encoder-only", tmp_path / "rm", rm)
    assert not encoder_only.use_stats and encoder_only.encoder is rm.encoder
    assert encoder_only.score([r["state"] for r in records[:3]]).shape == (3,)


def test_the_training_tasks_get_their_own_selector(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agentrm_gym.rm import load_reward_model
    from agentrm_gym.rm.pooled import train_pooled_rm
    from agentrm_gym.rm.selector import SELECTORS, heuristic_ties

    records = _records(groups=5)
    cfg = PooledConfig(backbone="minilm", max_length=64, stats=True, cv="task", alphas=[0.1, 1.0])
    rm = train_pooled_rm(records, cfg, out_dir=tmp_path / "rm")
    seen = rm.card()["metrics"]["selector_seen"]  # chosen on task-id folds within A and B
    assert seen["tasks"] == ["A", "B"] and seen["chosen"] in SELECTORS and rm.seen["tasks"] == ["A", "B"]
    assert rm.card()["seen_selector"] == seen["chosen"]
    # a training task's state goes by the seen rule, another task's by the other, on the same history
    rm.tie_break, rm.seen = {"center": 0.0, "scale": 1.0}, {"tasks": ["A"], "tie_break": None}
    rm.clear_cache()
    actions = ["go 0", "look", "look"]
    a, c = _state("A", "9", actions), _state("C", "9", actions)
    value_a, value_c = rm.features([rm.text(a), rm.text(c)]) @ rm.weights + rm.bias
    assert rm.score([a, c]) == pytest.approx([value_a, heuristic_ties(np.array([value_c]), np.array([1]), 0.0, 1.0)[0]])
    again = load_reward_model(rm.save(tmp_path / "copy"))
    assert again.seen == rm.seen and again.tie_break == rm.tie_break
    assert again.score([a, c]) == pytest.approx(rm.score([a, c]))
    # off: one selector for every task, as before
    single = train_pooled_rm(records, PooledConfig(**{**cfg.__dict__, "seen_selector": False}), out_dir=tmp_path / "one")
    assert single.seen is None and "selector_seen" not in single.card()["metrics"]
