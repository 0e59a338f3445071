"""Multi-turn GRPO with TRL's ``GRPOTrainer`` on an agentrm env, rewarded by the outcome and an RM's return.

Quick start (CPU, under 5 minutes: builds the tiny SFT policy, then a few GRPO steps on Maze)::

    python examples/trl_grpo_agent.py
    python examples/trl_grpo_agent.py --run runs/demo --task Maze --steps 50 --rm runs/demo

Needs ``pip install 'agentrm-gym[llm,dev]'``: a TRL whose ``GRPOTrainer`` takes ``rollout_func`` and reads
``env_mask`` (checked at start; tested with TRL 1.13).

How it works:

* **Dataset**: one row per train task id; the ``prompt`` is the project's prompt of the task's first state
  (:class:`~agentrm_gym.agents.prompts.PromptBuilder`, the one evaluation uses), so a row names its task id.
* **rollout_func(prompts, trainer)**: TRL hands it the prompts of a generation batch, each repeated
  ``num_generations`` times (a GRPO group). Each one plays one episode with the trainer's current weights
  (the project's KV-cache sampler, all live episodes of a turn in one batch): the policy writes a turn
  ("Thought: ...\\nAction: ...", end of turn), the env answers, the observation is appended in the chat
  format, and so on for ``max_turns`` turns or to the end of the episode. The completion is every token
  after the prompt: ``env_mask`` is 1 on the policy's tokens and 0 on the env's, so the GRPO loss and the
  KL only see what the policy wrote.
* **Rewards**: ``outcome_reward`` is the final progress (1 on success); ``rm_return_reward`` is the RM's
  potential-based shaping summed over the turns, ``sum_t gamma^t (gamma V(s_{t+1}) - V(s_t))``, which for
  ``gamma = 1`` is ``V(s_T) - V(s_0)``. TRL sums them with ``reward_weights = [1, rm_coef]`` and takes
  group-relative advantages ``(r - mean_group) / std_group``, one per episode, spread over its tokens.
  GRPO has one scalar per rollout, so a per-turn reward has to be summed here; a trainer that credits each
  turn (SkyRL's per-step rewards, :mod:`agentrm_gym.rl.skyrl`) keeps it per turn.
* **Logs**: TRL's (``reward``, ``rewards/<func>/mean``, ``kl``, ``entropy``, ``completions/mean_length``
  counts the policy's tokens only) plus ``env/success`` and ``env/turns``, in TensorBoard under the run
  directory ``runs/{task}__trl-grpo__{seed}__{time}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: TRL prints a warning about ``rollout_func`` being experimental on every trainer; it is known here.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@dataclass
class Args:
    """The example's settings; each field is a ``--flag`` of the CLI (help text in ``metadata``)."""

    task: str = field(default="Maze", metadata={"help": "task name (a registered agentrm task)"})
    run: str | None = field(default=None, metadata={
        "help": "a pipeline run directory (its sft/policy and rm/) or a Hugging Face policy directory; "
                "none: build the tiny SFT policy"})
    rm: str | None = field(default=None, metadata={
        "help": "RM spec (directory, run, URL, python:module:attr) or 'heuristic' (fewer repeated actions); "
                "none: the run's rm/ when there is one, else 'heuristic'"})
    rm_coef: float = field(default=1.0, metadata={"help": "weight of the RM return beside the outcome"})
    gamma: float = field(default=1.0, metadata={"help": "discount of the RM's potential shaping"})
    steps: int = field(default=3, metadata={"help": "GRPO optimizer steps"})
    num_generations: int = field(default=4, metadata={"help": "episodes per task id (a GRPO group)"})
    task_ids: int = field(default=8, metadata={"help": "train task ids in the dataset"})
    max_turns: int = field(default=4, metadata={"help": "turns per episode (at most the env's budget)"})
    max_turn_tokens: int = field(default=32, metadata={"help": "new tokens per turn"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate"})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient to the initial policy (0: no reference)"})
    sft_steps: int = field(default=16, metadata={"help": "SFT steps of the tiny policy built without --run"})
    with_example: bool | None = field(default=None, metadata={
        "help": "the one-shot oracle example in prompts; default: with --run only"})
    seed: int = field(default=0, metadata={"help": "seed of the policy, the task ids and the sampling"})
    out: str | None = field(default=None, metadata={
        "help": "output directory; default runs/{task}__trl-grpo__{seed}__{time}"})


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> Args:
    """:class:`Args` from the command line (one ``--flag`` per field, its help from the field)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(Args):
        kind = {"int": int, "float": float, "bool": _flag}.get(str(f.type).split(" ")[0], str)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default, help=f.metadata["help"])
    return Args(**vars(parser.parse_args(argv)))


# ---------------------------------------------------------------------------------------------- policy and RM
def load_policy(args: Args) -> tuple[Any, Any]:
    """``(model, tokenizer)``: the run's SFT policy, a policy directory, or the tiny policy built on the spot."""
    from agentrm_gym.agents.hf import load_model

    if args.run:
        run = Path(args.run)
        path = run / "sft" / "policy" if (run / "sft" / "policy" / "config.json").exists() else run
        return load_model(str(path), device="cpu")
    return load_model(str(tiny_sft_policy(args)), device="cpu")


