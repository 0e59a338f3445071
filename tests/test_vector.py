"""Vector envs: async ``make_vec`` matches sync (Text shared memory), SB3's ``make_vec_env``, ``rgb_array``."""

from __future__ import annotations

import copy
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

import agentrm_gym  # noqa: F401  (registers the ids)
from agentrm_gym.core import CHECK_VALID_ACTIONS
from agentrm_gym.spaces import SharedTextBatch, TextSpace
from tests.conftest import require_task, spec_params

N_ENVS = 2
STEPS = 10


def _pick(infos: dict, i: int, t: int) -> str:
    """A deterministic admissible action of env ``i`` at step ``t`` (the meta-action when none is listed)."""
    acts = infos.get("admissible_actions")
    mask = infos.get("_admissible_actions")
    listed = acts[i] if acts is not None and (mask is None or mask[i]) else None
    listed = [a for a in (listed or []) if a.strip().lower() != CHECK_VALID_ACTIONS]
    return listed[(3 * t + i) % len(listed)] if listed else CHECK_VALID_ACTIONS


def _rollout(env_id: str, mode: str, actions: list[list[str]] | None = None, **vector_kwargs) -> tuple[list, list]:
    """``(trace, actions)``: per step the observations, progress, rewards, terminations and admissible lists.

    With ``actions`` given they are played; otherwise they are picked from the infos (and returned).
    """
    venv = gym.make_vec(env_id, N_ENVS, vectorization_mode=mode, vector_kwargs=vector_kwargs or None)
    trace, played = [], []
    try:
        obs, infos = venv.reset(seed=0)
        trace.append((tuple(obs), tuple(float(p) for p in infos["progress"])))
        for t in range(STEPS):
            step = actions[t] if actions is not None else [_pick(infos, i, t) for i in range(N_ENVS)]
            played.append(step)
            obs, rew, term, trunc, infos = venv.step(step)
            admissible = tuple(
                tuple(a) if a is not None else None for a in infos.get("admissible_actions", [None] * N_ENVS)
            )
            trace.append((
                tuple(obs), tuple(float(p) for p in infos["progress"]), tuple(rew.tolist()),
                tuple(term.tolist()), tuple(trunc.tolist()), admissible,
            ))
    finally:
        venv.close()
    return trace, played


@pytest.mark.parametrize("spec", spec_params())
def test_async_make_vec_matches_sync(spec) -> None:
    require_task(spec)
    sync, actions = _rollout(spec.env_id, "sync")
    async_, _ = _rollout(spec.env_id, "async", actions=actions)
    for t, (s, a) in enumerate(zip(sync, async_, strict=True)):
        for o in a[0]:
            assert isinstance(o, str)
            assert len(o) < 100_000, f"step {t}: an async observation of {len(o)} characters (shared-memory bug)"
        assert a == s, f"{spec.env_id}: async and sync differ at step {t}"
    # the sync observations are the single env's own
    single = gym.make(spec.env_id)
    try:
        first, _ = single.reset(seed=0)
    finally:
        single.close()
    assert sync[0][0][0] == first


def test_async_without_shared_memory_and_spawn_match_sync() -> None:
    sync, actions = _rollout("agentrm/Maze-v0", "sync")
    assert _rollout("agentrm/Maze-v0", "async", actions=actions, shared_memory=False)[0] == sync
    # a spawned worker imports agentrm_gym (and so the shared-memory handlers) before it writes
    assert _rollout("agentrm/Maze-v0", "async", actions=actions, context="spawn")[0] == sync


def test_async_copy_false_is_a_live_view() -> None:
    venv = gym.make_vec("agentrm/Maze-v0", N_ENVS, vectorization_mode="async", vector_kwargs={"copy": False})
    try:
        obs, infos = venv.reset(seed=0)
        assert isinstance(obs, SharedTextBatch)
        first = obs.snapshot()
        venv.step([_pick(infos, i, 0) for i in range(N_ENVS)])
        assert obs.snapshot() != first  # the view follows the step (Maze answers every move)
    finally:
        venv.close()


def test_text_shared_memory_round_trip() -> None:
    space = TextSpace(max_length=32)
    memory = create_shared_memory(space, n=3)
    view = read_from_shared_memory(space, memory, n=3)
    texts = ["héllo\nworld \U0001f389", "lone \udc80 surrogate", ""]
    for i, text in enumerate(texts):
        write_to_shared_memory(space, i, text, memory)
    assert tuple(view) == tuple(texts) and view == texts
    assert copy.deepcopy(view) == tuple(texts) and isinstance(copy.deepcopy(view), tuple)
    assert view[-1] == "" and view[0:2] == tuple(texts[:2]) and len(view) == 3
    write_to_shared_memory(space, 0, "short", memory)  # a shorter text leaves no tail of the longer one
    assert view[0] == "short"
    with pytest.raises(ValueError, match="max_length"):
        write_to_shared_memory(space, 1, "x" * 33, memory)
    with pytest.raises(IndexError):
        view[3]


def test_rgb_array_render_mode_is_accepted_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="cannot render 'rgb_array'"):
        env = gym.make("agentrm/Maze-v0", render_mode="rgb_array")
    try:
        assert env.unwrapped.render_mode is None
        obs, _ = env.reset(seed=0)
        assert obs in env.render()
        from gymnasium.utils.env_checker import check_env

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()
    with pytest.raises(ValueError, match="render_mode must be one of"):
        gym.make("agentrm/Maze-v0", render_mode="depth_array")


def test_sb3_make_vec_env() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env
    from stable_baselines3.common.env_util import make_vec_env

    from agentrm_gym.wrappers.sb3 import adapt_for_sb3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rgb_array warnings: make_vec_env asks every env for rgb_array
        # the raw text env: SB3's make_vec_env builds it (it used to fail on render_mode="rgb_array") ...
        raw = gym.make("agentrm/Maze-v0", render_mode="rgb_array")
        raw.close()
        # ... but SB3's VecEnvs need Box/Discrete observations, so the project's adapters go in wrapper_class
        venv = make_vec_env(
            "agentrm/Maze-v0", n_envs=N_ENVS, seed=0, wrapper_class=adapt_for_sb3,
            wrapper_kwargs={"max_actions": 8, "feature_dim": 64},
        )
    try:
        check_env(venv.envs[0], warn=True, skip_render_check=True)
        obs = venv.reset()
        assert obs.shape == (N_ENVS, 64) and obs.dtype == np.float32
        masks = np.stack(venv.env_method("action_masks"))
        assert masks.shape == (N_ENVS, 8) and masks.any(axis=1).all()
        for _ in range(3):
            actions = np.array([int(np.flatnonzero(m)[0]) for m in np.stack(venv.env_method("action_masks"))])
            obs, rewards, dones, infos = venv.step(actions)
            assert obs.shape == (N_ENVS, 64) and rewards.shape == (N_ENVS,) and len(infos) == N_ENVS
            assert all("progress" in info for info in infos)
    finally:
        venv.close()
