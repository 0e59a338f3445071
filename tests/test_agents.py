"""Prompts, parsing, baseline policies, the transformers backend with the tiny model, the vllm guard."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agentrm_gym  # noqa: F401
from agentrm_gym.agents.factory import make_policy
from agentrm_gym.agents.parsing import parse_output
from agentrm_gym.agents.planners import Greedy
from agentrm_gym.agents.policy import (
    Generation,
    LLMPolicy,
    NoisyOraclePolicy,
    OraclePolicy,
    RandomPolicy,
)
from agentrm_gym.agents.prompts import END_EXAMPLE, START_EXAMPLE, PromptBuilder, render_plain, to_sharegpt
from agentrm_gym.agents.runner import oracle_trajectory
from agentrm_gym.core import MissingExtra
from agentrm_gym.trajectory import AgentState, Step

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(("text", "thought", "action"), [
    ("Thought: go down.\nAction: move down", "go down.", "move down"),
    ("Thought: a\nAction: move up\nObservation: x\nThought: b\nAction: move left\nmore", "b", "move left"),
    ("move right", "", "move right"),
    ("  Action:   check valid actions  ", "", "check valid actions"),
    ("Thought: only thinking", "only thinking", ""),
    ("", "", ""),
])
def test_parse_output(text, thought, action):
    assert parse_output(text) == (thought, action)


@pytest.fixture(scope="module")
def maze_traj():
    env = gym.make("agentrm/Maze-v0", split="test")
    traj = oracle_trajectory(env, "double_t-1-1")
    env.close()
    return traj


def test_prompt_layout_and_sharegpt(maze_traj):
    builder = PromptBuilder()
    msgs = builder.messages(maze_traj.state(upto=3))
    roles = [m["role"] for m in msgs]
    assert roles[:2] == ["user", "assistant"] and msgs[1]["content"] == "OK"
    assert all(a != b for a, b in zip(roles[:-1], roles[1:], strict=True)) and roles[-1] == "user"
    assert msgs[0]["content"].startswith("You are an expert maze solver")
    assert msgs[2]["content"].startswith(START_EXAMPLE)
    opening = next(m for m in msgs if END_EXAMPLE in m["content"])["content"]
    assert opening.index(END_EXAMPLE) < opening.index("Now it is your turn") < opening.index(maze_traj.goal)
    assert msgs[-1]["content"] == f"Observation: {maze_traj.steps[2].observation}"
    assert msgs[-2]["content"] == f"Thought: {maze_traj.steps[2].thought}\nAction: {maze_traj.steps[2].action}"
    rec = to_sharegpt(maze_traj, builder)
    conv = rec["conversations"]
    assert rec["id"] == "Maze_double_t-1-1" and conv[-1]["from"] == "gpt"
    assert conv[-1]["value"].startswith("Thought: I should move") and "\nAction: move " in conv[-1]["value"]
    assert {c["from"] for c in conv} == {"human", "gpt"}
    assert sum(c["from"] == "gpt" for c in conv) == 1 + len(builder.example("Maze").steps) + len(maze_traj.steps)


def test_prompt_cut_in_the_middle(maze_traj):
    state = AgentState("Maze", maze_traj.goal, maze_traj.observation,
                       tuple(Step(f"move {d}", f"obs {i} " + "x" * 50, thought="t")
                             for i, d in enumerate(["up", "down"] * 20)), "double_t-1-1", "Be a maze solver.")
    full = render_plain(PromptBuilder().messages(state))
    cut_builder = PromptBuilder(budget=len(full) // 2)
    msgs = cut_builder.messages(state)
    text = render_plain(msgs)
    assert len(text) <= len(full) // 2
    assert "Be a maze solver." in text and START_EXAMPLE in text and "obs 39" in text
    assert "obs 0 " not in text and "earlier turns omitted" in text
    assert maze_traj.goal in text
    tiny_budget = PromptBuilder(budget=600).messages(state)  # the example goes before the latest turn does
    assert START_EXAMPLE not in render_plain(tiny_budget) and "obs 39" in render_plain(tiny_budget)


def test_baseline_policies():
    env = gym.make("agentrm/Maze-v0", split="test")
    assert Greedy(OraclePolicy()).run(env, "double_t-1-1").trajectory.success
    rnd = RandomPolicy(seed=0)
    env.reset(options={"task_id": "double_t-1-1"})
    rnd.bind(env)
    state = AgentState("Maze", "g", "o")
    assert {p.action for p in rnd.propose(state, 40)} == {"move up", "move down", "move left", "move right"}
    a, b = NoisyOraclePolicy(0.5, seed=3), NoisyOraclePolicy(0.5, seed=3)
    a.bind(env)
    b.bind(env)
    assert [p.action for p in a.propose(state, 20)] == [p.action for p in b.propose(state, 20)]
    with pytest.raises(RuntimeError, match="bind"):
        OraclePolicy().propose(state)
    assert isinstance(make_policy("noisy:0.25"), NoisyOraclePolicy) and make_policy("random").name == "random"
    env.close()


def test_llm_policy_retries_outputs_without_action():
    class Flaky(LLMPolicy):
        calls = 0

        def generate(self, states, n, temperature):
            self.calls += 1
            text = "I am not sure" if self.calls == 1 else "Thought: ok\nAction: move up"
            return [[Generation(text, -1.0, 3) for _ in range(n)] for _ in states]

    state = AgentState("Maze", "g", "o", instruction="x")
    assert Flaky(builder=PromptBuilder(with_example=False)).propose(state)[0].action == "I am not sure"
    p = Flaky(builder=PromptBuilder(with_example=False), retries=2).propose(state, 2)
    assert [x.action for x in p] == ["move up", "move up"] and p[0].num_tokens == 6


def test_fuzzy_grounding_maps_near_misses_to_admissible_actions():
    class NearMiss(LLMPolicy):
        def generate(self, states, n, temperature):
            return [[Generation("Thought: buy it\nAction: click[B079 grene]", -1.0, 5)] * n for _ in states]

    admissible = ("click[< Prev]", "click[B0795GREEN]", "click[Buy Now]")
    state = AgentState("WebShop", "g", "o", admissible=admissible)
    raw = NearMiss(builder=PromptBuilder(with_example=False))
    assert raw.propose(state)[0].action == "click[B079 grene]"
    grounded = NearMiss(builder=PromptBuilder(with_example=False), grounding="fuzzy")
    prop = grounded.propose(state)[0]
    assert prop.action == "click[B0795GREEN]" and "grene" in prop.text
    # unknown admissible list: left as generated; admissible is metadata, not part of the state text
    assert grounded.propose(AgentState("WebShop", "g", "o"))[0].action == "click[B079 grene]"
    assert state.key() == AgentState("WebShop", "g", "o").key()
    with pytest.raises(ValueError, match="grounding"):
        NearMiss(grounding="nearest")


def test_planner_states_carry_admissible_actions():
    env = gym.make("agentrm/Maze-v0", split="test")
    seen = []

    class Spy(RandomPolicy):
        def propose(self, state, n=1, temperature=1.0):
            seen.append(state.admissible)
            return super().propose(state, n, temperature)

    Greedy(Spy(seed=0), max_steps=3).run(env, env.unwrapped.task_ids("test")[0])
    env.close()
    assert seen and all(a == ("move up", "move down", "move left", "move right") for a in seen)


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from agentrm_gym.agents.tiny import build_tiny_policy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = build_tiny_policy(tmp_path_factory.mktemp("tiny"), episodes=8, vocab_size=512)
    yield make_policy(str(path), seed=0, max_new_tokens=12, device="cpu")
    torch.set_num_threads(threads)


def test_tiny_model_directory_and_template(tiny_policy):
    tok, model = tiny_policy.tokenizer, tiny_policy.model
    assert model.config.n_layer == 2 and model.config.n_embd == 128
    assert tok.eos_token_id == model.config.eos_token_id and tok.pad_token_id == model.config.pad_token_id
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == render_plain(msgs, eos=tok.eos_token)
    assert tok.decode(tok("Action: move up")["input_ids"]) == "Action: move up"


def test_transformers_backend_batched_sampling(tiny_policy):
    env = gym.make("agentrm/Maze-v0", split="test", max_episode_steps=2)
    traj = Greedy(tiny_policy).run(env, "double_t-5-4", seed=0).trajectory
    states = [traj.state(upto=0), traj.state()]
    tiny_policy.seed(1)
    batch = tiny_policy.propose_batch(states, n=3, temperature=1.0)
    assert [len(r) for r in batch] == [3, 3]
    for row in batch:
        for p in row:
            assert np.isfinite(p.logprob) and p.logprob < 0 and 1 <= p.num_tokens <= 12
    tiny_policy.seed(1)
    assert tiny_policy.propose_batch(states, n=3, temperature=1.0) == batch  # seeded sampling
    greedy = tiny_policy.propose(states[0], n=2, temperature=0.0)
    assert greedy[0] == greedy[1]
    # the sequence log-prob is the model's: recompute it with a forward pass
    prompt = tiny_policy.prompts([states[0]])[0]
    tok, model = tiny_policy.tokenizer, tiny_policy.model
    sample = tiny_policy.engine.generate([prompt], 1, 1.0, 12)[0][0]
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    full = torch.cat([ids, torch.tensor([sample.token_ids])], dim=1)
    with torch.no_grad():
        logp = torch.log_softmax(model(full).logits[0, :-1].float(), -1)
    ref = sum(float(logp[ids.shape[1] - 1 + i, t]) for i, t in enumerate(sample.token_ids))
    assert sample.logprob == pytest.approx(ref, abs=1e-3)
    env.close()


def test_sft_lowers_assistant_loss(tiny_policy):
    from agentrm_gym.train.sft_trainer import encode_record, sft_train

    env = gym.make("agentrm/Maze-v0", split="train")
    recs = [to_sharegpt(oracle_trajectory(env, t), PromptBuilder(with_example=False))
            for t in env.unwrapped.task_ids("train")[:6]]
    ids, labels = encode_record(recs[0], tiny_policy.tokenizer, 4096)
    text = tiny_policy.tokenizer.decode([i for i, y in zip(ids, labels, strict=True) if y != -100])
    assert "Action: move" in text and "Observation" not in text and "You are an expert" not in text
    import copy

    model = copy.deepcopy(tiny_policy.model)
    losses = sft_train(model, tiny_policy.tokenizer, recs, steps=12, batch_size=2, lr=3e-3, max_length=192)
    assert np.mean(losses[-3:]) < 0.7 * losses[0]
    env.close()


def test_vllm_guard_and_request_building():
    from agentrm_gym.agents import vllm_backend

    if not vllm_backend.is_vllm_available():
        with pytest.raises(MissingExtra, match=r"agentrm-gym\[vllm\]"):
            make_policy("vllm:some/model")
    params = vllm_backend.sampling_params(4, 0.7, 32, seed=3)
    assert params == {"n": 4, "temperature": 0.7, "top_p": 1.0, "max_tokens": 32,
                      "stop": ["\n### ", "\nObservation:"], "seed": 3, "logprobs": 0}

    class Out:  # the shape of vllm's CompletionOutput / RequestOutput
        def __init__(self, text):
            self.text, self.cumulative_logprob, self.token_ids, self.finish_reason = text, -2.5, [1, 2], "stop"

    class Engine:
        sampling_params_class = dict

        def __init__(self):
            self.seen = None

        def get_tokenizer(self):
            return None

        def generate(self, prompts, params, use_tqdm=False):
            self.seen = (prompts, params)
            return [type("R", (), {"outputs": [Out("Thought: t\nAction: move up")] * params["n"]}) for _ in prompts]

    engine = Engine()
    pol = vllm_backend.VLLMPolicy("m", llm=engine, builder=PromptBuilder(with_example=False), seed=0)
    state = AgentState("Maze", "Reach it.", "You are at 1, 1.", instruction="Solve the maze.")
    props = pol.propose_batch([state, state], n=2, temperature=0.5)
    assert [[p.action for p in r] for r in props] == [["move up"] * 2] * 2 and props[0][0].logprob == -2.5
    prompts, params = engine.seen
    assert len(prompts) == 2 and prompts[0].endswith("### Assistant:\n") and "Solve the maze." in prompts[0]
    assert params["n"] == 2 and params["temperature"] == 0.5


def test_prompt_cut_step_keeps_a_cut_prompts_start_and_sft_records_follow_it():
    """With ``cut_step=4`` turns are left out four at a time, so most prompts extend the previous step's
    prompt; the SFT records are the prompts the next step's prompt does not extend."""
    from agentrm_gym.agents.prompts import CompactPromptBuilder
    from agentrm_gym.train.sft_stage import window_records
    from agentrm_gym.trajectory import Trajectory

    steps = tuple(Step(f"move {d}", f"obs {i} " + "x" * 40, thought="t") for i, d in enumerate(["up", "down"] * 15))
    traj = Trajectory(task="Maze", task_id="t", goal="reach the goal", observation="start", steps=steps)
    for cut_step in (1, 4):
        builder = CompactPromptBuilder(budget=900, cut_step=cut_step)
        prompts = [render_plain(builder.messages(traj.state(t))) for t in range(1, len(steps) + 1)]
        assert all(len(p) <= 900 for p in prompts) and all(f"obs {t} " in p for t, p in enumerate(prompts))
        dropped = [int(p.split("[... ")[1].split(" ")[0]) if "[... " in p else 0 for p in prompts]
        assert all(d % cut_step == 0 for d in dropped) and max(dropped) > 0
        extends = sum(nxt.startswith(p[:-len("### Assistant:\n")]) for p, nxt in zip(prompts[:-1], prompts[1:], strict=True))
        records = window_records([traj], builder)
        assert len(records) == len(steps) - extends and records[-1]["id"] == "Maze_t_29"
        assert all(r["conversations"][-1]["from"] == "gpt" for r in records)
        if cut_step == 4:
            assert extends > 0.6 * (len(steps) - 1) > len(records)
        else:
            assert extends < 0.5 * (len(steps) - 1)
    with pytest.raises(ValueError, match="cut_step"):
        PromptBuilder(cut_step=0)
