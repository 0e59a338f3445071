"""Jericho env: TextWorld-generated default games on Jericho's Z-machine, plus user story files."""

from __future__ import annotations

import json
import pickle
import shutil

import gymnasium as gym
import pytest

from agentrm_gym.core import CHECK_VALID_ACTIONS, UnknownTask, restore, snapshot
from agentrm_gym.registry import get_spec, missing_requirements

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_requirements(get_spec("Jericho"))), reason="needs jericho and textworld"),
]


@pytest.fixture(scope="module")
def env():
    env = gym.make("agentrm/Jericho-v0", split="test")  # builds (or reuses) the 20 test games
    yield env
    env.close()


def play_oracle(env, task_id: str) -> tuple[dict, list[str]]:
    obs, info = env.reset(seed=0, options={"task_id": task_id})
    actions = []
    term = trunc = False
    while not (term or trunc):
        action = env.unwrapped.expert_action()
        if action is None:
            break
        actions.append(action)
        obs, _, term, trunc, info = env.step(action)
        assert info["action_valid"], (action, obs)
    return info, actions


def test_default_games_are_fixed_and_fit_the_step_limit(env):
    from agentrm_gym.envs.jericho import games

    base = env.unwrapped
    assert base.task_ids("test") == [f"test-{i}" for i in range(20)]
    assert len(base.task_ids("train")) == 200
    challenges = set()
    for game_id in base.task_ids("test"):
        data = json.loads(games.game_path(game_id).with_suffix(".json").read_text())
        assert data["metadata"]["agentrm_id"] == game_id
        assert 0 < len(data["metadata"]["walkthrough"]) <= games.MAX_WALKTHROUGH
        challenges.add(games.recipe_for(game_id).challenge)
    assert challenges == {"tw-treasure_hunter", "tw-coin_collector", "tw-simple", "tw-cooking"}
    assert games.base_seed("test-3") == games.base_seed("test-3") != games.base_seed("train-3")
    with pytest.raises(UnknownTask):
        env.unwrapped.reset(options={"task_id": "test-20"})


def test_observation_goal_and_admissible(env):
    obs, info = env.reset(seed=0, options={"task_id": "test-3"})  # a cooking game
    assert "-= " in obs and "___" not in obs and not obs.rstrip().endswith(">")
    assert "cookbook" in info["goal"]
    acts = info["admissible_actions"]
    assert acts == sorted(acts) and "look" in acts and "inventory" in acts
    assert env.unwrapped.expert_action() in acts
    obs, _, _, _, info = env.step(CHECK_VALID_ACTIONS)
    assert all(a in obs for a in acts)


def test_oracle_solves_every_test_game_within_30_steps(env):
    for task_id in env.unwrapped.task_ids("test"):
        info, actions = play_oracle(env, task_id)
        assert info["success"] and info["progress"] == 1.0, task_id
        assert len(actions) <= 30


def test_progress_follows_the_quest(env):
    obs, info = env.reset(seed=0, options={"task_id": "test-1"})  # coin collector: 5 moves
    assert info["progress"] == 0.0
    seen = []
    for _ in range(3):
        obs, reward, term, _, info = env.step(env.unwrapped.expert_action())
        seen.append(info["progress"])
        assert reward > 0
    assert seen == sorted(seen) and 0 < seen[-1] < 1 and not term


def test_oracle_replans_after_a_detour(env):
    obs, info = env.reset(seed=0, options={"task_id": "test-5"})  # coin collector with distractor rooms
    first = env.unwrapped.expert_action()
    detour = next(a for a in info["admissible_actions"] if a.startswith("go ") and a != first)
    obs, _, _, _, info = env.step(detour)
    assert info["action_valid"]
    back = env.unwrapped.expert_action()
    assert back is not None and back != first  # the tracker's replanned policy, not the walkthrough
    term = False
    for _ in range(30):
        action = env.unwrapped.expert_action()
        if action is None or term:
            break
        obs, _, term, _, info = env.step(action)
    assert info["success"]


def test_invalid_commands_get_the_games_answer(env):
    env.reset(seed=0, options={"task_id": "test-0"})
    for command, answer in [("xyzzy", "not a verb"), ("take unicorn", "can't see"), ("42", "not a verb")]:
        obs, reward, _, _, info = env.step(command)
        assert answer in obs and info["action_valid"] is False and reward == 0.0
    for refused in ["save", "restart", "quit", "undo", "tw-print", "x" * 500, "go\x00north", "prendre ☃"]:
        obs, _, _, _, info = env.step(refused)
        assert info["action_valid"] is False and obs == "That's not a verb I recognise."
    obs, _, _, _, info = env.step("LOOK.")  # normalised to an admissible command
    assert info["action_valid"] and "-= " in obs


def test_non_admissible_but_understood_command_is_valid(env):
    obs, info = env.reset(seed=0, options={"task_id": "test-3"})
    assert "x cookbook" not in info["admissible_actions"]
    obs, _, _, _, info = env.step("x cookbook")  # Inform's abbreviation of "examine"
    assert info["action_valid"] and "recipe" in obs.lower()


