"""The trainers people already use, against the installed packages: TRL's GRPOTrainer (examples/
trl_grpo_agent.py), SkyRL-gym (agentrm_gym.rl.skyrl) and OpenRLHF's agent interface (agentrm_gym.rl.openrlhf).

Each part skips with a reason when its package is not installed: ``pip install 'agentrm-gym[skyrl]'``,
``pip install 'agentrm-gym[dev]'`` (trl), ``pip install --no-deps --target DIR openrlhf ...`` and ``PYTHONPATH=DIR`` (docs/rl_adapters.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agentrm_gym.core import MissingExtra
from agentrm_gym.extras import is_available

ROOT = Path(__file__).resolve().parents[1]
HAS_SKYRL = is_available("skyrl_gym")
skyrl_only = pytest.mark.skipif(not HAS_SKYRL, reason="skyrl-gym not installed: pip install 'agentrm-gym[skyrl]'")


def maze_train_ids(n):
    from agentrm_gym.registry import make

    env = make("Maze", split="train")
    try:
        return list(env.unwrapped.task_ids("train")[:n])
    finally:
        env.close()


def oracle_turns(env):
    """The oracle's actions of the env's current episode, as LLM outputs (played one by one)."""
    base = env.unwrapped
    while True:
        action = base.expert_action()
        if action is None:
            return
        yield f"Thought: follow the plan.\nAction: {action}"


def test_import_rl_imports_no_trainer_package():
    code = ("import sys, agentrm_gym.rl, agentrm_gym.rl.openrlhf; "
            "print(sorted(m for m in ('trl', 'skyrl_gym', 'openrlhf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ SkyRL
def test_skyrl_missing_extra_names_the_install_command(monkeypatch):
    import agentrm_gym.extras as extras
    from agentrm_gym.rl import skyrl

    monkeypatch.setattr(extras, "is_available", lambda m: m != "skyrl_gym")
    with pytest.raises(MissingExtra, match=r"pip install 'agentrm-gym\[skyrl\]'"):
        skyrl.require_skyrl_gym()


def test_skyrl_turn_rewarder_needs_no_skyrl():
    from agentrm_gym.rl.skyrl import TurnRewarder, settings

    with pytest.raises(ValueError, match="needs an RM spec"):
        settings(extras={"task": "Maze", "reward": "rm"})
    with pytest.raises(ValueError, match="not one of"):
        TurnRewarder("dense")
    with pytest.raises(ValueError, match="needs a task"):
        settings(extras={})


@skyrl_only
def test_skyrl_env_is_registered_and_plays_an_oracle_episode():
    import skyrl_gym
    from skyrl_gym.envs.base_text_env import BaseTextEnv

    import agentrm_gym.rl.skyrl as adapter

    assert adapter.ENV_CLASS in skyrl_gym.registry
    env = skyrl_gym.make("agentrm", env_config={}, extras={"task": "Maze", "task_id": "gen-378", "max_turns": 30})
    assert isinstance(env, BaseTextEnv)
    chat, meta = env.init([{"role": "system", "content": "be brief"}, {"role": "user", "content": "ignored"}])
    assert chat[0] == {"role": "system", "content": "be brief"} and chat[-1]["role"] == "user"
    assert meta["task_id"] == "gen-378" and "Task:" in chat[-1]["content"]
    start_progress = env.rewarder.progress
    rewards = []
    for turn in oracle_turns(env.env):
        out = env.step(turn)
        rewards.append(out["reward"])
        assert set(out) >= {"observations", "reward", "done", "metadata"}
        if out["done"]:
            break
        assert out["observations"][0]["role"] == "user"
        assert out["observations"][0]["content"].startswith("Observation:")
    assert out["done"] and out["observations"] == []
    metrics = env.get_metrics()
    assert metrics["success"] == 1.0 and metrics["turns"] == len(rewards)
    # progress deltas: one per turn, summing to the final progress gained
    assert sum(rewards) == pytest.approx(metrics["progress"] - start_progress)  # the progress deltas
    assert len({type(r) for r in rewards}) == 1 and isinstance(rewards[0], float)
    env.close()


@skyrl_only
def test_skyrl_rm_reward_is_outcome_plus_potential_shaping():
    import skyrl_gym

    values = {}

    def value(state):  # a potential that grows with the episode's length: shaping is visible on every turn
        values[len(state.steps)] = 0.1 * len(state.steps)
        return values[len(state.steps)]

    from agentrm_gym.rm import FunctionRewardModel

    rm = FunctionRewardModel(value)
    gamma, coef = 0.9, 2.0
    env = skyrl_gym.make("agentrm", env_config={"reward": "rm", "rm": rm, "gamma": gamma, "rm_coef": coef},
                         extras={"task": "Maze", "task_id": "gen-378", "max_turns": 3})
    env.init([])
    outs = [env.step(turn) for turn, _ in zip(oracle_turns(env.env), range(3), strict=False)]
    assert [o["done"] for o in outs] == [False, False, True]  # max_turns ends the episode
    for t, o in enumerate(outs):
        shaping = coef * (gamma * values[t + 1] - values[t])
        outcome = o["metadata"]["progress"] if o["done"] else 0.0
        assert o["reward"] == pytest.approx(outcome + shaping)
        assert o["metadata"]["shaping"] == pytest.approx(shaping)
    only = skyrl_gym.make("agentrm", env_config={"reward": "rm-only", "rm": rm},
                          extras={"task": "Maze", "task_id": "gen-378", "max_turns": 2})
    only.init([])
    steps = [only.step(turn) for turn, _ in zip(oracle_turns(only.env), range(2), strict=False)]
    assert sum(o["reward"] for o in steps) == pytest.approx(values[2] - values[0])  # telescopes, no outcome


@skyrl_only
@pytest.mark.parametrize("reward", ["success", "outcome", "heuristic"])
def test_skyrl_sparse_rewards_pay_at_the_end(reward):
    import skyrl_gym

    env = skyrl_gym.make("agentrm", extras={"task": "Maze", "task_id": "gen-378", "reward": reward, "max_turns": 40})
    env.init([])
    outs = []
    for turn in oracle_turns(env.env):
        outs.append(env.step(turn))
        if outs[-1]["done"]:
            break
    assert outs[-1]["metadata"]["success"]
    if reward == "heuristic":  # repeats cost 0.05 each, the outcome comes last
        assert all(o["reward"] <= 0 for o in outs[:-1]) and outs[-1]["reward"] > 0.5
    else:
        assert [o["reward"] for o in outs] == [0.0] * (len(outs) - 1) + [1.0]


@skyrl_only
def test_skyrl_dataset_rows_round_trip_and_pickle():
    import skyrl_gym

    from agentrm_gym.rl import skyrl as adapter

    ids = maze_train_ids(2)
    rows = adapter.dataset_rows("Maze", task_ids=ids, reward="outcome", rm_coef=0.5)
    assert [r["task_id"] for r in rows] == ids and rows[0]["env_class"] == "agentrm"
    row = rows[1]
    extras = {k: v for k, v in row.items() if k not in ("prompt", "env_class")}
    env = skyrl_gym.make(row["env_class"], env_config={}, extras={**extras, "max_turns": 5})
    chat, _ = env.init(row["prompt"])
    assert chat == row["prompt"] and env.settings["rm_coef"] == 0.5
    cls = pickle.loads(pickle.dumps(adapter.AgentRMTextEnv))
    assert cls is adapter.AgentRMTextEnv
    with pytest.raises(ValueError, match="unknown settings"):
        adapter.dataset_rows("Maze", task_ids=ids, temperature=1.0)


# ------------------------------------------------------------------------------------------------ TRL
def _load_example():
    spec = importlib.util.spec_from_file_location("trl_grpo_agent", ROOT / "examples" / "trl_grpo_agent.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _example_with_trl():
    """The example module, or a skip when TRL (with rollout_func and env_mask) is not installed."""
    pytest.importorskip("trl", reason="trl not installed: pip install 'agentrm-gym[dev]'")
    ex = _load_example()
    try:
        ex.require_trl()
    except MissingExtra as exc:
        pytest.skip(str(exc))
    return ex


def test_trl_rollout_func_masks_env_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path / "cache"))
    ex = _example_with_trl()
    from agentrm_gym.agents.tiny import build_tiny_parts

    model, tok, _ = build_tiny_parts(("Maze",), episodes=4)
    args = ex.Args(task_ids=2, max_turns=3, max_turn_tokens=6, with_example=False)
    _, prompt_task = ex.build_dataset(args, tok)

    class Trainer:  # what rollout_func reads of the trainer
        class accelerator:  # noqa: N801
            unwrap_model = staticmethod(lambda m: m)

    Trainer.model = model
    rollout = ex.AgentRollout(args, prompt_task, tok, ex.load_rm(args))
    prompts = [p for p in prompt_task for _ in range(2)]
    out = rollout(prompts, Trainer())
    rollout.close()
    assert set(out) >= {"prompt_ids", "completion_ids", "logprobs", "env_mask", "outcome", "rm_return"}
    for prompt, ids, comp, mask, logps, turns in zip(prompts, out["prompt_ids"], out["completion_ids"],
                                                     out["env_mask"], out["logprobs"], out["turns"], strict=True):
        assert tok.decode(ids) == prompt
        assert len(comp) == len(mask) == len(logps) and comp[-1] == tok.eos_token_id
        assert mask[0] == 1 and 1 <= turns <= 3
        env_text = tok.decode([t for t, m in zip(comp, mask, strict=True) if m == 0])
        assert env_text.count("Observation:") == turns - 1 or env_text.count("Observation:") == turns
        assert all(x == 0.0 for x, m in zip(logps, mask, strict=True) if m == 0)
    assert all(np.isfinite(out["rm_return"])) and all(0.0 <= x <= 1.0 for x in out["outcome"])


@pytest.mark.timeout(600)
def test_trl_grpo_agent_example_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path / "cache"))
    ex = _example_with_trl()
    args = ex.Args(steps=1, num_generations=2, task_ids=2, max_turns=2, max_turn_tokens=6, sft_steps=0,
                   out=str(tmp_path / "run"))
    result = ex.main(args=args)
    assert result["out"] == str(tmp_path / "run")
    assert "rewards/outcome_reward/mean" in result and "rewards/rm_return_reward/mean" in result
    assert "env/success" in result


# ------------------------------------------------------------------------------------------------ OpenRLHF
def _require_openrlhf():
    from agentrm_gym.rl.openrlhf import INSTALL, require_openrlhf

    target = os.environ.get("AGENTRM_OPENRLHF_PATH")  # `make test` installs it there (--no-deps --target)
    if target and os.path.isdir(target) and target not in sys.path:
        sys.path.append(target)
    try:
        return require_openrlhf()
    except MissingExtra:
        pytest.skip(f"openrlhf's agent interface does not import here ({INSTALL})")


def test_openrlhf_missing_names_the_no_deps_install(monkeypatch):
    import agentrm_gym.rl.openrlhf as adapter

    monkeypatch.setattr(adapter, "is_available", lambda m: False)
    with pytest.raises(MissingExtra, match="--no-deps --target DIR openrlhf"):
        adapter.require_openrlhf()


def test_openrlhf_agent_instance_steps_with_rewards():
    agent = _require_openrlhf()
    from agentrm_gym.rl.openrlhf import make_agent_instance_class

    cls = make_agent_instance_class("Maze", reward="heuristic", max_turns=40)
    assert issubclass(cls, agent.AgentInstanceBase)
    agent.MultiTurnAgentExecutor(cls)  # OpenRLHF's own check of the class
    inst = cls()

    async def play():
        first = await inst.reset({"observation": "ignored", "label": "Maze:gen-378"})
        assert "gen-378" == inst.state.task_id and first["observation"].endswith("### Assistant:\n")
        results = []
        for turn in oracle_turns(inst.env):
            results.append(await inst.step({"observation_text": "", "action_text": turn, "label": "gen-378"}))
            if results[-1]["done"]:
                return results
        return results

    results = asyncio.run(play())
    assert results[-1]["done"] and float(results[-1]["scores"]) == 1.0
    assert all(r["environment_feedback"].startswith("\n\n### User:\nObservation:") for r in results[:-1])
    assert results[-1]["environment_feedback"] == ""
    shaping = [float(r["extra_logs"]["shaping"]) for r in results]
    assert sum(float(r["rewards"]) for r in results) == pytest.approx(1.0 + sum(shaping))  # outcome + shaping
    assert all(x <= 0 for x in shaping)  # the heuristic potential only ever charges repeats


def test_openrlhf_multi_turn_executor_sums_step_rewards():
    """OpenRLHF's own MultiTurnAgentExecutor drives the adapter; a fake engine plays the oracle's turns."""
    from types import SimpleNamespace

    agent = _require_openrlhf()
    pytest.importorskip("tokenizers")
    from agentrm_gym.agents.tiny import EOS, oracle_episodes, train_tokenizer
    from agentrm_gym.rl.openrlhf import make_agent_instance_class

    traj = oracle_episodes(("Maze",), episodes=1)[0]
    tok = train_tokenizer([f"Thought: go.\nAction: {s.action}{EOS}" for s in traj.steps] * 4, vocab_size=300)
    turns = [f"Thought: go.\nAction: {s.action}" for s in traj.steps]

    class Engine:  # vLLM's async generate, as the executor calls it
        def __init__(self):
            self.calls = 0

        async def generate(self, prompt_ids, sampling_params, multi_modal_data=None):
            text = turns[self.calls]
            self.calls += 1
            ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            return SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids, text=text, finish_reason="stop")])

    cls = make_agent_instance_class("Maze", reward="progress", max_turns=len(turns))
    executor = agent.MultiTurnAgentExecutor(cls)
    params = SimpleNamespace(max_tokens=64, logprobs=None)
    out = asyncio.run(executor.execute("ignored", f"Maze:{traj.task_id}", params, 100000, tok, Engine()))
    assert out["reward"] == pytest.approx(traj.progress - _start_progress(traj))  # the progress deltas, summed
    assert float(out["scores"]) == traj.progress == 1.0
    assert len(out["action_ranges"]) == len(turns)


def _start_progress(traj):
    from agentrm_gym.registry import make

    env = make("Maze", split="train")
    try:
        return float(env.reset(options={"task_id": traj.task_id})[1]["progress"])
    finally:
        env.close()
