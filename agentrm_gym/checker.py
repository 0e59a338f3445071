"""The TextEnv contract as a public checker: what every task of the suite passes, for a task author to run.

Like Gymnasium's ``check_env``, but for the whole agentrm-gym contract of a registered task::

    from agentrm_gym import TaskSpec, check_task, register_task

    register_task(TaskSpec("Counter", "my_pkg.counter:CounterEnv", "text game", False, 20, 10))
    check_task("Counter")                 # raises ContractError naming the first broken promise

Each check is also a function of its own (the suite's tests call them one by one):

* :func:`check_gym_api` - Gymnasium's ``check_env`` on the unwrapped env;
* :func:`check_info_and_splits` - the info keys, disjoint train/test splits of the declared size, the
  ``check valid actions`` meta-action;
* :func:`check_seeded_determinism` - two envs, one seed: the same rollout;
* :func:`check_snapshot_restore` - a pickled snapshot restores the env exactly;
* :func:`check_copies` - ``pickle`` and ``deepcopy`` give an independent env in the same state;
* :func:`check_garbage_actions` - malformed actions never raise, are invalid and change nothing;
* :func:`check_progress` - progress in [0, 1], monotone, and the rewards sum to its increase;
* :func:`check_oracle` - the oracle solves the test split at the row's ``oracle_min_success``.
"""

from __future__ import annotations

import copy
import pickle
import random
import string
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from agentrm_gym.core import CHECK_VALID_ACTIONS, AgentRMGymError, restore, snapshot
from agentrm_gym.registry import TaskSpec, get_spec, require_extra

INFO_KEYS = frozenset({"task", "task_id", "goal", "progress", "success", "admissible_actions", "action_valid"})


class ContractError(AgentRMGymError, AssertionError):
    """A task breaks the TextEnv contract; the message names the check and what was seen."""


def _ensure(ok: bool, message: str) -> None:
    if not ok:
        raise ContractError(message)


def make_env(spec: TaskSpec, **kwargs: Any) -> gym.Env:
    """``gym.make`` of the task's id on its test split (kwargs override)."""
    return gym.make(spec.env_id, **{"split": "test", **kwargs})


def policy_action(env: gym.Env, rng: random.Random, info: dict[str, Any]) -> str:
    """A mix of oracle and random admissible actions, so that rollouts visit varied states."""
    acts = info.get("admissible_actions")
    expert = env.unwrapped.expert_action()
    if expert is not None and (rng.random() < 0.5 or not acts):
        return expert
    if acts:
        return rng.choice(acts)
    return "look"


def rollout(env: gym.Env, task_id: str, seed: int, k: int) -> list[tuple[Any, ...]]:
    """Up to ``k`` :func:`policy_action` steps from a reset: ``[(obs, progress), (action, obs, reward,
    terminated, progress, action_valid), ...]``."""
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    rng = random.Random(seed)
    trace: list[tuple[Any, ...]] = [(obs, info["progress"])]
    for _ in range(k):
        action = policy_action(env, rng, info)
        obs, reward, term, trunc, info = env.step(action)
        trace.append((action, obs, reward, term, info["progress"], info["action_valid"]))
        if term or trunc:
            break
    return trace


def two_steps_in(env: gym.Env) -> tuple[random.Random, dict[str, Any]]:
    """Reset to the first test task (seed 1) and take two policy actions; the rng and the last info."""
    task_id = env.unwrapped.task_ids("test")[0]
    _, info = env.reset(seed=1, options={"task_id": task_id})
    rng = random.Random(1)
    for _ in range(2):
        *_, info = env.step(policy_action(env, rng, info))
    return rng, info


def garbage_actions(n: int, seed: int = 0) -> list[Any]:
    """Malformed actions: empty, huge, non-text, injection-like and random printable strings."""
    rng = random.Random(seed)
    out: list[Any] = ["", " ", "\n", "x" * 20000, "🤖 take ☃ from ∞", "click[]", "search[", "move", "[SEP]",
                      "'; DROP TABLE items; --", None, 42, b"\xff\xfe"]
    while len(out) < n:
        out.append("".join(rng.choice(string.printable) for _ in range(rng.randint(1, 60))) + "\x00qz#")
    return out


def _with_env(spec: TaskSpec, check: Callable[[gym.Env], None], **kwargs: Any) -> None:
    env = make_env(spec, **kwargs)
    try:
        check(env)
    finally:
        env.close()


def check_gym_api(spec: TaskSpec, **env_kwargs: Any) -> None:
    """Gymnasium's own ``check_env`` on the unwrapped env (spaces, seeding, reset/step signatures)."""
    from gymnasium.utils.env_checker import check_env

    _with_env(spec, lambda env: check_env(env.unwrapped, skip_render_check=True), **env_kwargs)


