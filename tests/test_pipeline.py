"""The AgentRM pipeline: the ``smoke`` preset end to end, resumability, label formulas, tables, CLI."""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from agentrm_gym.cli import app  # noqa: E402
from agentrm_gym.cli.groups import pipeline_app  # noqa: E402
from agentrm_gym.train.config import PipelineConfig, preset  # noqa: E402
from agentrm_gym.train.evaluate import aggregate, eval_ids  # noqa: E402
from agentrm_gym.train.expert import run_expert  # noqa: E402
from agentrm_gym.train.extract import td_targets  # noqa: E402
from agentrm_gym.train.pipeline import STAGE_NAMES, run_pipeline  # noqa: E402
from agentrm_gym.trajectory import read_jsonl  # noqa: E402


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """The smoke preset, interrupted after SFT and resumed; returns (run dir, mtimes after SFT, record)."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    cfg = preset("smoke")
    first = run_pipeline(cfg, out, stages=["expert", "sft"])
    assert set(first["stages"]) == {"expert", "sft"}
    assert not (out / "explore").exists()
    mtimes = {p: (out / p).stat().st_mtime_ns for p in
              ("expert/done.json", "expert/trajectories.jsonl", "sft/done.json", "sft/policy/model.safetensors")}
    record = run_pipeline(cfg, out)
    return out, mtimes, record


def test_smoke_pipeline_writes_every_stage(smoke_run: tuple[Path, dict, dict]) -> None:
    out, _, record = smoke_run
    for sub in ("expert", "sft", "explore", "extract", "rm", "eval"):
        assert (out / sub / "done.json").is_file(), sub
    assert json.loads((out / "config.json").read_text())["name"] == "smoke"
    trajs = list(read_jsonl(out / "expert" / "trajectories.jsonl"))
    assert {t["task"] for t in trajs} == {"Maze", "PDDL"} and len(trajs) == 12
    sharegpt = list(read_jsonl(out / "expert" / "sft.jsonl"))
    assert len(sharegpt) == 12 and sharegpt[0]["conversations"][-1]["from"] == "gpt"
    assert sharegpt[0]["conversations"][-1]["value"].startswith("Thought: ")
    assert (out / "sft" / "policy" / "config.json").is_file()
    assert record["stages"]["sft"]["sampled_tokens_per_s"] > 0
    trees = sorted((out / "explore" / "trees").glob("*.jsonl"))
    assert len(trees) == 2 and all(t.name.startswith("Maze__") for t in trees)
    nodes = list(read_jsonl(trees[0]))
    assert nodes[0]["parent"] is None and nodes[0]["N"] >= 1 and nodes[0]["children"]
    pairs = list(read_jsonl(out / "extract" / "pairs.jsonl"))
    assert len(pairs) >= 2 and all(0.0 <= p["value"] <= 1.0 for p in pairs)
    assert (out / "rm" / "agentrm_rm.json").is_file()
    assert list((out / "tb").glob("*/events.out.tfevents.*"))
    results = json.loads((out / "eval" / "results.json").read_text())
    table = results["table"]
    assert {"greedy", "sample", "bon:2 (explicit)", "bon:2 (implicit)", "bon:2 (judge)", "beam:2x2",
            "pass@2 (oracle)"} <= set(table)
    for row in table.values():
        assert set(row["tasks"]) == {"Maze", "PDDL"}
        assert row["tasks"]["Maze"]["episodes"] == 2
        assert 0.0 <= row["averages"]["all_success_rate"] <= 100.0
    # the oracle pick is an upper bound of the RM's pick
    for rm_row in ("bon:2 (explicit)", "bon:2 (implicit)", "bon:2 (judge)"):
        assert (table["pass@2 (oracle)"]["averages"]["all_progress_rate"]
                >= table[rm_row]["averages"]["all_progress_rate"] - 1e-9)
    gains = results["gains"]
    # the explicit RM against the baselines and, on the same candidates, against the other RMs
    assert set(gains["bon:2 (explicit)"]) == {"sample", "greedy", "bon:2 (implicit)", "bon:2 (judge)"}
    assert set(gains["bon:2 (judge)"]) == {"sample", "greedy"}
    g = gains["bon:2 (explicit)"]["sample"]["all_progress_rate"]
    assert g["lo"] <= g["mean"] <= g["hi"] and g["episodes"] == 4
    assert "Paired gains" in record["table_md"]
    assert "| greedy |" in record["table_md"] and "held-out avg" in record["table_md"]
    episodes = list(read_jsonl(out / "eval" / "episodes.jsonl"))
    assert len(episodes) == 2 * 3 * 2  # tasks x methods x episodes
    assert all(len(e["candidates"]) == 2 for e in episodes if e["method"] == "bon:2")
    # every Best-of-N candidate is kept whole, so any RM can re-score it offline
    cands = list(read_jsonl(out / "eval" / "candidates.jsonl"))
    assert len(cands) == 4 and all(len(c["candidates"]) == 2 and c["candidates"][0]["trajectory"]["steps"]
                                   for c in cands)
    groups = list(read_jsonl(out / "explore" / "groups.jsonl"))
    assert len(groups) == 3 and all(len(g["candidates"]) == 2 for g in groups)
    sources = {p["source"] for p in pairs}
    assert {"group", "mcts"} <= sources and all("group" in p for p in pairs)
    card = json.loads((out / "rm" / "agentrm_rm.json").read_text())
    assert card["kind"] == "pooled_value"
    # the encoder chosen by the CV among the preset's candidates (the policy's states + statistics, MiniLM)
    candidates = card["metrics"]["candidates"]
    assert set(candidates) == {f"{out / 'sft' / 'policy'}+stats", "minilm"}
    chosen = card["metrics"]["chosen"]
    assert candidates[chosen]["task_pairwise_accuracy"] == max(c["task_pairwise_accuracy"] for c in candidates.values())
    assert card["backbone"] == chosen.removesuffix("+stats") and bool(card["stats"]) == chosen.endswith("+stats")
    assert (out / "rm" / "encoder" / "config.json").is_file()  # a copy: the RM loads without the run
    assert (out / "rm_implicit" / "agentrm_rm.json").is_file()


def test_implicit_stage_trains_bt_on_groups_and_falls_back_to_ce(smoke_run, tmp_path) -> None:
    """implicit_loss=bt learns from the groups holding different outcomes; with fewer than two it warns and
    trains with ce, and the card says which loss it used."""
    from agentrm_gym.train.extract import load_pairs
    from agentrm_gym.train.rm_stage import train_implicit

    out, _, _ = smoke_run
    cfg = PipelineConfig.from_dict(json.loads((out / "config.json").read_text(encoding="utf-8")))
    finals = [p for p in load_pairs(out) if p["source"] == "group"][:6]
    assert len(finals) == 6
    ranked = [{**p, "group": f"g{i // 3}", "value": float(i % 3 > 0)} for i, p in enumerate(finals)]
    train_implicit(cfg.replace(implicit_loss="bt"), out, ranked, out=tmp_path / "bt")
    card = json.loads((tmp_path / "bt" / "agentrm_rm.json").read_text(encoding="utf-8"))
    assert card["objective"] == "bt" and card["training"]["groups"] == 2
    flat = [{**p, "value": 0.5} for p in ranked]
    with pytest.warns(UserWarning, match="trains with ce"):
        train_implicit(cfg.replace(implicit_loss="bt"), out, flat, out=tmp_path / "ce")
    assert json.loads((tmp_path / "ce" / "agentrm_rm.json").read_text(encoding="utf-8"))["objective"] == "ce"
    with pytest.raises(ValueError, match="implicit_loss"):
        train_implicit(cfg.replace(implicit_loss="dpo"), out, ranked, out=tmp_path / "x")


def test_rescore_cli_on_saved_candidates(smoke_run: tuple[Path, dict, dict]) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    out, _, _ = smoke_run
    res = CliRunner().invoke(app, ["rm", "rescore", str(out), "--rm", str(out / "rm"), "--name", "again"])
    assert res.exit_code == 0, res.output
    assert "bon:2 (again)" in res.output and "| sample |" in res.output
    cache = out / "eval" / "scores" / "again.jsonl"
    first = list(read_jsonl(cache))
    assert len(first) == 4
    res = CliRunner().invoke(app, ["rm", "rescore", str(out), "--rm", str(out / "rm"), "--name", "again"])
    assert res.exit_code == 0 and list(read_jsonl(cache)) == first  # the same RM: the cache is reused
    # another RM under the same name: its own scores, not the cached ones of the first
    res = CliRunner().invoke(app, ["rm", "rescore", str(out), "--rm", str(out / "rm_implicit"), "--name", "again"])
    assert res.exit_code == 0, res.output
    implicit = {(r["task"], r["task_id"]): r["scores"] for r in read_jsonl(out / "eval" / "scores" / "implicit.jsonl")}
    assert {(r["task"], r["task_id"]): r["scores"] for r in read_jsonl(cache)} == implicit != {
        (r["task"], r["task_id"]): r["scores"] for r in first}


def test_finished_stages_are_skipped_on_resume(smoke_run: tuple[Path, dict, dict]) -> None:
    out, mtimes, _ = smoke_run
    for rel, mtime in mtimes.items():
        assert (out / rel).stat().st_mtime_ns == mtime, f"{rel} was rewritten on resume"
    t0 = time.time()
    again = run_pipeline(preset("smoke"), out)
    assert time.time() - t0 < 10
    assert again["stages"]["evaluate"]["episodes"] == 12


def test_expert_resumes_inside_the_stage(tmp_path: Path) -> None:
    cfg = PipelineConfig(sft_tasks=["Maze"], rm_tasks=[], expert_episodes=3, expert_max_steps=6)
    run_expert(cfg, tmp_path)
    path = tmp_path / "expert" / "trajectories.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    (tmp_path / "expert" / "done.json").unlink()
    path.write_text(lines[0] + "\n" + lines[1][:20])  # an interrupted writer: one line cut short
    summary = run_expert(cfg, tmp_path)
    ids = [r["task_id"] for r in read_jsonl(path)]
    assert summary["episodes"] == 3 and len(ids) == len(set(ids)) == 3


def test_td_lambda_targets() -> None:
    # lam = 1: Monte-Carlo (gamma^(T-t) R); lam = 0: one-step bootstrap on q
    assert td_targets(1.0, [None, None, None], gamma=0.9, lam=1.0) == pytest.approx([0.81, 0.9, 1.0])
    assert td_targets(1.0, [0.0, 0.2, 0.4], gamma=1.0, lam=0.0) == pytest.approx([0.2, 0.4, 1.0])
    q = td_targets(1.0, [0.0, 0.5, None], gamma=1.0, lam=0.5)
    assert q[2] == 1.0 and q[1] == pytest.approx(1.0) and q[0] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)


def test_eval_ids_are_a_fixed_even_subset() -> None:
    ids = [str(i) for i in range(100)]
    assert eval_ids(ids, 4) == ["0", "25", "50", "75"]
    assert eval_ids(ids, 0) == ids and eval_ids(ids[:3], 10) == ids[:3]


def test_aggregate_averages_and_derived_rows() -> None:
    recs = [
        {"method": "greedy", "task": "A", "success": False, "progress": 0.5},
        {"method": "greedy", "task": "B", "success": True, "progress": 1.0},
        {"method": "bon:2", "task": "A", "success": True, "progress": 1.0,
         "candidates": [{"success": True, "progress": 1.0}, {"success": False, "progress": 0.0}]},
        {"method": "bon:2", "task": "B", "success": False, "progress": 0.2,
         "candidates": [{"success": False, "progress": 0.2}, {"success": True, "progress": 1.0}]},
    ]
    t = aggregate(recs, ["A", "B"], held_in=["A"])
    assert list(t) == ["greedy", "sample", "bon:2", "pass@2 (oracle)"]
    assert t["greedy"]["averages"]["all_success_rate"] == 50.0
    assert t["greedy"]["averages"]["held_in_progress_rate"] == 50.0
    assert t["sample"]["tasks"]["A"]["success_rate"] == 50.0
    assert t["pass@2 (oracle)"]["averages"]["all_success_rate"] == 100.0


def test_rm_backbone_policy_needs_a_local_policy(tmp_path: Path) -> None:
    from agentrm_gym.train.rm_stage import rm_backbone

    assert rm_backbone(preset("smoke"), tmp_path, "policy") == str(tmp_path / "sft" / "policy")
    assert rm_backbone(preset("smoke").replace(rm_backbone="policy"), tmp_path) == str(tmp_path / "sft" / "policy")
    assert rm_backbone(preset("smoke"), tmp_path) == "minilm"
    served = preset("smoke").replace(policy="openai:http://127.0.0.1:8000/v1#llama")
    with pytest.raises(ValueError, match="rm_backbone to minilm"):
        rm_backbone(served, tmp_path, "policy")
    from agentrm_gym.train.rm_stage import pooled_candidates

    configs = pooled_candidates(preset("demo"), tmp_path)
    assert [(c.backbone, c.stats) for c in configs] == [(str(tmp_path / "sft" / "policy"), True),
                                                        (str(tmp_path / "sft" / "policy"), False),
                                                        ("minilm", True), ("minilm", False)]
    assert [c.stats for c in pooled_candidates(preset("demo").replace(rm_candidates=[], rm_stats=True),
                                               tmp_path)] == [True]
    for bad in ("minilm+stat", "+stats", "policy+stats+x"):
        with pytest.raises(ValueError, match="rm_candidates entry"):
            pooled_candidates(preset("demo").replace(rm_candidates=[bad]), tmp_path)


def test_a_resumed_run_names_the_overrides_it_ignores(tmp_path: Path) -> None:
    from agentrm_gym.train.pipeline import prepare_run

    cfg = preset("smoke")
    assert prepare_run(cfg, tmp_path) == cfg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_run(cfg.replace(eval_episodes=5), tmp_path).eval_episodes == 5  # evaluation fields may change
    with pytest.warns(UserWarning, match=r"rm_candidates \(saved \['policy\+stats', 'minilm'\], given \['minilm'\]\)"):
        kept = prepare_run(cfg.replace(rm_candidates=["minilm"]), tmp_path)
    assert kept.rm_candidates == ["policy+stats", "minilm"]


def test_config_overrides_and_presets() -> None:
    cfg = preset("demo").override(["eval_episodes=3", "eval_tasks=Maze,PDDL", "temperature=0.7"])
    assert cfg.eval_episodes == 3 and cfg.eval_tasks == ["Maze", "PDDL"] and cfg.temperature == 0.7
    with pytest.raises(ValueError, match="field=value"):
        cfg.override(["no_such_field=1"])
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.expert_count("Jericho") == 8 and cfg.expert_count("WebShop") == cfg.expert_episodes_held_in


def test_cli_stage_commands(smoke_run: tuple[Path, dict, dict]) -> None:
    out, _, _ = smoke_run
    runner = CliRunner()
    res = runner.invoke(app, ["pipeline", "all", "--fields"])
    assert res.exit_code == 0 and "mcts_iterations" in res.output
    res = runner.invoke(app, ["table", "--out", str(out)])
    assert res.exit_code == 0 and "| greedy |" in res.output
    res = runner.invoke(app, ["pipeline", "extract", "--out", str(out)])  # finished: prints its summary, redoes nothing
    assert res.exit_code == 0 and '"pairs"' in res.output
    res = runner.invoke(app, ["pipeline", "all", "--out", str(out), "--stages", "nope"])
    assert res.exit_code != 0
    names = {c.name for c in app.registered_commands} | {f"pipeline {c.name}" for c in pipeline_app.registered_commands}
    assert {"pipeline expert", "pipeline sft", "pipeline explore", "pipeline extract", "pipeline train-rm",
            "pipeline evaluate", "table", "pipeline all"} <= names
    assert set(STAGE_NAMES) == {"expert", "sft", "explore", "extract", "train-rm", "evaluate"}


def test_spread_order_draws_every_family_of_a_sorted_split() -> None:
    from agentrm_gym.train.config import spread_order

    for n in (0, 1, 2, 7, 100, 3592):  # a permutation of any length
        assert sorted(spread_order(list(range(n)))) == list(range(n))
    # a split sorted by family (10 families of 30 to 75 ids): the first 20 ids reach all of them
    ids = [f"f{f}@{k}" for f in range(10) for k in range(30 + 5 * f)]
    assert len({i.split("@")[0] for i in spread_order(ids)[:20]}) == 10
    assert len({i.split("@")[0] for i in ids[:20]}) == 1  # where the split's own order stays in one
    # a split cycling through six types (ALFWorld's index % 6): any window of the order keeps them balanced
    counts = Counter(i % 6 for i in spread_order(list(range(3553)))[43:113])
    assert len(counts) == 6 and max(counts.values()) - min(counts.values()) <= 3
    cfg = preset("demo").replace(train_order="spread")
    assert cfg.ordered_train_ids(range(4)) == ["0", "3", "2", "1"]
    assert cfg.replace(train_order="split").ordered_train_ids(range(3)) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="train_order"):
        cfg.replace(train_order="random").ordered_train_ids(range(3))
