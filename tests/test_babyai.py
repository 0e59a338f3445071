"""BabyAI-specific behaviour: text rendering, macro actions, failing macros, numbering, subgoal progress."""

from __future__ import annotations

import pickle

import pytest

from agentrm_gym.core import restore, snapshot
from agentrm_gym.envs.babyai import BabyAIEnv, minigrid_id

GOTO = "BabyAI-GoToRedBallGrey-v0@100002"
UNLOCK = "BabyAI-UnlockLocalDist-v0@100015"


@pytest.fixture
def env() -> BabyAIEnv:
    e = BabyAIEnv(split="train")
    yield e
    e.close()


def test_splits_and_ids(env):
    test = env.task_ids("test")
    assert len(test) == 112 and test[0] == "BabyAI-GoToRedBallGrey-v0@1234" and test[-1] == "BabyAI-KeyCorridorS6R3-v0@1237"
    assert len({t.split("@")[0] for t in test}) == 28
    assert not set(env.task_ids("train")) & set(test)
    assert minigrid_id("GoToObjS6") == "BabyAI-GoToObjS6-v1"  # minigrid 3 bumped this level


def test_rendering_text(env, capsys):
    obs, info = env.reset(options={"task_id": GOTO})
    assert capsys.readouterr().out == ""  # minigrid's rejection-sampling prints are silenced
    assert info["goal"] == "go to the red ball"
    assert obs.startswith("In front of you in this room, you can see several objects: There is a ")
    assert "The room has walls around you." in obs and obs.endswith("You are not carrying anything.")
    assert "red ball 1" in obs and "steps" in obs
    # every rendered object has a go-to macro with the same label
    for act in info["admissible_actions"]:
        if act.startswith("go to "):
            assert act[len("go to "):] in obs


def test_goto_macro_reaches_object_and_succeeds(env):
    _, info = env.reset(options={"task_id": GOTO})
    assert "go to red ball 1" in info["admissible_actions"]
    obs, reward, term, _, info = env.step("go to red ball 1")
    assert info["action_valid"] and term and info["success"] and reward > 0
    assert obs.endswith("The task is completed.")
    assert tuple(env.env.front_pos) == tuple(env.env.instrs.desc.obj_poss[0])


def test_failing_macros_are_invalid_and_change_nothing(env):
    obs0, info = env.reset(options={"task_id": GOTO})
    state = (tuple(env.env.agent_pos), env.env.agent_dir)
    cases = {
        "go to purple box 7": "as you cannot see it",
        "drop": "you are not carrying anything",
        "go through red ball 1": "as it is not a door",
        "dance": "not recognized",
    }
    for action, reason in cases.items():
        obs, reward, term, _, info = env.step(action)
        assert info["action_valid"] is False, action
        assert reason in obs, (action, obs)
        assert reward == 0 and not term
        assert (tuple(env.env.agent_pos), env.env.agent_dir) == state


def test_pickup_unlock_and_toggle_macros(env):
    """UnlockLocalDist: pick up the key (also spelled "pick up"), then unlock the door with it."""
    _, info = env.reset(options={"task_id": UNLOCK})
    door = next(a for a in info["admissible_actions"] if a.startswith("go to") and "locked door" in a)
    door_label = door[len("go to "):]
    key = f"pickup {door_label.split()[0]} key 1"
    assert key in info["admissible_actions"]
    obs, _, _, _, info = env.step("toggle and go through " + door_label)
    assert info["action_valid"] is False and "not carrying a key" in obs
    obs, _, _, _, info = env.step(key.replace("pickup", "pick up"))
    assert info["action_valid"] and "You are carrying a" in obs and "key" in obs
    assert not any(a.startswith("pickup ") for a in info["admissible_actions"])  # hands are full
    obs, _, _, _, info = env.step("pickup")
    assert info["action_valid"] is False
    toggle = "toggle and go through " + door_label
    for _ in range(4):  # look around until the door is in view again
        if toggle in info["admissible_actions"]:
            break
        _, _, _, _, info = env.step("turn left")
    obs, _, term, _, info = env.step(toggle)
    assert info["action_valid"] and term and info["success"]


def test_primitive_actions(env):
    env.reset(options={"task_id": GOTO})
    d = env.env.agent_dir
    _, _, _, _, info = env.step("turn left")
    assert info["action_valid"] and env.env.agent_dir == (d - 1) % 4
    env.step("turn right")
    assert env.env.agent_dir == d
    obs, _, _, _, info = env.step("inventory")
    assert info["action_valid"] and obs == "You are not carrying anything."


def test_numbering_is_stable_within_episode(env):
    _, info = env.reset(options={"task_id": "BabyAI-GoToLocalS8N7-v0@1234"})
    labels = {}
    for _ in range(8):  # spin around: an object keeps its number whatever else comes into view
        for _, _, obj in env._view()["objects"]:
            labels.setdefault(id(obj), obj.agentrm_label)
            assert labels[id(obj)] == obj.agentrm_label
        env.step("turn left")
    names = [f"{o.color} {o.type} {o.agentrm_label}" for _, _, o in env._view()["objects"]]
    assert len(names) == len(set(names))


def test_subgoal_progress(env):
    """Pickup levels score seen / reached / picked up / done; success is 1."""
    _, info = env.reset(options={"task_id": "BabyAI-PickupDistDebug-v0@1235"})
    checks = dict(env._subgoal_checks())
    assert set(checks) == {"0:seen", "0:reached", "0:picked", "0:done"}
    start = info["progress"]
    assert start in (0.0, 0.25)  # seen at the start, or not
    progress = [start]
    while not info["success"]:
        _, _, _, _, info = env.step(env.expert_action())
        progress.append(info["progress"])
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any(0.0 < p < 1.0 for p in progress)


def test_native_snapshot_is_exact_and_picklable(env):
    env.reset(options={"task_id": UNLOCK})
    env.step(env.expert_action())
    state = pickle.loads(pickle.dumps(snapshot(env)))
    assert state.native is not None  # the native path, not replay
    actions, first = [], []
    for _ in range(3):
        actions.append(env.expert_action() or "turn left")
        first.append(env.step(actions[-1]))
    restore(env, state)
    assert [env.step(a) for a in actions] == first
    # and the same as a fresh env that replays the whole history
    other = BabyAIEnv(split="train")
    other.reset(options={"task_id": UNLOCK})
    for a in state.actions:
        other.step(a)
    assert [other.step(a) for a in actions] == first


def test_oracle_solves_mixed_levels(env):
    for task_id in ("BabyAI-OpenRedDoor-v0@1234", "BabyAI-OpenDoorsOrderN4Debug-v0@1234", "BabyAI-GoToSeqS5R2-v0@1234", "BabyAI-PickupLoc-v0@1236"):
        _, info = env.reset(options={"task_id": task_id})
        for _ in range(30):
            _, _, term, _, info = env.step(env.expert_action())
            if term:
                break
        assert info["success"], task_id