def check_info_and_splits(spec: TaskSpec, **env_kwargs: Any) -> None:
    """The info keys after reset and step, splits of the declared sizes that share no id, a non-empty goal
    and observation, progress in [0, 1], and ``check valid actions`` listing the admissible actions."""
    def check(env: gym.Env) -> None:
        base = env.unwrapped
        test_ids = base.task_ids("test")
        _ensure(len(test_ids) == spec.test_size, f"{spec.name}: {len(test_ids)} test ids, the row says {spec.test_size}")
        _ensure(len(set(test_ids)) == len(test_ids), f"{spec.name}: the test split repeats ids")
        train_ids = base.task_ids("train")
        _ensure(bool(train_ids), f"{spec.name}: the train split is empty")
        shared = set(train_ids) & set(test_ids)
        _ensure(not shared, f"{spec.name}: ids in both splits: {sorted(shared)[:5]}")
        obs, info = env.reset(seed=0)
        _ensure(isinstance(obs, str) and bool(obs), f"{spec.name}: reset's observation is not a non-empty str")
        _ensure(INFO_KEYS <= set(info), f"{spec.name}: reset's info lacks {sorted(INFO_KEYS - set(info))}")
        _ensure(info["task"] == spec.name, f"{spec.name}: info['task'] is {info['task']!r}")
        _ensure(info["task_id"] in test_ids, f"{spec.name}: a seeded reset picked {info['task_id']!r}, not a test id")
        _ensure(isinstance(info["goal"], str) and bool(info["goal"]), f"{spec.name}: info['goal'] is empty")
        _ensure(0.0 <= info["progress"] <= 1.0, f"{spec.name}: progress {info['progress']} outside [0, 1]")
        obs, _, _, _, info = env.step(CHECK_VALID_ACTIONS)
        _ensure(info["action_valid"] is True, f"{spec.name}: {CHECK_VALID_ACTIONS!r} is not a valid action")
        if info["admissible_actions"] is not None:
            missing = [a for a in info["admissible_actions"][:5] if a not in obs]
            _ensure(not missing, f"{spec.name}: {CHECK_VALID_ACTIONS!r} does not list {missing}")
        _ensure(INFO_KEYS <= set(info), f"{spec.name}: step's info lacks {sorted(INFO_KEYS - set(info))}")

    _with_env(spec, check, **env_kwargs)


def check_seeded_determinism(spec: TaskSpec, **env_kwargs: Any) -> None:
    """Two envs, one task id and seed: the same rollout; a seeded reset picks the same task id."""
    a, b = make_env(spec, **env_kwargs), make_env(spec, **env_kwargs)
    try:
        task_id = a.unwrapped.task_ids("test")[min(1, spec.test_size - 1)]
        _ensure(rollout(a, task_id, 7, 8) == rollout(b, task_id, 7, 8),
                f"{spec.name}: two envs gave different rollouts of {task_id!r} for one seed")
        oa, ia = a.reset(seed=3)
        ob, ib = b.reset(seed=3)
        _ensure(oa == ob and ia["task_id"] == ib["task_id"], f"{spec.name}: reset(seed=3) differs between envs")
    finally:
        a.close()
        b.close()


def check_snapshot_restore(spec: TaskSpec, **env_kwargs: Any) -> None:
    """A pickled snapshot, restored after four steps, replays them to the same observations and infos."""
    def check(env: gym.Env) -> None:
        rng, info = two_steps_in(env)
        state = pickle.loads(pickle.dumps(snapshot(env)))
        actions, first = [], []
        for _ in range(4):
            a = policy_action(env, rng, info)
            actions.append(a)
            obs, r, term, trunc, info = env.step(a)
            first.append((obs, r, term, trunc, info))
            if term or trunc:
                break
        restore(env, state)
        second = [env.step(a) for a in actions]
        _ensure(first == [tuple(s) for s in second], f"{spec.name}: the restored env answered {actions} differently")

    _with_env(spec, check, **env_kwargs)


def check_copies(spec: TaskSpec, how: str = "pickle", **env_kwargs: Any) -> None:
    """``pickle`` (``how="pickle"``) or ``deepcopy`` of a stepped env: another env, in the same state."""
    def check(env: gym.Env) -> None:
        _, info = two_steps_in(env)
        clone = pickle.loads(pickle.dumps(env)) if how == "pickle" else copy.deepcopy(env)
        try:
            base, other = env.unwrapped, clone.unwrapped
            _ensure(other is not base and type(other) is type(base), f"{spec.name}: the {how} copy is not a new env")
            _ensure(other.spec == base.spec, f"{spec.name}: the {how} copy has another spec")
            _ensure(other.actions == base.actions and other.last_observation == base.last_observation,
                    f"{spec.name}: the {how} copy is not where the original was")
            actions = [policy_action(env, random.Random(k), info) for k in range(3)]
            first = [env.step(a) for a in actions]
            second = [clone.step(a) for a in actions]
            _ensure([(o, r, t, i["progress"]) for o, r, t, _, i in first]
                    == [(o, r, t, i["progress"]) for o, r, t, _, i in second],
                    f"{spec.name}: the {how} copy answered {actions} differently")
        finally:
            clone.close()

    _with_env(spec, check, **{"disable_env_checker": True, **env_kwargs})


