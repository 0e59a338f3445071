"""Perturbation variants (issue 24): ``gym.make(..., perturbation=k)`` on every task, and the analysis.

Per task: level 0 is the env without the kwarg; the oracle plays every level to the same progress trace;
the old grammar is refused from level 1 (and accepted at 0); every admissible action maps back to the
original one and is accepted; goals change at levels 2-4 only; the contract checker passes at level 3
(snapshot/restore, copies, garbage, progress, oracle); bad levels raise. Then the one-shot example of
level 4, and ``agentrm_gym.train.analyses_perturb.perturbation`` on a smoke run.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import gymnasium as gym
import pytest

from agentrm_gym import checker
from agentrm_gym.core import restore, snapshot
from agentrm_gym.perturbation import LEVELS, Perturbation, check_level, template_regex
from agentrm_gym.registry import TASKS, TaskSpec

from .conftest import require_task, spec_params

SLOW_IDS = 1  # oracle episodes per level on a slow backend (two elsewhere)


def make(spec: TaskSpec, level: int | None) -> gym.Env:
    kwargs = {} if level is None else {"perturbation": level}
    return gym.make(spec.env_id, split="test", disable_env_checker=True, **kwargs)


def ids_of(spec: TaskSpec, env: gym.Env) -> list[str]:
    ids = env.unwrapped.task_ids("test")
    k = SLOW_IDS if spec.slow else 2
    return [ids[(i * len(ids)) // k] for i in range(k)]


def oracle_trace(env: gym.Env, task_id: str) -> list[tuple]:
    """The oracle's episode as (reward, progress, success, terminated, valid) per step."""
    _, info = env.reset(seed=0, options={"task_id": task_id})
    trace = [(0.0, info["progress"], info["success"], False, True)]
    for _ in range(60):
        action = env.unwrapped.expert_action()
        if action is None:
            break
        _, reward, term, trunc, info = env.step(action)
        trace.append((reward, info["progress"], info["success"], term, info["action_valid"]))
        if term or trunc:
            break
    return trace


@pytest.mark.parametrize("spec", spec_params())
def test_the_oracle_plays_every_level_to_the_same_progress(spec: TaskSpec) -> None:
    require_task(spec)
    envs = {k: make(spec, k) for k in (0, 1, 2, 3, 4)}
    try:
        for task_id in ids_of(spec, envs[0]):
            traces = {k: oracle_trace(env, task_id) for k, env in envs.items()}
            assert traces[0][-1][2], f"{spec.name}/{task_id}: the level-0 oracle failed"
            for k, trace in traces.items():
                assert trace == traces[0], f"{spec.name}/{task_id}: level {k} plays the oracle differently"
    finally:
        for env in envs.values():
            env.close()


@pytest.mark.parametrize("spec", spec_params())
def test_the_old_grammar_is_refused_from_level_1(spec: TaskSpec) -> None:
    require_task(spec)
    envs = {k: make(spec, k) for k in (0, 1, 3)}
    try:
        task_id = ids_of(spec, envs[0])[0]
        _, info0 = envs[0].reset(seed=0, options={"task_id": task_id})
        table = envs[1].unwrapped.perturbation_table()
        old = [a for a in info0["admissible_actions"] if table.is_old_grammar(a)]
        assert old, f"{spec.name}: no admissible action at reset is renamed"
        states = {k: (env.reset(seed=0, options={"task_id": task_id}), snapshot(env)) for k, env in envs.items()}
        garbage = {k: env.step("\x01")[0] for k, env in envs.items()}
        for action in old[:3]:
            for k, env in envs.items():
                restore(env, states[k][1])
                obs, reward, term, _, info = env.step(action)
                if k == 0:
                    assert info["action_valid"], f"{spec.name}: {action!r} refused at level 0"
                    continue
                assert info["action_valid"] is False, f"{spec.name}: old {action!r} accepted at level {k}"
                assert reward == 0.0 and not term and info["progress"] == states[k][0][1]["progress"]
                if table.reject is None:  # the task's own answer to a command it cannot parse
                    assert obs == garbage[k], f"{spec.name}: old {action!r} answered {obs!r}"
                else:
                    assert obs.startswith("Error: unknown tool"), obs
            # the renamed form of the same command is accepted
            restore(envs[1], states[1][1])
            *_, info = envs[1].step(table.forward(action))
            assert info["action_valid"], f"{spec.name}: renamed {table.forward(action)!r} refused"
    finally:
        for env in envs.values():
            env.close()


