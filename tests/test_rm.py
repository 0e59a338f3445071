"""Reward models: RM text format, batched cached scoring, value / pairwise / implicit / judge models,
save -> load, corrupted files, resume, RMB metrics on Maze's oracle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="reward models need the [llm] extra")
pytest.importorskip("transformers", reason="reward models need the [llm] extra")

from agentrm_gym.envs.maze import DOUBLE_T_GOAL, DOUBLE_T_MAZE, bfs_distances, parse_grid  # noqa: E402
from agentrm_gym.rm import (  # noqa: E402
    CARD_NAME,
    HEADER_VERSION,
    FunctionRewardModel,
    RMFormat,
    RMLoadError,
    load_reward_model,
    read_card,
    train_value_rm,
)
from agentrm_gym.rm.backbones import encode_rm_inputs, tiny_causal_lm, tiny_value_backbone  # noqa: E402
from agentrm_gym.rm.metrics import (  # noqa: E402
    build_comparison_sets,
    evaluate_rm,
    oracle_value_samples,
    spearman,
)
from agentrm_gym.trajectory import AgentState, Step  # noqa: E402

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "vocab_size": 400}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI box is small and shared; one thread is faster for tiny models
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def maze_samples() -> list[tuple[AgentState, float]]:
    return oracle_value_samples("agentrm/Maze-v0", episodes=12, epsilon=0.4, split="test", progress_bar=False)


@pytest.fixture(scope="module")
def value_rm(maze_samples, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("value_rm")
    return train_value_rm(maze_samples, backbone="tiny", out_dir=out, epochs=1, batch_size=32, max_length=64,
                          tiny_kwargs=TINY, checkpoint_every=2), out


def maze_state(n_steps: int = 3, thought: str = "think") -> AgentState:
    s = AgentState("Maze", "Reach the goal at position 8, 6.", "Your current position is at position 5, 4.")
    for i in range(n_steps):
        s = s.extend(Step(f"move {['down', 'right', 'up'][i % 3]}", f"Your current position is at position {i}, 4.",
                          thought=f"{thought} {i}"))
    return s


# ------------------------------------------------------------------ format
def test_rm_text_format_and_ablations() -> None:
    s = maze_state(2)
    text = RMFormat().text(s)
    assert text.startswith("You are an expert maze solver. Your target is to interact with the environment")
    assert "Reach the goal at position 8, 6." in text and "move up, move down" in text
    assert "Thought: think 1\nAction: move right\nObservation: Your current position is at position 1, 4." in text
    no_t = RMFormat(drop_thoughts=True).text(s)
    no_o = RMFormat(drop_observations=True).text(s)
    assert "Thought:" not in no_t and "Observation:" in no_t
    assert "Observation:" not in no_o and "Thought:" in no_o and "Action: move down" in no_o
    unknown = RMFormat().text(AgentState("Foreign", "do it", "start"))
    assert unknown.startswith("You are an expert agent.") and "do it" in unknown
    history, spans = RMFormat().history_with_spans(s)
    assert [history[a:b] for a, b in spans] == ["move down", "move right"]
    with pytest.raises(ValueError, match="header version"):
        RMFormat(header_version="v0")


def test_truncation_keeps_header_and_end_of_history() -> None:
    s = maze_state(40)
    fmt = RMFormat()
    model, tok = tiny_value_backbone([fmt.text(s)], **TINY)
    enc = encode_rm_inputs(tok, [fmt.parts(s)], max_length=64)
    ids = enc["input_ids"][0].tolist()
    assert len(ids) == 64 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    decoded = tok.decode(ids, skip_special_tokens=True)
    assert decoded.startswith("you are an expert maze solver")
    assert decoded.replace(" ", "").endswith("position39,4.")
    assert "think 0" not in decoded


# ------------------------------------------------------------------ scoring API
def test_cache_makes_repeated_scores_free(value_rm) -> None:
    rm, _ = value_rm
    rm.clear_cache()
    rm.stats.reset()
    states = [maze_state(n) for n in range(5)]
    first = rm.score(states)
    assert first.shape == (5,) and first.dtype == np.float64
    calls = rm.stats.forward_calls
    assert calls == 1  # one batch
    again = rm.score(states[::-1] + states)
    assert rm.stats.forward_calls == calls  # nothing recomputed
    np.testing.assert_array_equal(again, np.concatenate([first[::-1], first]))
    np.testing.assert_array_equal(rm(states), first)  # callable
    assert rm.stats.cache_hits == 15
    rm.batch_size = 2
    rm.clear_cache()
    rm.score(states)
    assert rm.stats.forward_calls == calls + 3
    # batched and one-by-one scoring agree
    rm.clear_cache()
    single = np.array([rm.score([s])[0] for s in states])
    np.testing.assert_allclose(single, first, atol=1e-5)
    rm.batch_size = 32


def test_save_load_identical_scores_and_card(value_rm, maze_samples) -> None:
    rm, out = value_rm
    states = [s for s, _ in maze_samples[:30]]
    loaded = load_reward_model(out)
    np.testing.assert_allclose(loaded.score(states), rm.score(states), atol=1e-6)
    card = read_card(out)
    assert card["kind"] == "value" and card["header_version"] == HEADER_VERSION
    assert card["backbone"] == "tiny-bert" and card["objective"] == "mse"
    assert card["training"]["samples"] == len(maze_samples) and card["training"]["tasks"] == ["Maze"]
    assert "best_val_loss" in card["metrics"]
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())  # TensorBoard
    assert (out / "checkpoint" / "trainer_state.pt").exists()


def test_corrupted_or_missing_files_name_the_file(value_rm, tmp_path) -> None:
    import shutil

    _, out = value_rm
    with pytest.raises(RMLoadError, match="no such reward-model directory"):
        load_reward_model(tmp_path / "nope")
    cases = {
        CARD_NAME: lambda p: p.write_text("{not json"),
        "config.json": lambda p: p.unlink(),
        "model.safetensors": lambda p: p.write_bytes(b"garbage" * 10),
    }
    for name, damage in cases.items():
        d = tmp_path / name.replace(".", "_")
        shutil.copytree(out, d, ignore=shutil.ignore_patterns("checkpoint", "best", "events*"))
        damage(d / name)
        with pytest.raises(RMLoadError, match=name.replace(".", r"\.")):
            load_reward_model(d)
    d = tmp_path / "kind"
    shutil.copytree(out, d, ignore=shutil.ignore_patterns("checkpoint", "best", "events*"))
    (d / CARD_NAME).write_text(json.dumps({"kind": "mystery"}))
    with pytest.raises(RMLoadError, match="unknown reward-model kind"):
        load_reward_model(d)


def test_resume_continues_from_checkpoint(maze_samples, tmp_path) -> None:
    data = maze_samples[:60]
    kw = dict(backbone="tiny", out_dir=tmp_path, batch_size=16, max_length=48, tiny_kwargs=TINY, patience=0)
    first = train_value_rm(data, epochs=1, **kw)
    steps1 = first.card()["metrics"]["steps"]
    second = train_value_rm(data, epochs=2, **kw)
    assert second.card()["metrics"]["steps"] == 2 * steps1  # only the second epoch ran
    third = train_value_rm(data, epochs=2, **kw)  # finished: nothing to do, same weights
    s = [x for x, _ in data[:10]]
    np.testing.assert_allclose(third.score(s), second.score(s), atol=1e-6)


def test_function_rm_type_check() -> None:
    with pytest.raises(TypeError, match="AgentState"):
        FunctionRewardModel(len).score(["text"])


# ------------------------------------------------------------------ pairwise
def test_bradley_terry_loss_formula() -> None:
    from agentrm_gym.rm.pairwise import bradley_terry_loss

    c, r = torch.tensor([1.0, 0.2]), torch.tensor([0.0, 0.5])
    d = c - r - 0.1
    expect = (-(0.9) * torch.nn.functional.logsigmoid(d) - 0.1 * torch.nn.functional.logsigmoid(-d)).mean()
    assert float(bradley_terry_loss(c, r, margin=0.1, label_smoothing=0.1)) == pytest.approx(float(expect))
    assert float(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0]))) == pytest.approx(math.log(2))


def test_pairwise_training_learns_maze_preferences(tmp_path) -> None:
    from agentrm_gym.rm.pairwise import train_pairwise_rm

    sets = build_comparison_sets("agentrm/Maze-v0", episodes=25, pairs_per_episode=4, progress_bar=False)
    held_out = build_comparison_sets("agentrm/Maze-v0", episodes=8, seed=100, progress_bar=False)
    rm = train_pairwise_rm(sets.pairs, backbone="tiny", out_dir=tmp_path, epochs=4, batch_size=16,
                           max_length=64, label_smoothing=0.05, tiny_kwargs=TINY, patience=0, lr=3e-3,
                           fmt=RMFormat(drop_thoughts=True))
    assert rm.card()["objective"] == "bradley-terry"
    loaded = load_reward_model(tmp_path)
    pairs = held_out.pairs
    np.testing.assert_allclose(loaded.score([c for c, _ in pairs]), rm.score([c for c, _ in pairs]), atol=1e-6)
    acc = evaluate_rm(rm, sets)["pairwise_accuracy"]
    assert acc > 0.6, acc  # training pairs are fit


# ------------------------------------------------------------------ implicit and judge
def _lm_pair(texts):
    policy, tok = tiny_causal_lm(texts, hidden_size=32, num_layers=1, num_heads=2, vocab_size=300)
    reference, _ = tiny_causal_lm(texts, hidden_size=32, num_layers=1, num_heads=2, vocab_size=300)
    reference.load_state_dict(policy.state_dict())
    return policy, reference, tok


def test_implicit_rm(maze_samples, tmp_path) -> None:
    from agentrm_gym.rm.implicit import ImplicitRewardModel, train_implicit_rm

    fmt = RMFormat()
    states = [s for s, _ in maze_samples if s.steps][:40]
    policy, reference, tok = _lm_pair([fmt.text(s) for s in states])
    rm = ImplicitRewardModel(policy, reference, tok, beta=0.05)
    np.testing.assert_allclose(rm.score(states[:5]), 0.0, atol=1e-6)  # policy == reference
    labels = [(s, float(s.steps[-1].progress)) for s in states]
    trained = train_implicit_rm(labels, policy, reference, tok, out_dir=tmp_path, epochs=1, batch_size=8,
                                lr=1e-2, max_length=256, val_fraction=0.0)
    scores = trained.score(states[:5])
    assert np.abs(scores).max() > 1e-4
    s = states[3]
    steps = trained.step_rewards(s)
    assert len(steps) == len(s.steps) and steps.sum() == pytest.approx(trained.score([s])[0], abs=1e-5)
    last = ImplicitRewardModel(trained.policy, trained.reference, tok, aggregate="last", max_length=256)
    assert last.score([s])[0] == pytest.approx(steps[-1], abs=1e-5)
    assert ImplicitRewardModel(trained.policy, trained.reference, tok).score(
        [AgentState("Maze", "g", "o")])[0] == 0.0
    loaded = load_reward_model(tmp_path)
    assert loaded.kind == "implicit" and loaded.beta == 0.05
    np.testing.assert_allclose(loaded.score(states[:5]), scores, atol=1e-5)


def test_implicit_rm_keeps_the_actions_when_the_last_observation_is_long(maze_samples, tmp_path) -> None:
    """The tokens after the last action cannot change its log-probs, so they are dropped before the window is
    cut: a last observation longer than max_length scores as a short one does (it used to push every action
    out of the window and score 0)."""
    import dataclasses

    from agentrm_gym.rm.implicit import train_implicit_rm

    fmt = RMFormat()
    states = [s for s, _ in maze_samples if s.steps][:24]
    policy, reference, tok = _lm_pair([fmt.text(s) for s in states])
    rm = train_implicit_rm([(s, float(s.steps[-1].progress)) for s in states], policy, reference, tok,
                           out_dir=tmp_path, epochs=1, batch_size=8, lr=1e-2, max_length=96, val_fraction=0.0)
    s = next(x for x in states if len(x.steps) >= 2)
    long = dataclasses.replace(s, steps=[*s.steps[:-1], dataclasses.replace(s.steps[-1],
                                                                           observation="wall " * 400)])
    rm.clear_cache()
    short, lengthy = rm.score([s, long])
    assert short != 0.0 and lengthy == pytest.approx(short, abs=1e-5)
    assert np.abs(rm.step_rewards(long)).max() > 0


def test_implicit_rm_bradley_terry_learns_the_order_within_groups(maze_samples, tmp_path) -> None:
    """loss="bt" fits only the order within each group: the training groups' pairs end up ranked right, the
    split is by group, and a missing or mismatched group list is refused."""
    from agentrm_gym.rm.implicit import train_implicit_rm

    fmt = RMFormat()
    states = [s for s, _ in maze_samples if s.steps][:40]
    labels = [(s, float(s.steps[-1].progress)) for s in states]
    groups = [i // 4 for i in range(len(states))]
    ranked = [g for g in set(groups) if len({y for (_, y), h in zip(labels, groups, strict=True) if h == g}) > 1]
    assert len(ranked) >= 3
    policy, reference, tok = _lm_pair([fmt.text(s) for s in states])
    with pytest.raises(ValueError, match="groups="):
        train_implicit_rm(labels, policy, reference, tok, out_dir=tmp_path / "x", loss="bt")
    with pytest.raises(ValueError, match="keys for"):
        train_implicit_rm(labels, policy, reference, tok, groups=groups[:-1], out_dir=tmp_path / "x", loss="bt")
    with pytest.raises(ValueError, match="label_smoothing"):
        train_implicit_rm(labels, policy, reference, tok, groups=groups, out_dir=tmp_path / "x", loss="bt",
                          label_smoothing=0.5)

    def accuracy(rm) -> float:
        scores, right, n = rm.score(states), 0.0, 0
        for i, (_, yi) in enumerate(labels):
            for j, (_, yj) in enumerate(labels):
                if groups[i] == groups[j] and yi > yj:
                    n, right = n + 1, right + (scores[i] > scores[j]) + 0.5 * (scores[i] == scores[j])
        return right / n

    from agentrm_gym.rm.implicit import ImplicitRewardModel

    assert accuracy(ImplicitRewardModel(policy, reference, tok, max_length=256)) == 0.5  # policy == reference
    trained = train_implicit_rm(labels, policy, reference, tok, groups=groups, out_dir=tmp_path, epochs=8,
                                batch_size=2, lr=3e-3, max_length=256, val_fraction=0.0, loss="bt")
    assert accuracy(trained) > 0.8
    card = load_reward_model(tmp_path).card()
    assert card["objective"] == "bt" and card["training"]["groups"] == len(ranked)


def test_judge_pointwise_and_listwise(tmp_path) -> None:
    from agentrm_gym.rm.judge import JudgeRewardModel

    states = [maze_state(n) for n in range(4)]
    fmt = RMFormat()
    model, tok = tiny_causal_lm([fmt.text(s) for s in states] + ["Answer: Yes No Candidate 1 2 3 4"] * 5,
                                hidden_size=32, num_layers=1, num_heads=2, vocab_size=300)
    judge = JudgeRewardModel(model, tok, max_length=128)
    p = judge.score(states)
    assert p.shape == (4,) and np.all((p > 0) & (p < 1))
    ranks = judge.rank(states)
    assert ranks.shape == (4,) and ranks.sum() == pytest.approx(1.0) and judge.best_of_n(states) in range(4)
    judge.save(tmp_path)
    np.testing.assert_allclose(load_reward_model(tmp_path).score(states), p, atol=1e-6)
    with pytest.raises(ValueError, match="candidates"):
        judge.rank([states[0]] * 10)


# ------------------------------------------------------------------ metrics
def test_spearman() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def _oracle_distance_rm() -> FunctionRewardModel:
    dist = bfs_distances(parse_grid(DOUBLE_T_MAZE), DOUBLE_T_GOAL)

    def value(state: AgentState) -> float:
        obs = state.last_observation
        if obs == "Success":
            return 0.0
        r, c = obs.split("Your current position is at position ")[1].split(".")[0].split(", ")
        return -float(dist[(int(r), int(c))])

    return FunctionRewardModel(value)


def test_comparison_sets_and_rmb_metrics() -> None:
    sets = build_comparison_sets("agentrm/Maze-v0", episodes=6, seed=0, progress_bar=False)
    assert len(sets.pairs) >= 10 and len(sets.best_of_n) >= 4 and len(sets.valued) >= 20
    for good, *losers in sets.best_of_n:
        assert 2 <= len(losers) <= 6 and all(len(x.steps) <= len(good.steps) for x in losers)
    for chosen, rejected in sets.pairs:
        assert chosen.steps[:-1] == rejected.steps[:-1] and chosen.steps[-1].action != rejected.steps[-1].action
    oracle = evaluate_rm(_oracle_distance_rm(), sets)
    assert oracle["pairwise_accuracy"] == 1.0 and oracle["best_of_n_accuracy"] == 1.0
    assert oracle["spearman"] > 0.95  # values 1 - d/d0 vs -d: d0 differs between tasks
    constant = evaluate_rm(FunctionRewardModel(lambda s: 0.5), sets)
    assert constant["pairwise_accuracy"] == 0.0 and constant["best_of_n_accuracy"] == 0.0
    again = build_comparison_sets("agentrm/Maze-v0", episodes=6, seed=0, progress_bar=False)
    assert [c.key() for c, _ in again.pairs] == [c.key() for c, _ in sets.pairs]  # deterministic


def test_rm_eval_cli(value_rm) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    _, out = value_rm
    result = CliRunner().invoke(app, ["rm", "eval", "--rm", str(out), "--env", "maze", "--episodes", "3", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert 0.0 <= metrics["pairwise_accuracy"] <= 1.0 and metrics["pairs"] > 0


@pytest.mark.slow
def test_value_rm_learns_maze_values(tmp_path) -> None:
    samples = oracle_value_samples("agentrm/Maze-v0", episodes=40, epsilon=0.4, split="test", progress_bar=False)
    rm = train_value_rm(samples, backbone="tiny", out_dir=tmp_path, epochs=4, batch_size=32, max_length=96,
                        tiny_kwargs={"hidden_size": 64, "vocab_size": 500})
    metrics = evaluate_rm(rm, build_comparison_sets("agentrm/Maze-v0", episodes=10, seed=5, progress_bar=False))
    assert metrics["spearman"] > 0.6 and metrics["pairwise_accuracy"] > 0.6, metrics


@pytest.mark.slow
def test_minilm_default_backbone_loads_offline() -> None:
    from agentrm_gym.rm.backbones import load_value_backbone
    from agentrm_gym.rm.value import ValueRewardModel

    model, tok = load_value_backbone("minilm")
    assert model.config.num_labels == 1 and type(model).__name__ == "BertForSequenceClassification"
    rm = ValueRewardModel(model, tok, max_length=128, backbone="all-MiniLM-L6-v2")
    assert rm.score([maze_state(2)]).shape == (1,)


def test_train_rm_cli(tmp_path) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    out = tmp_path / "rm"
    result = CliRunner().invoke(app, ["rm", "train", "--env", "maze", "--out", str(out), "--episodes", "4",
                                      "--epochs", "1", "--max-length", "48"])
    assert result.exit_code == 0, result.output
    assert read_card(out)["kind"] == "value" and load_reward_model(out).score([maze_state(1)]).shape == (1,)
