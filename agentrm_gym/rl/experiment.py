"""The RL experiment of issue 22 in one call: does the learned process reward make the LLM policy learn faster?

:func:`run_experiment` takes a finished pipeline run (its SFT policy ``<run>/sft/policy`` and its explicit RM
``<run>/rm``) and, for every reward spec and seed, trains the policy with
:class:`~agentrm_gym.rl.policy_gradient.PolicyGradientTrainer` on the TRAIN ids of the preset's tasks (held-out
ones, which the RM never saw, and held-in ones: the run's ``rm_tasks``), every spec at the same env-step
budget. Greedy and Best-of-N (the run's RM picks) are played on fixed TEST ids before (the SFT policy) and
after each run. :mod:`agentrm_gym.rl.report` turns the episodes and the training histories into the table
(paired gains with 95% CIs over seeds and episodes), the learning curves against env steps, the sample
efficiency and the wall times.

Layout of ``out`` (every part resumable: an RL run from its checkpoint, evaluation episodes from the JSONL)::

    runs/<spec>__s<seed>/   ckpt.pt, history.jsonl, tb/, policy/, done.json   (the trainer's run directory)
    episodes.jsonl          one line per (phase, spec, seed, task, method, test id)
    results.json  table.md  curves.png

Presets (:data:`RL_PRESETS`): ``smoke`` covers every spec with a tiny budget (CI: under 3 minutes with its
pipeline run); ``demo`` runs on ``runs/demo`` (``make demo``) in about 15 minutes on a 2-core CPU (docs/rl.md
says how that was estimated); ``full`` is sized for a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrm_gym.files import append_jsonl, read_jsonl, repair_jsonl
from agentrm_gym.rl.policy_gradient import PolicyGradientTrainer, RLConfig
from agentrm_gym.rl.rewards import REWARD_SPECS, RM_SPECS, make_reward_spec

EPISODES = "episodes.jsonl"
BEFORE = "sft"


@dataclass
class ExperimentConfig:
    """One experiment: tasks, specs, seeds, the trainer's hyperparameters and the evaluation."""

    tasks: list[str] = field(default_factory=lambda: ["Maze", "PDDL"])
    specs: list[str] = field(default_factory=lambda: list(REWARD_SPECS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_ids: int = 5
    eval_max_steps: int = 10
    bon_n: int = 5
    eval_temperature: float = 1.0
    rl: dict[str, Any] = field(default_factory=dict)

    def rl_config(self, seed: int) -> RLConfig:
        return RLConfig.from_dict({**self.rl, "tasks": list(self.tasks), "seed": seed})


RL_PRESETS: dict[str, dict[str, Any]] = {
    # every spec, one seed, a few iterations: the CI check that the whole experiment runs
    "smoke": {"tasks": ["Maze", "PDDL"], "specs": list(REWARD_SPECS), "seeds": [0], "eval_ids": 2,
              "eval_max_steps": 2, "bon_n": 5,
              "rl": {"env_steps": 16, "group_size": 2, "groups": 2, "max_turns": 2, "train_ids": 4, "epochs": 1,
                     "lr": 3e-4}},
    # held-out Maze, PDDL, ToolQuery (fast envs the RM never saw) and held-in WebShop (10-step episodes)
    "demo": {"tasks": ["Maze", "PDDL", "ToolQuery", "WebShop"], "specs": ["success", "outcome", "rm", "heuristic"],
             "seeds": [0, 1, 2], "eval_ids": 3, "eval_max_steps": 6, "bon_n": 5,
             "rl": {"env_steps": 192, "group_size": 4, "groups": 2, "max_turns": 8, "train_ids": 16, "epochs": 2,
                    "lr": 3e-4}},
    # all nine tasks, every spec, five seeds: hours on a GPU (docs/rl.md)
    "full": {"tasks": ["Maze", "PDDL", "ToolQuery", "ToolOperation", "BabyAI", "Jericho", "WebShop", "ALFWorld",
                       "ScienceWorld"], "specs": list(REWARD_SPECS), "seeds": [0, 1, 2, 3, 4], "eval_ids": 0,
             "eval_max_steps": 0, "bon_n": 5,
             "rl": {"env_steps": 20000, "group_size": 8, "groups": 4, "max_turns": 30, "train_ids": 0,
                    "epochs": 2, "lr": 1e-5, "minibatch_turns": 64}},
}


def experiment_preset(name: str, **changes: Any) -> ExperimentConfig:
    """The :class:`ExperimentConfig` of a preset, with ``changes`` (``specs``, ``seeds``, ``tasks`` ...;
    ``rl`` entries are merged into the preset's)."""
    if name not in RL_PRESETS:
        raise ValueError(f"unknown RL preset {name!r}; known: {', '.join(RL_PRESETS)}")
    base = {**RL_PRESETS[name], "rl": dict(RL_PRESETS[name]["rl"])}
    rl = changes.pop("rl", None) or {}
    base["rl"].update(rl)
    unknown = [s for s in changes.get("specs") or [] if s not in REWARD_SPECS]
    if unknown:
        raise ValueError(f"unknown reward spec(s) {unknown}; use {', '.join(REWARD_SPECS)}")
    base.update({k: v for k, v in changes.items() if v})
    return ExperimentConfig(**base)


def _key(rec: dict[str, Any]) -> tuple[Any, ...]:
    return (rec["phase"], rec["spec"], int(rec["seed"]), rec["task"], rec["method"], str(rec["task_id"]))


class _Run:
    """The pipeline run's pieces the experiment reads (config, SFT policy, RM, test ids)."""

    def __init__(self, run: str | Path):
        from agentrm_gym.rm.spec import make_reward_model
        from agentrm_gym.train.config import load_config
        from agentrm_gym.train.context import policy_dir

        self.root = Path(run)
        self.cfg = load_config(self.root / "config.json")
        self.sft = policy_dir(self.root, self.cfg)
        self.rm = make_reward_model(str(self.root))
        self.held_in = list(self.cfg.rm_tasks)

    def policy(self, path: str | Path, seed: int) -> Any:
        from agentrm_gym.train.sft_stage import make_pipeline_policy

        return make_pipeline_policy(str(path), self.cfg, seed=seed)


def evaluate_policy(policy: Any, rm: Any, tasks: Sequence[str], ids: dict[str, list[str]], methods: Sequence[str],
                    seed: int, max_steps: int | None, temperature: float, done: set[tuple[Any, ...]],
                    tag: dict[str, Any], path: Path) -> None:
    """Play ``methods`` on each task's test ``ids`` and append one record per episode to ``path``."""
    from agentrm_gym.agents.planners import make_planner
    from agentrm_gym.registry import make
    from agentrm_gym.train.explore import episode_seed

    for task in tasks:
        env = None
        try:
            for method in methods:
                for task_id in ids[task]:
                    rec = {**tag, "seed": seed, "task": task, "method": method, "task_id": task_id}
                    if _key(rec) in done:
                        continue
                    env = env or make(task, split="test")
                    planner = make_planner(method, policy, None if method == "greedy" else rm,
                                           temperature=None if method == "greedy" else temperature,
                                           max_steps=max_steps or None)
                    res = planner.run(env, task_id, seed=episode_seed(seed, task, task_id))
                    rec.update(success=bool(res.trajectory.success), progress=float(res.trajectory.progress),
                               steps=len(res.trajectory.steps), seconds=round(res.cost.wall_seconds, 3))
                    append_jsonl(path, [rec])
                    done.add(_key(rec))
        finally:
            if env is not None:
                env.close()


def run_experiment(run: str | Path, exp: ExperimentConfig, out: str | Path,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the experiment in ``out``; returns the results (also in ``out/results.json``)."""
    from agentrm_gym.registry import make
    from agentrm_gym.rl.report import write_report
    from agentrm_gym.train.evaluate import eval_ids

    log = log or (lambda s: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src = _Run(run)
    t_start = time.time()
    ids: dict[str, list[str]] = {}
    for task in exp.tasks:
        env = make(task, split="test")
        try:
            ids[task] = eval_ids([str(i) for i in env.unwrapped.task_ids("test")], exp.eval_ids)
        finally:
            env.close()
    path = out / EPISODES
    repair_jsonl(path)
    done = {_key(r) for r in read_jsonl(path)} if path.exists() else set()
    methods = ["greedy", f"bon:{exp.bon_n}"]
    eval_seconds: dict[str, float] = {}
    for seed in exp.seeds:  # before: the SFT policy (the same for every spec)
        t0 = time.time()
        policy = src.policy(src.sft, seed)
        evaluate_policy(policy, src.rm, exp.tasks, ids, methods, seed, exp.eval_max_steps, exp.eval_temperature,
                        done, {"phase": "before", "spec": BEFORE}, path)
        eval_seconds[BEFORE] = eval_seconds.get(BEFORE, 0.0) + time.time() - t0
    log(f"[rl] evaluated the SFT policy on {sum(len(v) for v in ids.values())} test ids x {len(exp.seeds)} seeds")
    for spec in exp.specs:
        for seed in exp.seeds:
            run_dir = out / "runs" / f"{spec}__s{seed}"
            policy = src.policy(src.sft, seed)
            if not (run_dir / "done.json").exists():
                reward = make_reward_spec(spec, rm=src.rm if spec in RM_SPECS else None)
                trainer = PolicyGradientTrainer(policy, reward, exp.rl_config(seed), out=run_dir, log=log)
                try:
                    trainer.train()
                finally:
                    trainer.close()
            else:
                policy = src.policy(run_dir / "policy", seed)
            t0 = time.time()
            evaluate_policy(policy, src.rm, exp.tasks, ids, methods, seed, exp.eval_max_steps, exp.eval_temperature,
                            done, {"phase": "after", "spec": spec}, path)
            eval_seconds[spec] = eval_seconds.get(spec, 0.0) + time.time() - t0
            log(f"[rl] {spec} seed {seed}: trained and evaluated")
    results = write_report(out, exp, src.held_in, methods, eval_seconds, time.time() - t_start)
    log(f"[rl] table: {out / 'table.md'}")
    return results