def tiny_sft_policy(args: Args) -> Path:
    """The tiny policy (:mod:`agentrm_gym.agents.tiny`) SFT'd ``sft_steps`` steps on oracle episodes in the
    prompts of this run (no one-shot example unless ``with_example``), built once into the cache."""
    import shutil

    from agentrm_gym.agents.prompts import PromptBuilder, to_sharegpt
    from agentrm_gym.agents.tiny import build_tiny_parts, save_policy
    from agentrm_gym.files import cache_dir
    from agentrm_gym.train.sft_trainer import sft_train

    root = cache_dir("models")
    final = root / f"tiny-{args.task}-sft{args.sft_steps}-ex{int(with_example(args))}-s{args.seed}"
    if (final / "config.json").exists():
        return final
    model, tokenizer, trajs = build_tiny_parts((args.task,), episodes=20, seed=args.seed)
    if args.sft_steps > 0:
        builder = PromptBuilder(with_example=with_example(args))
        records = [to_sharegpt(t, builder) for t in trajs]  # cut to the last 768 tokens: the turns, at half the cost
        sft_train(model, tokenizer, records, steps=args.sft_steps, max_length=768, seed=args.seed)
    tmp = root / f".building-{final.name}-{os.getpid()}"
    save_policy(model, tokenizer, tmp)
    try:
        os.rename(tmp, final)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def with_example(args: Args) -> bool:
    """Whether prompts carry the one-shot example: as set, else with a run's policy (the pipeline SFTs with
    it) and without for the tiny policy (prompts half as long)."""
    return bool(args.run) if args.with_example is None else args.with_example


def load_rm(args: Args) -> Any:
    """The RM whose values shape the return (see :class:`Args` ``rm``)."""
    from agentrm_gym.rm import make_reward_model
    from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel

    spec = args.rm
    if spec is None and args.run and (Path(args.run) / "rm" / "agentrm_rm.json").exists():
        spec = args.run
    if spec in (None, "heuristic"):
        return FewerRepeatsRewardModel(scale=0.05)
    return make_reward_model(spec)


# ---------------------------------------------------------------------------------------------- rollouts
@dataclass
class Episode:
    """One rollout: the tokens after the prompt, which of them the policy wrote, and the agent state."""

    env: Any
    state: Any
    context: list[int]
    prompt_len: int
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, ids: list[int], logprobs: list[float], by_policy: bool) -> None:
        self.context += ids
        self.logprobs += logprobs
        self.env_mask += [int(by_policy)] * len(ids)

    @property
    def completion(self) -> list[int]:
        return self.context[self.prompt_len:]


