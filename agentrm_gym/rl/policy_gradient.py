"""The multi-turn policy-gradient trainer of the causal-LM policy, with per-turn rewards (issue 22).

**Rollouts.** Each iteration takes ``groups`` train task ids and plays ``group_size`` episodes of each, all
in lockstep: one batched call of the policy's sampler a step (:class:`~agentrm_gym.agents.hf.HFGenerator`,
the KV-cache sampler of evaluation; identical prompts are encoded once; a GPT-2 policy decodes with the
fused step of :mod:`~agentrm_gym.agents.decode` unless ``fused_decode`` is off), through the policy's own prompt
builder (the pipeline's :class:`~agentrm_gym.agents.prompts.CompactPromptBuilder` for a run's SFT policy) and
parser. Every turn keeps its prompt token ids, its completion token ids and their log-probs under the
sampling policy (the "old" log-probs of the PPO ratio).

**Rewards and credit** (:mod:`agentrm_gym.rl.rewards`): the spec's per-turn rewards, scaled by the running
std of episode returns and clipped (PPO-max), the returns-to-go ``G_t``, and ``A_t = G_t - mean_group(G_0)``
(the group of an episode: the rollouts of its task id). ``A_t`` is given to every token of turn ``t``.

**Update** (PPO-max, Secrets of RLHF I): for ``epochs`` passes over the turns in minibatches, a forward pass
over prompt + completion recomputes the completion's log-probs ``log pi`` with gradients, and the loss per
completion token is ::

    -min(rho * A, clip(rho, 1 - eps, 1 + eps) * A) + kl_coef * k3(pi, pi_sft) - ent_coef * H

with ``rho = exp(log pi - log pi_old)`` and ``k3 = exp(log pi_sft - log pi) - (log pi_sft - log pi) - 1`` (an
unbiased, positive KL estimate against the frozen SFT policy); the mean is over the minibatch's tokens; the
global gradient norm is clipped to ``max_grad_norm``. There is no critic (so no value clipping): the group
baseline plays its part. The model stays in eval mode (no dropout), so the recomputed log-probs match the
sampler's; the tokens that stop a turn (eos, the stop string) are not part of the completion.

**Logs, checkpoints, resume.** TensorBoard scalars against env steps: ``charts/reward``,
``charts/episode_return``, ``charts/progress`` (the rollouts' oracle progress), ``charts/success_rate``,
``charts/turn_tokens``, ``charts/episode_turns``, ``losses/kl``, ``losses/entropy``, ``losses/policy``,
``losses/clipfrac``, ``alarm/batch_spearman``, ``alarm/hacking``. After every ``checkpoint_every``
iterations ``ckpt.pt`` (weights, optimizer, running moments, alarm, history) and ``history.jsonl`` are
written atomically; a run started again on its ``out`` resumes from there and ends with the same weights as
an uninterrupted one (sampling is reseeded from (seed, iteration); the update runs on one thread).
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.agents.parsing import parse_output
from agentrm_gym.agents.policy import ground_action
from agentrm_gym.agents.prompts import STOP_STRINGS
from agentrm_gym.agents.runner import initial_state, max_episode_steps, step_record
from agentrm_gym.files import write_bytes_atomic, write_dir_atomic, write_json_atomic, write_jsonl_atomic
from agentrm_gym.rl.alarm import HackingAlarm
from agentrm_gym.rl.rewards import RewardSpec, RunningMoments, group_advantages, returns_to_go
from agentrm_gym.train.config import config_field as _f
from agentrm_gym.trajectory import AgentState

CHECKPOINT = "ckpt.pt"
HISTORY = "history.jsonl"


@dataclass
class RLConfig:
    """Hyperparameters of :class:`PolicyGradientTrainer` (the fields carry their help)."""

    tasks: list[str] = _f(["Maze"], "tasks whose TRAIN ids the policy plays")
    train_ids: int = _f(0, "train ids per task, the first of the split (0: all)")
    env_steps: int = _f(2000, "env-step budget: training stops at the first iteration boundary past it")
    group_size: int = _f(4, "rollouts per task id (the group of the baseline)")
    groups: int = _f(2, "task ids per iteration")
    max_turns: int = _f(10, "turn cap of a training episode (also capped by the task's registered budget)")
    temperature: float = _f(1.0, "sampling temperature of the rollouts (the PPO ratio is against temperature 1)")
    lr: float = _f(3e-4, "AdamW learning rate")
    epochs: int = _f(2, "PPO passes over each batch")
    minibatch_turns: int = _f(32, "turns per gradient step")
    clip_eps: float = _f(0.2, "PPO clip range of the ratio")
    kl_coef: float = _f(0.05, "weight of the k3 KL penalty to the frozen SFT policy")
    ent_coef: float = _f(0.0, "entropy bonus")
    max_grad_norm: float = _f(1.0, "global gradient-norm clip")
    normalize_rewards: bool = _f(True, "divide per-turn rewards by the running std of episode returns")
    reward_clip: float = _f(5.0, "clip of the scaled per-turn rewards")
    gamma: float = _f(1.0, "discount of the returns-to-go")
    advantage_scale: str = _f("none", "none (Dr. GRPO) or group_std (GRPO); never per turn index")
    alarm_window: int = _f(5, "batches in the hacking alarm's trend window")
    alarm_rho: float = _f(0.6, "trend strength (Spearman with the batch index) the alarm needs on each side")
    alarm_min_drop: float = _f(0.02, "least fall of mean oracle progress for the alarm")
    stop_on_hacking: bool = _f(False, "stop the run when the alarm fires")
    checkpoint_every: int = _f(1, "iterations between checkpoints")
    fused_decode: bool = _f(True, "rollouts decode with the fused GPT-2 step (agents/decode.py; the same tokens); "
                                  "off: through the model's forward")
    seed: int = _f(0, "seed of task order, sampling and minibatches")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RLConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Turn:
    """One policy turn of a rollout."""

    prompt_ids: list[int]
    completion_ids: list[int]
    old_logprobs: list[float]
    action: str


@dataclass
class Episode:
    """One training episode: states ``s_0..s_T``, turns, progress ``p_0..p_T`` and the spec's rewards."""

    task: str
    task_id: str
    states: list[AgentState]
    turns: list[Turn] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)
    success: bool = False
    rewards: np.ndarray | None = None

    @property
    def final_progress(self) -> float:
        return self.progress[-1]