def check_garbage_actions(spec: TaskSpec, n: int = 200, **env_kwargs: Any) -> None:
    """``n`` malformed actions: none raises, each is invalid, none earns reward or progress."""
    def check(env: gym.Env) -> None:
        obs, info = env.reset(seed=2)
        before = info["progress"]
        for action in garbage_actions(n):
            obs, reward, term, trunc, info = env.step(action)
            _ensure(isinstance(obs, str), f"{spec.name}: step({action!r:.40}) returned a non-str observation")
            _ensure(info["action_valid"] is False, f"{spec.name}: {action!r:.60} was accepted")
            _ensure(reward == 0.0 and info["progress"] == before,
                    f"{spec.name}: {action!r:.60} earned reward {reward} / progress {info['progress']}")
            if trunc:
                obs, info = env.reset(seed=2)

    _with_env(spec, check, **{"disable_env_checker": True, **env_kwargs})


def check_progress(spec: TaskSpec, tasks: int = 3, **env_kwargs: Any) -> None:
    """On the first ``tasks`` test ids: progress in [0, 1], never falling, rewards summing to its increase."""
    def check(env: gym.Env) -> None:
        for seed, task_id in enumerate(env.unwrapped.task_ids("test")[:tasks]):
            trace = rollout(env, task_id, seed, 400)
            progress = [t[4] for t in trace[1:]]
            start = trace[0][1]
            _ensure(all(0.0 <= p <= 1.0 for p in progress), f"{spec.name}/{task_id}: progress outside [0, 1]")
            _ensure(all(b >= a for a, b in zip([start, *progress], progress, strict=False)),
                    f"{spec.name}/{task_id}: progress fell")
            total = sum(t[2] for t in trace[1:])
            end = progress[-1] if progress else start
            _ensure(bool(np.isclose(total, end - start)),
                    f"{spec.name}/{task_id}: rewards sum to {total}, progress rose by {end - start}")

    _with_env(spec, check, **env_kwargs)


def run_oracle(env: gym.Env, task_id: str) -> tuple[bool, float]:
    """Play ``expert_action()`` from a reset to the end; ``(success, final progress)``."""
    obs, info = env.reset(seed=0, options={"task_id": task_id})
    term = trunc = False
    while not (term or trunc):
        action = env.unwrapped.expert_action()
        if action is None:
            break
        obs, _, term, trunc, info = env.step(action)
    return bool(info["success"]), float(info["progress"])


def check_oracle(spec: TaskSpec, episodes: int | None = None, **env_kwargs: Any) -> float:
    """The oracle on the first ``episodes`` test ids (all by default) succeeds at least as often as the
    row's ``oracle_min_success``, with progress 1.0 wherever it succeeds; returns its success rate."""
    env = make_env(spec, **env_kwargs)
    try:
        ids = env.unwrapped.task_ids("test")[:episodes]
        results = [run_oracle(env, t) for t in ids]
    finally:
        env.close()
    success = float(np.mean([s for s, _ in results]))
    _ensure(success >= spec.oracle_min_success,
            f"{spec.name}: oracle success {success:.3f} < oracle_min_success {spec.oracle_min_success}")
    _ensure(all(p == 1.0 for s, p in results if s), f"{spec.name}: a successful oracle episode ended below progress 1")
    return success


#: The checks by name; each takes the spec and the env kwargs (``check(spec, **env_kwargs)``).
CHECKS: dict[str, Callable[..., Any]] = {
    "gym-api": check_gym_api,
    "info-and-splits": check_info_and_splits,
    "seeded-determinism": check_seeded_determinism,
    "snapshot-restore": check_snapshot_restore,
    "pickle-copy": lambda spec, **kw: check_copies(spec, "pickle", **kw),
    "deepcopy": lambda spec, **kw: check_copies(spec, "deepcopy", **kw),
    "garbage-actions": check_garbage_actions,
    "progress": check_progress,
}


def check_task(task: str | TaskSpec, oracle_episodes: int | None = 0, **env_kwargs: Any) -> list[str]:
    """Run every contract check on a registered task; returns the names of the checks passed.

    Args:
        task: a name, an id (``agentrm/Maze-v0``) or a :class:`TaskSpec` already registered.
        oracle_episodes: also run :func:`check_oracle` on that many test ids (``None``: all of them; ``0``,
            the default: skip it, it can take long on slow backends).
        **env_kwargs: constructor kwargs of every env the checks make, e.g. ``perturbation=3`` (a variant).

    Raises:
        ContractError: the first broken promise, named.
        MissingExtra: the task's backend is not installed (the message names the extra).
    """
    spec = task if isinstance(task, TaskSpec) else get_spec(task)
    require_extra(spec.name)
    passed = []
    for name, check in CHECKS.items():
        check(spec, **env_kwargs)
        passed.append(name)
    if oracle_episodes is None or oracle_episodes > 0:
        check_oracle(spec, oracle_episodes, **env_kwargs)
        passed.append("oracle")
    return passed