def cut_at_stop(tokenizer: Any, ids: list[int], stop: tuple[str, ...]) -> list[int]:
    """The longest prefix of ``ids`` whose text holds none of ``stop`` (the sampler keeps the stop's tokens)."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if not any(s in text for s in stop):
        return ids
    for k in range(1, len(ids) + 1):
        if any(s in tokenizer.decode(ids[:k], skip_special_tokens=True) for s in stop):
            return ids[: k - 1]
    return ids


def feedback_text(messages: list[dict[str, str]], turn: str, observation: str, tokenizer: Any) -> str:
    """What the chat template writes after the policy's ``turn``: end of turn, the observation, the next
    assistant header (the difference of two renderings, so any template that appends turns works)."""
    from agentrm_gym.agents.prompts import render

    before = render(messages, tokenizer) + turn
    after = render([*messages, {"role": "assistant", "content": turn},
                    {"role": "user", "content": f"Observation: {observation.strip()}"}], tokenizer)
    if not after.startswith(before):  # a template that rewrites earlier turns: end the turn, then the observation
        return f"{tokenizer.eos_token}\n\nObservation: {observation.strip()}\n\n"
    return after[len(before):]


class AgentRollout:
    """TRL's ``rollout_func``: plays each prompt's task id multi-turn (see the module docstring).

    Args:
        args: the settings (task, turns, tokens per turn, temperature, RM shaping).
        prompt_task: prompt text -> task id (the dataset's rows).
        tokenizer: the policy's tokenizer; rm: the shaping RM (``.score(states)``).
    """

    def __init__(self, args: Args, prompt_task: dict[str, str], tokenizer: Any, rm: Any):
        self.args = args
        self.prompt_task = prompt_task
        self.tokenizer = tokenizer
        self.rm = rm
        self.envs: list[Any] = []

    def _env(self, i: int) -> Any:
        from agentrm_gym.registry import make

        while len(self.envs) <= i:
            self.envs.append(make(self.args.task, split="train"))
        return self.envs[i]

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list[Any]]:
        from agentrm_gym.agents.prompts import STOP_STRINGS, PromptBuilder
        from agentrm_gym.agents.runner import initial_state, step_record

        tok = self.tokenizer
        builder = PromptBuilder(with_example=with_example(self.args))
        episodes = []
        for i, prompt in enumerate(prompts):
            env = self._env(i)
            obs, info = env.reset(seed=self.args.seed, options={"task_id": self.prompt_task[prompt]})
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            episodes.append(Episode(env, initial_state(env, obs, info), list(ids), len(ids), info=info))
        model = trainer.accelerator.unwrap_model(trainer.model)
        context_limit = int(getattr(model.config, "n_positions", 0) or getattr(model.config, "max_position_embeddings",
                                                                                2048))
        was_training = model.training
        model.eval()
        try:
            for _ in range(self.args.max_turns):
                live = [e for e in episodes if not e.done]
                if not live:
                    break
                self._turn(model, live, builder, STOP_STRINGS, context_limit, step_record)
        finally:
            model.train(was_training)
        for e in episodes:  # a completion ends with the end of a turn, so TRL does not count it as truncated
            if not e.completion or e.completion[-1] != tok.eos_token_id:
                e.add([tok.eos_token_id], [0.0], by_policy=False)
        return {
            "prompt_ids": [e.context[: e.prompt_len] for e in episodes],
            "completion_ids": [e.completion for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "env_mask": [e.env_mask for e in episodes],
            "outcome": [float(e.info.get("progress", 0.0)) for e in episodes],
            "success": [float(bool(e.info.get("success", False))) for e in episodes],
            "turns": [len(e.state.steps) for e in episodes],
            "rm_return": self._rm_returns([e.state for e in episodes]),
        }

    def _turn(self, model: Any, live: list[Episode], builder: Any, stop: tuple[str, ...], context_limit: int,
              step_record: Any) -> None:
        from agentrm_gym.agents.parsing import parse_output
        from agentrm_gym.agents.sampling import sample_continuations

        tok = self.tokenizer
        samples = sample_continuations(model, tok, [e.context for e in live], 1, self.args.temperature,
                                       self.args.max_turn_tokens, stop=stop, counts=[1] * len(live))
        for e, (sample,) in zip(live, samples, strict=True):
            ids = cut_at_stop(tok, sample.token_ids, stop)
            logps = sample.token_logprobs[: len(ids)]
            ended = sample.stopped and len(ids) == len(sample.token_ids)  # the policy wrote end-of-turn itself
            if ended:  # its log-prob is not kept by the sampler: NaN is TRL's "not scored" (no correction)
                ids, logps = [*ids, tok.eos_token_id], [*logps, float("nan")]
            e.add(ids, logps, by_policy=True)
            turn = tok.decode(ids, skip_special_tokens=True)
            thought, action = parse_output(turn)
            messages = builder.messages(e.state)
            obs, reward, term, trunc, info = e.env.step(action)
            e.state = e.state.extend(step_record(thought, action, obs, reward, info))
            e.info = info
            text = feedback_text(messages, turn, obs, tok)
            if ended and text.startswith(tok.eos_token):
                text = text[len(tok.eos_token):]
            feedback = tok(text, add_special_tokens=False)["input_ids"]
            e.done = bool(term or trunc) or len(e.context) + len(feedback) + self.args.max_turn_tokens >= context_limit
            if not e.done:
                e.add(feedback, [0.0] * len(feedback), by_policy=False)

    def _rm_returns(self, states: list[Any]) -> list[float]:
        """``sum_t gamma^t (gamma V(s_{t+1}) - V(s_t))`` of each episode, all its states scored in one call."""
        import numpy as np

        from agentrm_gym.trajectory import AgentState

        prefixes = [AgentState(s.task, s.goal, s.observation, s.steps[:k], s.task_id, s.instruction)
                    for s in states for k in range(len(s.steps) + 1)]
        values = np.asarray(self.rm.score(prefixes), dtype=np.float64).reshape(-1)
        out, start, g = [], 0, self.args.gamma
        for s in states:
            v = values[start:start + len(s.steps) + 1]
            start += len(s.steps) + 1
            out.append(float(sum(g ** t * (g * v[t + 1] - v[t]) for t in range(len(s.steps)))))
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ---------------------------------------------------------------------------------------------- rewards
def outcome_reward(completions: list[Any], outcome: list[float], success: list[float] | None = None,
                   turns: list[int] | None = None, log_metric: Any = None, **_: Any) -> list[float]:
    """The episode's final progress (1 on success): what LLM-RL trainers reward today."""
    if log_metric is not None and success is not None:
        log_metric("env/success", sum(success) / max(1, len(success)))
        log_metric("env/turns", sum(turns or [0]) / max(1, len(turns or [0])))
    return [float(x) for x in outcome]


def rm_return_reward(completions: list[Any], rm_return: list[float], **_: Any) -> list[float]:
    """The RM's potential-based shaping summed over the episode's turns (see the module docstring)."""
    return [float(x) for x in rm_return]


# ---------------------------------------------------------------------------------------------- main
def build_dataset(args: Args, tokenizer: Any) -> tuple[Any, dict[str, str]]:
    """``(dataset with a "prompt" column, prompt -> task id)`` over the first ``task_ids`` train task ids."""
    from datasets import Dataset

    from agentrm_gym.agents.prompts import PromptBuilder
    from agentrm_gym.agents.runner import initial_state
    from agentrm_gym.registry import make

    builder = PromptBuilder(with_example=with_example(args))
    env = make(args.task, split="train")
    prompt_task: dict[str, str] = {}
    try:
        for task_id in env.unwrapped.task_ids("train")[: args.task_ids]:
            obs, info = env.reset(seed=args.seed, options={"task_id": task_id})
            prompt_task.setdefault(builder.prompt(initial_state(env, obs, info), tokenizer), task_id)
    finally:
        env.close()
    return Dataset.from_dict({"prompt": list(prompt_task)}), prompt_task


def require_trl() -> Any:
    """``trl``, checked for the multi-turn hooks: ``GRPOTrainer(rollout_func=...)`` and the ``env_mask`` field
    (read from TRL's source: a TRL that lacks it would train on the env's tokens)."""
    import inspect

    from agentrm_gym.core import MissingExtra
    from agentrm_gym.extras import require_extra

    trl = require_extra(("trl", "datasets"), "dev", "examples/trl_grpo_agent.py")
    from trl.trainer import grpo_trainer

    if "rollout_func" not in inspect.signature(trl.GRPOTrainer.__init__).parameters or \
            "env_mask" not in inspect.getsource(grpo_trainer):
        raise MissingExtra(f"examples/trl_grpo_agent.py needs a TRL whose GRPOTrainer takes rollout_func and "
                           f"env_mask (trl {trl.__version__} does not): pip install -U 'trl<1.14'")
    return trl


def main(argv: list[str] | None = None, args: Args | None = None) -> dict[str, Any]:
    """Run GRPO; returns the final log entry plus ``out`` and ``seconds``."""
    import torch

    import agentrm_gym  # noqa: F401  (registers the envs)
    from agentrm_gym.extras import is_available

    trl = require_trl()
    GRPOConfig, GRPOTrainer = trl.GRPOConfig, trl.GRPOTrainer  # noqa: N806

    args = args or parse_args(argv)
    start = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out = Path(args.out or f"runs/{args.task}__trl-grpo__{args.seed}__{int(start)}")
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_policy(args)
    dataset, prompt_task = build_dataset(args, tokenizer)
    rollout = AgentRollout(args, prompt_task, tokenizer, load_rm(args))
    config = GRPOConfig(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.num_generations,
        num_generations=args.num_generations, learning_rate=args.learning_rate, beta=args.beta,
        temperature=args.temperature, reward_weights=[1.0, args.rm_coef], logging_steps=1, save_strategy="no",
        report_to=["tensorboard"] if is_available("tensorboard") else "none",
        use_cpu=True, bf16=False, seed=args.seed, dataloader_num_workers=0, disable_tqdm=False,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[outcome_reward, rm_return_reward], args=config,
                          train_dataset=dataset, processing_class=tokenizer, rollout_func=rollout)
    try:
        trainer.train()
    finally:
        rollout.close()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    result = {**(logs[-1] if logs else {}), "out": str(out), "seconds": round(time.time() - start, 1)}
    print(f"done in {result['seconds']} s: reward {result.get('reward')}, success {result.get('env/success')}, "
          f"run directory {out}")
    return result


if __name__ == "__main__":
    main()