def test_native_snapshot_is_exact_and_fast(env):
    import time

    obs, info = env.reset(seed=0, options={"task_id": "test-7"})
    for _ in range(3):
        env.step(env.unwrapped.expert_action())
    state = snapshot(env)
    assert state.native is not None  # Jericho's get_state, not a replay
    rest = [env.unwrapped.expert_action()]
    first = env.step(rest[0])
    began = time.perf_counter()
    for _ in range(50):
        restore(env, state)
    per_restore = (time.perf_counter() - began) / 50
    assert per_restore < 0.05
    assert env.step(rest[0]) == first
    restore(env, pickle.loads(pickle.dumps(state)))  # the tracker is rebuilt from its action history
    assert env.step(rest[0]) == first
    info, _ = play_oracle_from_here(env)
    assert info["success"]


def play_oracle_from_here(env):
    info = {}
    term = False
    actions = []
    while not term:
        action = env.unwrapped.expert_action()
        if action is None:
            break
        actions.append(action)
        _, _, term, _, info = env.step(action)
    return info, actions


def test_train_games_are_built_lazily(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path))
    from agentrm_gym.envs.jericho import games

    env = gym.make("agentrm/Jericho-v0", split="train", num_train=5)
    try:
        assert env.unwrapped.task_ids("train") == [f"train-{i}" for i in range(5)]
        assert not any(games.games_dir().glob("*.z8"))  # nothing built until a game is played
    finally:
        env.close()


def test_story_file_with_goal_and_subgoals(env, tmp_path):
    from agentrm_gym.envs.jericho import games

    source = games.game_path("test-1")  # coin collector: go x4, take coin
    story = tmp_path / "my_story.z8"
    shutil.copy(source, story)  # without its TextWorld .json: played by Jericho alone
    walkthrough = json.loads(source.with_suffix(".json").read_text())["metadata"]["walkthrough"]
    user = gym.make("agentrm/Jericho-v0", story_file=str(story), goal="Find the coin and take it.",
                    subgoals=["You pick up the coin"])
    try:
        base = user.unwrapped
        assert base.task_ids("test") == ["my_story"]
        obs, info = user.reset(seed=0)
        assert info["goal"] == "Find the coin and take it." and info["admissible_actions"] is None
        obs, _, _, _, info = user.step("dance wildly with the moon")
        assert info["action_valid"] is False
        obs, _, _, _, info = user.step("look")
        assert info["action_valid"] is True
        state = snapshot(user)
        for action in walkthrough:
            obs, reward, term, trunc, info = user.step(action)
        assert info["success"] and info["progress"] == 1.0 and term
        restore(user, state)
        assert user.unwrapped.progress == 0.0 and not user.unwrapped.success
    finally:
        user.close()
    with pytest.raises(ValueError):
        gym.make("agentrm/Jericho-v0", goal="only with a story file")
    with pytest.raises(FileNotFoundError):
        gym.make("agentrm/Jericho-v0", story_file=str(tmp_path / "missing.z8"))


@pytest.fixture
def sent(env, monkeypatch):
    """Reset to test-0 and record every command that reaches the Z-machine.

    A command with a backslash is never passed on (it would hang dumb-frotz for good); it fails the test.
    """
    env.reset(seed=0, options={"task_id": "test-0"})
    frotz = env.unwrapped._frotz
    original = frotz.step
    commands: list[str] = []

    def spy(command):
        commands.append(command)
        if "\\" in command:
            raise AssertionError(f"{command!r} reached the interpreter (dumb-frotz would loop forever)")
        return original(command)

    monkeypatch.setattr(frotz, "step", spy)
    return commands


@pytest.mark.parametrize("command", ["\\p", "\\x", "\\help", "\\", "\\q", "look \\x", "x\\n", "look. \\p",
                                     "look\x01", "\x1b[A", "take\x7fkey"])
def test_backslash_and_control_commands_never_reach_the_interpreter(env, sent, command):
    obs, reward, _, _, info = env.step(command)
    assert obs == "That's not a verb I recognise." and info["action_valid"] is False and reward == 0.0
    assert sent == []
    obs, _, _, _, info = env.step("look")  # the interpreter still answers
    assert info["action_valid"] and "-= " in obs and sent == ["look"]


META = ["restart", "quit", "q", "save", "restore", "script", "unscript", "transcript", "record", "replay",
        "undo", "again", "oops", "tw-print"]


@pytest.mark.parametrize("sep", [". ", ".", ", ", " then ", "; ", " THEN "])
def test_chained_meta_commands_are_refused(env, sent, sep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where save / script / record would write their files
    first = env.unwrapped.expert_action()
    _, _, _, _, info = env.step(first)
    progress = info["progress"]
    assert progress > 0.0
    for verb in META:
        for command in (f"look{sep}{verb}", f"{first}{sep}{verb}", f"{verb}{sep}look"):
            obs, reward, term, _, info = env.step(command)
            assert obs == "That's not a verb I recognise.", command
            assert info["action_valid"] is False and reward == 0.0 and not term
            assert info["progress"] == progress
            env.step("yes")  # what a restart / quit question would have taken as its answer
    assert not any(c.split(".")[0] in META or "then" in c for c in sent[1:]), sent
    assert list(tmp_path.iterdir()) == []
    # the story was neither restarted nor quit: the walkthrough goes on from where it was
    _, _, _, _, info = env.step(env.unwrapped.expert_action())
    assert info["action_valid"] and info["progress"] > progress


def test_chained_story_commands_still_reach_the_story(env, sent):
    obs, _, _, _, info = env.step("look. inventory")
    assert sent == ["look. inventory"] and "carrying" in obs.lower()