@dataclass
class RLResult:
    """What :meth:`PolicyGradientTrainer.train` returns."""

    history: list[dict[str, Any]]
    stopped: str
    policy_dir: Path | None
    seconds: float


def make_env_default(task: str, split: str) -> Any:
    from agentrm_gym.registry import make

    return make(task, split=split)


def episode_seed(seed: int, iteration: int, slot: int) -> int:
    return (seed * 1_000_003 + iteration * 7919 + slot) % (2**31 - 1)


class PolicyGradientTrainer:
    """Trains a :class:`~agentrm_gym.agents.hf.TransformersPolicy` in place (see the module docstring).

    Args:
        policy: the policy (its model is trained; a frozen copy is the KL reference).
        reward: the reward spec (:func:`~agentrm_gym.rl.rewards.make_reward_spec`).
        cfg: the hyperparameters.
        out: the run directory (checkpoints, history, TensorBoard, the final policy); ``None``: nothing saved.
        make_env: ``(task, split) -> env`` (default: :func:`agentrm_gym.registry.make`).
        log: called with one line per iteration and for every alarm.
    """

    def __init__(self, policy: Any, reward: RewardSpec, cfg: RLConfig, out: str | Path | None = None,
                 make_env: Callable[[str, str], Any] | None = None, log: Callable[[str], None] | None = None):
        import torch

        self.torch = torch
        self.policy, self.reward, self.cfg = policy, reward, cfg
        self.out = Path(out) if out is not None else None
        self.make_env = make_env or make_env_default
        self.log = log or (lambda s: None)
        self.model = policy.model
        self.tokenizer = policy.tokenizer
        self.model.eval()
        self.reference = copy.deepcopy(self.model).eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.moments = RunningMoments()
        self.alarm = HackingAlarm(cfg.alarm_window, cfg.alarm_rho, cfg.alarm_min_drop)
        self.history: list[dict[str, Any]] = []
        self.iteration = 0
        self.env_steps = 0
        self.seconds = 0.0
        self._envs: dict[str, list[Any]] = {}
        self._jobs = self._job_order()
        self.writer = None

    # ------------------------------------------------------------------ rollouts
    def _job_order(self) -> list[tuple[str, str]]:
        pairs = []
        for task in self.cfg.tasks:
            env = self._env(task, 0)
            ids = [str(i) for i in env.unwrapped.task_ids("train")]
            pairs += [(task, i) for i in (ids[: self.cfg.train_ids] if self.cfg.train_ids else ids)]
        if not pairs:
            raise ValueError(f"no train ids in tasks {self.cfg.tasks}")
        order = np.random.default_rng(self.cfg.seed).permutation(len(pairs))
        return [pairs[i] for i in order]

    def _env(self, task: str, slot: int) -> Any:
        pool = self._envs.setdefault(task, [])
        while len(pool) <= slot:
            pool.append(self.make_env(task, "train"))
        return pool[slot]

    def batch_jobs(self, iteration: int) -> list[tuple[str, str]]:
        """The task ids of ``iteration`` (a fixed cycle through the shuffled train ids: resume-safe)."""
        start = iteration * self.cfg.groups
        return [self._jobs[(start + k) % len(self._jobs)] for k in range(self.cfg.groups)]

    def rollout(self, iteration: int) -> list[Episode]:
        """Play ``group_size`` episodes of each of the iteration's task ids, one sampler call a step."""
        cfg, engine = self.cfg, self.policy.engine
        self.policy.seed(episode_seed(cfg.seed, iteration, 0))
        max_prompt = max(1, engine.context_length - self.policy.max_new_tokens)
        fused, engine.fused = engine.fused, cfg.fused_decode
        try:
            return self._play(iteration, engine, max_prompt)
        finally:
            engine.fused = fused

    def _play(self, iteration: int, engine: Any, max_prompt: int) -> list[Episode]:
        """:meth:`rollout`'s episodes, sampled by ``engine`` (prompts cut to ``max_prompt`` tokens)."""
        cfg = self.cfg
        episodes, envs, limits = [], [], []
        slots: dict[str, int] = {}
        for task, task_id in self.batch_jobs(iteration):
            for _ in range(cfg.group_size):
                slot = slots[task] = slots.get(task, -1) + 1
                env = self._env(task, slot)
                obs, info = env.reset(seed=episode_seed(cfg.seed, iteration, len(episodes) + 1),
                                      options={"task_id": task_id})
                episodes.append(Episode(task, task_id, [initial_state(env, obs, info)],
                                        progress=[float(info["progress"])], success=bool(info["success"])))
                envs.append(env)
                limits.append(min(cfg.max_turns, max_episode_steps(env)))
        active = [i for i, e in enumerate(episodes) if not e.success]
        while active:
            states = [episodes[i].states[-1] for i in active]
            prompts = self.policy.prompts(states)
            samples = engine.generate(prompts, 1, cfg.temperature, self.policy.max_new_tokens, STOP_STRINGS,
                                      self.policy.top_p)
            still = []
            for i, prompt, row in zip(active, prompts, samples, strict=True):
                ep, sample = episodes[i], row[0]
                thought, action = parse_output(sample.text)
                state = ep.states[-1]
                if self.policy.grounding == "fuzzy" and state.admissible:
                    action = ground_action(action, state.admissible)
                obs, rew, term, trunc, info = envs[i].step(action)
                self.env_steps += 1
                ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_prompt:]
                ep.turns.append(Turn(list(ids), list(sample.token_ids), list(sample.token_logprobs), action))
                ep.states.append(state.extend(step_record(thought, action, obs, rew, info),
                                              info.get("admissible_actions")))
                ep.progress.append(float(info["progress"]))
                ep.success = bool(info["success"])
                if not (term or trunc) and len(ep.turns) < limits[i]:
                    still.append(i)
            active = still
        return episodes

    # ------------------------------------------------------------------ credit
    def score(self, episodes: Sequence[Episode]) -> dict[str, float]:
        """Fill each episode's rewards (one potential call for all states); returns timing."""
        t0 = time.perf_counter()
        values: list[np.ndarray | None] = [None] * len(episodes)
        if self.reward.shaped:
            states = [s for e in episodes for s in e.states]
            flat = self.reward.values(states)
            k = 0
            for j, e in enumerate(episodes):
                values[j] = flat[k:k + len(e.states)]
                k += len(e.states)
        for e, v in zip(episodes, values, strict=True):
            e.rewards = self.reward.rewards(e.progress, e.success, v)
        return {"rm_seconds": time.perf_counter() - t0}

    def advantages(self, episodes: Sequence[Episode]) -> list[np.ndarray]:
        """Scaled and clipped rewards -> returns-to-go -> group advantages (per turn)."""
        cfg = self.cfg
        raw_returns = [float(np.sum(e.rewards)) for e in episodes]
        scale = 1.0
        if cfg.normalize_rewards:
            self.moments.update(raw_returns)
            scale = 1.0 / max(self.moments.std, 1e-3)
        rets = [returns_to_go(np.clip(e.rewards * scale, -cfg.reward_clip, cfg.reward_clip), cfg.gamma)
                for e in episodes]
        return group_advantages(rets, [(e.task, e.task_id) for e in episodes], cfg.advantage_scale)

    # ------------------------------------------------------------------ update
    def _logprobs(self, model: Any, batch: Sequence[Turn]) -> tuple[Any, Any, Any]:
        """Completion-token log-probs, entropies and mask ``[B, L]`` of a right-padded forward pass."""
        torch = self.torch
        seqs = [t.prompt_ids + t.completion_ids for t in batch]
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        comp = torch.zeros((len(seqs), width - 1), dtype=torch.bool)
        for r, (t, s) in enumerate(zip(batch, seqs, strict=True)):
            ids[r, :len(s)] = torch.tensor(s)
            att[r, :len(s)] = 1
            comp[r, len(t.prompt_ids) - 1:len(s) - 1] = True  # positions that predict a completion token
        device = next(model.parameters()).device
        logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits[:, :-1].float()
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, ids[:, 1:].to(device)[..., None])[..., 0]
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return logp, entropy, comp.to(device)

    def update(self, episodes: Sequence[Episode], advantages: Sequence[np.ndarray], iteration: int) -> dict[str, float]:
        """PPO epochs over the batch's turns (see the module docstring for the loss)."""
        from agentrm_gym.rm.backbones import training_threads

        torch, cfg = self.torch, self.cfg
        turns = [(t, float(a)) for e, adv in zip(episodes, advantages, strict=True)
                 for t, a in zip(e.turns, adv, strict=True) if t.completion_ids]
        stats: dict[str, list[float]] = {"loss": [], "policy": [], "kl": [], "entropy": [], "clipfrac": [],
                                         "grad_norm": []}
        if not turns:
            return {k: float("nan") for k in stats}
        gen = torch.Generator().manual_seed(episode_seed(cfg.seed, iteration, 99_991))
        with training_threads():
            for _ in range(cfg.epochs):
                order = torch.randperm(len(turns), generator=gen).tolist()
                for start in range(0, len(order), cfg.minibatch_turns):
                    mb = [turns[i] for i in order[start:start + cfg.minibatch_turns]]
                    batch = [t for t, _ in mb]
                    logp, entropy, mask = self._logprobs(self.model, batch)
                    with torch.no_grad():
                        ref, _, _ = self._logprobs(self.reference, batch)
                    old = torch.zeros_like(logp)
                    adv = torch.zeros_like(logp)
                    for r, (t, a) in enumerate(mb):
                        cols = mask[r].nonzero()[:, 0]
                        old[r, cols] = torch.tensor(t.old_logprobs, dtype=old.dtype, device=old.device)
                        adv[r, cols] = a
                    ratio = torch.exp(logp - old)
                    surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
                    log_r = ref - logp
                    k3 = torch.exp(log_r) - log_r - 1
                    per_token = -surrogate + cfg.kl_coef * k3 - cfg.ent_coef * entropy
                    n = mask.sum().clamp(min=1)
                    loss = (per_token * mask).sum() / n
                    self.opt.zero_grad()
                    loss.backward()
                    norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    self.opt.step()
                    with torch.no_grad():
                        stats["loss"].append(float(loss))
                        stats["policy"].append(float((-surrogate * mask).sum() / n))
                        stats["kl"].append(float((k3 * mask).sum() / n))
                        stats["entropy"].append(float((entropy * mask).sum() / n))
                        clipped = ((ratio - 1).abs() > cfg.clip_eps) & mask
                        stats["clipfrac"].append(float(clipped.sum() / n))
                        stats["grad_norm"].append(float(norm))
        return {k: float(np.mean(v)) for k, v in stats.items()}

    # ------------------------------------------------------------------ the loop
    def step(self) -> dict[str, Any]:
        """One iteration: rollouts, rewards, advantages, update, alarm; returns its history record."""
        t0 = time.perf_counter()
        it = self.iteration
        episodes = self.rollout(it)
        t_roll = time.perf_counter() - t0
        timing = self.score(episodes)
        adv = self.advantages(episodes)
        t1 = time.perf_counter()
        upd = self.update(episodes, adv, it)
        t_upd = time.perf_counter() - t1
        returns = [float(np.sum(e.rewards)) for e in episodes]
        progress = [e.final_progress for e in episodes]
        reading = self.alarm.update(returns, progress)
        turns = [t for e in episodes for t in e.turns]
        self.iteration += 1
        wall = time.perf_counter() - t0
        self.seconds += wall
        rec = {
            "iteration": self.iteration, "env_steps": self.env_steps, "episodes": len(episodes),
            "reward": float(np.mean([r for e in episodes for r in e.rewards])) if turns else 0.0,
            "episode_return": float(np.mean(returns)), "progress": float(np.mean(progress)),
            "success_rate": float(np.mean([e.success for e in episodes])),
            "turn_tokens": float(np.mean([len(t.completion_ids) for t in turns])) if turns else 0.0,
            "episode_turns": float(np.mean([len(e.turns) for e in episodes])),
            "by_task": {task: float(np.mean([e.final_progress for e in episodes if e.task == task]))
                        for task in sorted({e.task for e in episodes})},
            **upd, "batch_spearman": reading.batch_rho, "hacking": reading.hacking,
            "rollout_seconds": round(t_roll, 3), "rm_seconds": round(timing["rm_seconds"], 3),
            "update_seconds": round(t_upd, 3), "seconds": round(self.seconds, 3),
        }
        self.history.append(rec)
        self._tb(rec)
        self.log(f"[rl {self.reward.name}] it {rec['iteration']} steps {rec['env_steps']} progress "
                 f"{rec['progress']:.3f} return {rec['episode_return']:+.3f} kl {rec['kl']:.4f} "
                 f"entropy {rec['entropy']:.3f}")
        if reading.hacking:
            self.log(f"[rl {self.reward.name}] ALARM: {reading.message}")
        return rec

    def _tb(self, rec: dict[str, Any]) -> None:
        if self.writer is None:
            return
        x = rec["env_steps"]
        for key in ("reward", "episode_return", "progress", "success_rate", "turn_tokens", "episode_turns"):
            self.writer.add_scalar(f"charts/{key}", rec[key], x)
        for key in ("kl", "entropy", "policy", "clipfrac", "grad_norm"):
            self.writer.add_scalar(f"losses/{key}", rec[key], x)
        if rec["batch_spearman"] == rec["batch_spearman"]:  # not nan
            self.writer.add_scalar("alarm/batch_spearman", rec["batch_spearman"], x)
        self.writer.add_scalar("alarm/hacking", float(rec["hacking"]), x)

    def train(self, on_iteration: Callable[[dict[str, Any]], Any] | None = None) -> RLResult:
        """Iterate until the env-step budget is spent (resuming from ``out/ckpt.pt`` if present).

        ``on_iteration(record)`` is called after each iteration's checkpoint (it may raise to interrupt).
        """
        stopped = "budget"
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            self.load_checkpoint()
            from agentrm_gym.tblog import summary_writer

            self.writer = summary_writer(self.out / "tb")
            if self.writer is not None and self.iteration == 0:
                self.writer.add_text("hyperparameters", str(self.cfg.to_dict()), 0)
        try:
            while self.env_steps < self.cfg.env_steps:
                rec = self.step()
                if self.out is not None and (self.iteration % self.cfg.checkpoint_every == 0):
                    self.save_checkpoint()
                if on_iteration is not None:
                    on_iteration(rec)
                if rec["hacking"] and self.cfg.stop_on_hacking:
                    stopped = "hacking"
                    break
            policy_dir = None
            if self.out is not None:
                self.save_checkpoint()
                policy_dir = self.save_policy(self.out / "policy")
                write_json_atomic(self.out / "done.json", {"stopped": stopped, "iterations": self.iteration,
                                                           "env_steps": self.env_steps, "seconds": self.seconds,
                                                           "alarms": self.alarm.fired})
        finally:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        return RLResult(self.history, stopped, policy_dir, self.seconds)

    # ------------------------------------------------------------------ persistence
    def save_checkpoint(self) -> None:
        torch = self.torch
        state = {"model": self.model.state_dict(), "optim": self.opt.state_dict(), "iteration": self.iteration,
                 "env_steps": self.env_steps, "seconds": self.seconds, "moments": self.moments.state_dict(),
                 "alarm": self.alarm.state_dict(), "config": self.cfg.to_dict()}
        buf = io.BytesIO()
        torch.save(state, buf)
        write_jsonl_atomic(self.out / HISTORY, self.history)  # history first: the checkpoint is the commit
        write_bytes_atomic(self.out / CHECKPOINT, buf.getvalue())

    def load_checkpoint(self) -> bool:
        """Resume from ``out/ckpt.pt``; returns whether there was one."""
        path = self.out / CHECKPOINT if self.out is not None else None
        if path is None or not path.exists():
            return False
        from agentrm_gym.files import read_jsonl

        state = self.torch.load(path, map_location=next(self.model.parameters()).device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optim"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.seconds = float(state["seconds"])
        self.moments.load_state_dict(state["moments"])
        self.alarm.load_state_dict(state["alarm"])
        hist = list(read_jsonl(self.out / HISTORY)) if (self.out / HISTORY).exists() else []
        self.history = [h for h in hist if h["iteration"] <= self.iteration]
        self.log(f"[rl {self.reward.name}] resumed at iteration {self.iteration} ({self.env_steps} env steps)")
        return True

    def save_policy(self, path: str | Path) -> Path:
        """The trained policy as a Hugging Face directory (written atomically)."""
        def write(tmp: Path) -> None:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)

        return write_dir_atomic(path, write)

    def close(self) -> None:
        for pool in self._envs.values():
            for env in pool:
                env.close()
        self._envs.clear()