@pytest.mark.parametrize("spec", spec_params())
def test_admissible_actions_map_back_and_are_accepted(spec: TaskSpec) -> None:
    require_task(spec)
    envs = {k: make(spec, k) for k in (0, 1, 3)}
    try:
        task_id = ids_of(spec, envs[0])[-1]
        lists = {k: env.reset(seed=0, options={"task_id": task_id})[1]["admissible_actions"] for k, env in envs.items()}
        table = envs[1].unwrapped.perturbation_table()
        assert len(lists[1]) == len(lists[0])
        for original, renamed in zip(lists[0], lists[1], strict=True):
            assert table.backward(renamed) == original, f"{spec.name}: {renamed!r} maps back to another command"
            assert renamed == original or table.backward(renamed) is not None
        assert lists[1] != lists[0], f"{spec.name}: level 1 renames nothing"
        # every listed action (a sample on big lists) is accepted at level 3; listing says the same
        state = snapshot(envs[3])
        sample = lists[3][:: max(1, len(lists[3]) // 6)][:6]
        for action in sample:
            restore(envs[3], state)
            *_, info = envs[3].step(action)
            assert info["action_valid"], f"{spec.name}: admissible {action!r} refused at level 3"
        restore(envs[3], state)
        obs, *_ = envs[3].step(checker.CHECK_VALID_ACTIONS)
        assert all(a in obs for a in lists[3][:5])
        # the expert and the instruction speak the renamed grammar
        envs[1].reset(seed=0, options={"task_id": task_id})
        expert = envs[1].unwrapped.expert_action()
        assert expert is None or not table.is_old_grammar(expert)
        assert envs[1].unwrapped.instruction() != envs[0].unwrapped.instruction()
    finally:
        for env in envs.values():
            env.close()


@pytest.mark.parametrize("spec", spec_params())
def test_goals_change_at_levels_2_to_4_only(spec: TaskSpec) -> None:
    require_task(spec)
    envs = {k: make(spec, k) for k in LEVELS}
    try:
        for task_id in ids_of(spec, envs[0]):
            obs, goals = {}, {}
            for k, env in envs.items():
                obs[k], info = env.reset(seed=0, options={"task_id": task_id})
                goals[k] = info["goal"]
                assert info.get("perturbation", 0) == k
            assert goals[1] == goals[0] and goals[2] == goals[3] == goals[4]
            assert goals[2] != goals[0], f"{spec.name}/{task_id}: the goal is not reworded"
            # level 2 changes only the goal, also where the first observation repeats it
            assert obs[2] == (obs[0].replace(goals[0], goals[2]) if len(goals[0]) >= 8 else obs[0])
            assert goals[0] not in obs[0] or goals[0] in obs[1]
    finally:
        for env in envs.values():
            env.close()


@pytest.mark.parametrize("spec", spec_params())
def test_level_0_is_the_env_without_the_kwarg(spec: TaskSpec) -> None:
    require_task(spec)
    plain, zero = make(spec, None), make(spec, 0)
    try:
        task_id = ids_of(spec, plain)[0]
        assert checker.rollout(plain, task_id, 5, 6) == checker.rollout(zero, task_id, 5, 6)
        assert plain.unwrapped.instruction() == zero.unwrapped.instruction()
        _, info = zero.reset(seed=0, options={"task_id": task_id})
        assert "perturbation" not in info and zero.unwrapped.perturbation == 0
    finally:
        plain.close()
        zero.close()


@pytest.mark.parametrize("spec", spec_params())
def test_the_contract_holds_at_level_3(spec: TaskSpec) -> None:
    """The whole checker on the perturbed env: snapshot/restore, pickle and deepcopy round trips, garbage,
    progress, the oracle."""
    require_task(spec)
    passed = checker.check_task(spec, oracle_episodes=1 if spec.slow else 3, perturbation=3)
    assert "snapshot-restore" in passed and "oracle" in passed


@pytest.mark.parametrize("spec", spec_params())
def test_a_pickled_level_3_snapshot_restores_a_copy(spec: TaskSpec) -> None:
    require_task(spec)
    env = make(spec, 3)
    try:
        task_id = ids_of(spec, env)[0]
        env.reset(seed=0, options={"task_id": task_id})
        for _ in range(2):
            env.step(env.unwrapped.expert_action() or "look")
        state = pickle.loads(pickle.dumps(snapshot(env)))
        clone = pickle.loads(pickle.dumps(env))
        try:
            assert clone.unwrapped.perturbation == 3 and clone.unwrapped.goal == env.unwrapped.goal
            action = env.unwrapped.expert_action()
            if action is not None:
                first = env.step(action)
                restore(env, state)
                assert env.step(action) == first == clone.step(action)
        finally:
            clone.close()
    finally:
        env.close()


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("level", [-1, 5, 1.0, "2", True, None])
def test_invalid_levels_raise(name: str, level: object) -> None:
    spec = TASKS[name]
    require_task(spec)
    with pytest.raises(ValueError, match="perturbation must be an int in 0..4"):
        gym.make(spec.env_id, split="test", perturbation=level)


def test_levels_and_templates() -> None:
    assert [check_level(k) for k in range(5)] == [0, 1, 2, 3, 4]
    table = Perturbation([("take {obj} from {recep}", "from {recep} take {obj}"), ("go to {recep}", "move to {recep}")],
                         retired=["put {obj} in {recep}"])
    assert table.forward("take mug 1 from countertop 2") == "from countertop 2 take mug 1"
    assert table.backward("From  countertop 2 take mug 1") == "take mug 1 from countertop 2"
    assert table.backward("go to cabinet 1") is None and table.backward("put mug 1 in sink 1") is None
    assert table.backward("look") == "look" and table.forward("look") == "look"
    assert table.reword_goal("put a mug in sink.") == "Your goal: put a mug in sink."
    assert template_regex("click[{label}]").fullmatch("CLICK[Buy Now]")["label"] == "Buy Now"


def test_tool_names_are_renamed_one_to_one() -> None:
    from agentrm_gym.envs.tools.base import renamed_tool
    from agentrm_gym.envs.tools.operation import OPERATION_SETS
    from agentrm_gym.envs.tools.query import QUERY_SETS

    for _, cls in [*QUERY_SETS.values(), *OPERATION_SETS.values()]:
        names = [t.name for t in cls.tools] + ["finish"]
        new = [renamed_tool(n) for n in names]
        assert len(set(new)) == len(new) and not set(new) & set(names), cls.name


# ------------------------------------------------------------------------------------ one-shot example
def test_level_4_prompts_show_another_example_in_the_renamed_grammar(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from agentrm_gym.agents import prompts

    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path))
    monkeypatch.setattr(prompts, "_EXAMPLES", {})
    base = prompts.PromptBuilder().example("Maze")
    renamed = prompts.PromptBuilder(perturbation=3).example("Maze")
    other = prompts.PromptBuilder(perturbation=4).example("Maze")
    assert base is not None and renamed is not None and other is not None
    assert renamed.task_id == base.task_id and renamed.goal != base.goal
    assert [s.action for s in renamed.steps] == [s.action.replace("move up", "go north").replace(
        "move down", "go south").replace("move left", "go west").replace("move right", "go east") for s in base.steps]
    assert other.task_id != base.task_id and all(s.action.startswith("go ") for s in other.steps)
    assert prompts.oracle_example("Maze").to_dict() == base.to_dict()  # level 0 unchanged


# ---------------------------------------------------------------------------------------- the analysis
@pytest.mark.slow
def test_the_perturbation_analysis_on_a_smoke_run(analysis_run: Path) -> None:
    from agentrm_gym.train.analyses_perturb import perturbation

    result = perturbation(analysis_run, size="smoke")
    out = analysis_run / "analysis"
    assert (out / "perturbation.md").exists() and json.loads((out / "perturbation.json").read_text())["size"] == "smoke"
    methods = result["methods"]
    assert methods[0] == "greedy" and "bon:5" in methods and any(m.startswith("beam") for m in methods)
    records = [json.loads(x) for x in (out / "perturbation" / "episodes.jsonl").read_text().splitlines()]
    assert {r["level"] for r in records} == {0, 3} and len(records) == result["episodes"]
    for task in ("Maze", "PDDL"):
        for m in methods:
            cell = result["drops"]["3"][m]["tasks"][task]
            assert cell["episodes"] == (1 if m.startswith("beam") else 2) and cell["lo"] <= cell["mean"] <= cell["hi"]
    assert {(r["level"], r["method"]) for r in records} == {(k, m) for k in (0, 3) for m in methods}
    assert result["played"] == len(records)
    text = (out / "perturbation.md").read_text()
    assert "-2.1 (RM-guided search)" in text and "-25.6 / -30.3" in text
    # a rerun plays nothing new
    cands = (out / "perturbation" / "candidates.jsonl").read_bytes()
    again = perturbation(analysis_run, size="smoke")
    assert again["episodes"] == result["episodes"] and again["played"] == 0 and (out / "perturbation" / "candidates.jsonl").read_bytes() == cands
