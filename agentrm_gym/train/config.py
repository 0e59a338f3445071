"""The pipeline's configuration: one dataclass whose fields carry their help text, and its presets.

The same dataclass feeds ``agentrm pipeline`` and the stage commands (``--preset`` picks the defaults,
``--set field=value`` overrides any field) and is written to ``<run>/config.json`` at the start of a run.
Presets:

* ``smoke`` - Maze and PDDL only, a tiny policy and a tiny from-scratch RM: the end-to-end test (< 60 s);
* ``demo`` - all nine tasks, pooled RM, a fixed subset of test episodes: ``make demo`` (about 25 minutes
  on a 2-core CPU);
* ``full`` - more data and the whole test splits (hours on a CPU).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agentrm_gym.core import AgentRMGymError
from agentrm_gym.registry import suite_tasks

#: The defaults of the task lists: AgentRM's nine tasks and its held-in three, read off the task table
#: (``TaskSpec.held_in``); plug-in tasks join a run by ``--set sft_tasks=... eval_tasks=...``.
ALL_TASKS = suite_tasks()
HELD_IN = suite_tasks(held_in=True)


def config_field(default: Any, help: str) -> Any:  # noqa: A002 - CleanRL-style field help
    """A dataclass field with its help text (``metadata["help"]``, what the CLI prints); lists and dicts are
    copied per instance."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


_f = config_field


@dataclass
class PipelineConfig:
    """Every hyperparameter of the AgentRM pipeline (arXiv 2502.18407; the stages: docs/pipeline.md)."""

    name: str = _f("pipeline", "run name: the run directory is runs/{name}__pipeline__{seed}__{time}")
    seed: int = _f(0, "seed of every stage (task choice, sampling, initialisation)")
    threads: int = _f(0, "torch threads (0: all cores, at most 2); split among the workers")
    workers: int = _f(1, "worker processes of expert, explore and evaluate (0: one per core); the output for "
                         "a seed is the same for any number")
    ray: str = _f("", "run those workers on Ray: local (start one with `workers` CPUs), auto (this machine's "
                      "cluster) or a cluster address; needs agentrm-gym[dist]")
    # ----------------------------------------------------------------- tasks
    sft_tasks: list[str] = _f(list(ALL_TASKS), "tasks whose TRAIN split the expert plays for SFT data")
    rm_tasks: list[str] = _f(list(HELD_IN), "held-in tasks: MCTS exploration and RM training data")
    eval_tasks: list[str] = _f(list(ALL_TASKS), "tasks evaluated on their TEST split")
    # ----------------------------------------------------------------- 1. expert
    expert_episodes: int = _f(40, "oracle episodes per task (first ids of the train split)")
    expert_episodes_held_in: int = _f(80, "oracle episodes per held-in task (rm_tasks)")
    expert_caps: list[str] = _f([], "per-task episode caps for slow backends, e.g. Jericho:8 (TASK:N)")
    expert_noise: float = _f(0.15, "probability that an expert step is a random non-oracle admissible action")
    expert_max_steps: int = _f(30, "step cap of an expert episode")
    # ----------------------------------------------------------------- 2. sft
    vocab_size: int = _f(2048, "byte-level BPE vocabulary of the tiny policy")
    context: int = _f(512, "context length (positions) of the tiny policy; prompts are cut to fit")
    n_layer: int = _f(2, "transformer layers of the tiny policy")
    n_embd: int = _f(128, "width of the tiny policy")
    n_head: int = _f(4, "attention heads of the tiny policy")
    sft_steps: int = _f(600, "AdamW steps of SFT (brief on purpose: an imperfect policy leaves room for search)")
    sft_batch_size: int = _f(8, "dialogues per SFT step")
    sft_lr: float = _f(2e-3, "peak SFT learning rate (linear warm-up, cosine decay)")
    policy: str = _f("", "use this policy directory instead of training one (skips SFT)")
    max_new_tokens: int = _f(40, "generation cap of one policy turn")
    action_grounding: str = _f("fuzzy", "none | fuzzy: map each generated action to the nearest admissible one")
    # ----------------------------------------------------------------- 3. explore
    train_order: str = _f("split", "how the expert, the trees and the groups take a task's TRAIN ids: split (the "
                                   "split's own order) or spread (every prefix spread evenly over the split; "
                                   "ScienceWorld's train split is sorted by task family)")
    explore_trees: int = _f(8, "MCTS trees per held-in task (train ids after the expert's)")
    mcts_iterations: int = _f(8, "MCTS iterations per tree")
    mcts_k: int = _f(3, "actions sampled per expansion")
    mcts_c: float = _f(0.4, "UCT exploration constant")
    mcts_rollouts: int = _f(1, "rollouts per new node")
    temperature: float = _f(1.0, "sampling temperature of exploration and Best-of-N")
    explore_max_steps: int = _f(15, "step cap of an exploration episode (tree depth plus rollout)")
    explore_groups: int = _f(0, "sampled groups per held-in task: N trajectories of one train id, sampled as "
                                "Best-of-N samples at evaluation (the RM's main training data)")
    group_caps: list[str] = _f([], "per-task caps of explore_groups for slow backends, e.g. ScienceWorld:15")
    # ----------------------------------------------------------------- 4. extract
    labels: str = _f("mcts", "value labels: mcts (node values), td (TD(lambda) on rollouts) or mc (returns)")
    min_visits: int = _f(1, "lambda of AgentRM: keep tree nodes visited at least this often")
    group_prefix_stride: int = _f(0, "also label every k-th prefix of a sampled trajectory with its final "
                                     "progress (MC), grouped by depth, for beam search (0: final states only)")
    td_lambda: float = _f(0.95, "lambda of the TD(lambda) targets")
    td_gamma: float = _f(1.0, "discount of the TD / MC targets")
    # ----------------------------------------------------------------- 5. train-rm
    rm_kind: str = _f("value", "explicit RM: value (fine-tuned sequence classifier, MSE) or pooled (frozen "
                               "mean-pooled encoder + ridge head on group-centred values)")
    rm_text: str = _f("full", "RM input text: full (Thought/Action/Observation turns) or compact (every action "
                              "with an observation snippet; the middle cut past 24 steps)")
    rm_backbone: str = _f("minilm", "RM backbone: minilm (pretrained, offline), policy (the run's SFT policy: its "
                                    "hidden states), tiny (from scratch) or a path")
    rm_stats: bool = _f(False, "pooled RM: append four trajectory statistics (steps, distinct actions and "
                               "observations, a repeated last action) to the embedding")
    rm_candidates: list[str] = _f([], "pooled RM: encoders to choose from, each BACKBONE or BACKBONE+stats; the "
                                      "rm_cv cross-validation on held-in train pairs keeps the best (empty: "
                                      "rm_backbone, with rm_stats)")
    rm_alphas: list[float] = _f([0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
                                "pooled RM: ridge strengths tried by the CV")
    rm_cv: str = _f("task", "pooled RM: CV folds for alpha: task (leave-one-task-out: chosen for transfer to a task "
                            "never seen) or task_id")
    rm_selector: str = _f("auto", "pooled RM: rank by its value (ridge), by the heuristic with the value breaking "
                                  "its ties (heuristic-ties), or auto: the one whose pick beats the heuristic's by "
                                  "the higher lower CI bound in the rm_cv cross-validation (agentrm_gym.rm.selector)")
    rm_seen_selector: bool = _f(True, "pooled RM with rm_cv=task: choose a second selector, by task-id folds within "
                                      "the held-in tasks, for the states of the tasks it was trained on")
    rm_epochs: int = _f(3, "RM training epochs")
    rm_batch_size: int = _f(16, "RM batch size")
    rm_max_length: int = _f(256, "RM input tokens (header kept, history cut from the left)")
    rm_lr: float = _f(0.0, "RM learning rate (0: the trainer's default)")
    # ----------------------------------------------------------------- 6. evaluate
    eval_episodes: int = _f(10, "test episodes per task (evenly spaced over the split; 0: all)")
    eval_methods: list[str] = _f(["greedy", "bon:5"], "methods: greedy, bon:N (explicit RM), beam:W1xW2")
    eval_max_steps: int = _f(0, "step cap of an evaluation episode (0: the task's registered budget)")
    rm_eval_episodes: int = _f(4, "held-out episodes per task for RM quality (pairwise / Best-of-N acc.; 0: off)")
    eval_rms: list[str] = _f([], "extra RMs that re-score the Best-of-N candidates: implicit, judge, and the "
                                 "baselines heuristic (fewer repeated actions), stats-only (ridge on the four "
                                 "statistics), encoder-only (the chosen encoder without them), ridge (the explicit "
                                 "RM ranking by its value alone)")
    implicit_steps: int = _f(200, "AdamW steps of the implicit RM (fit on the sampled groups' outcomes)")
    implicit_loss: str = _f("bt", "loss of the implicit RM: bt (DPO's within-group Bradley-Terry: the order of "
                                  "each group's candidates) or ce (PRIME's cross-entropy on the outcomes); bt "
                                  "chosen on held-in train groups, benchmarks/implicit_objective.py")
    beam_episodes: int = _f(0, "test episodes per task for beam search (0: eval_episodes); beam is the costliest")
    bootstrap: int = _f(2000, "bootstrap resamples of the paired-difference 95% CIs")

    @property
    def bon_n(self) -> int:
        """N of the first ``bon:N`` method (5 if none): the size of the sampled groups."""
        for m in self.eval_methods:
            name, _, arg = m.partition(":")
            if name in ("bon", "best_of_n"):
                return int(arg or 5)
        return 5

    def expert_count(self, task: str) -> int:
        """Expert episodes of ``task``: the held-in or default count, lowered by ``expert_caps``."""
        n = self.expert_episodes_held_in if task in self.rm_tasks else self.expert_episodes
        return _capped(n, self.expert_caps, task)

    def ordered_train_ids(self, ids: Sequence[Any]) -> list[str]:
        """A task's TRAIN ids in the order the stages take them: the expert's first, then the trees', then
        the groups' (``train_order``)."""
        if self.train_order not in ("split", "spread"):
            raise ValueError(f"train_order must be 'split' or 'spread', got {self.train_order!r}")
        ids = [str(i) for i in ids]
        return ids if self.train_order == "split" else spread_order(ids)

    def group_count(self, task: str) -> int:
        """Sampled groups of ``task``: ``explore_groups`` lowered by ``group_caps``."""
        return _capped(self.explore_groups, self.group_caps, task)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **changes: Any) -> PipelineConfig:
        return dataclasses.replace(self, **changes)

    def override(self, assignments: list[str]) -> PipelineConfig:
        """Apply ``field=value`` strings (JSON values, or plain strings; lists comma-separated)."""
        kinds = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in kinds:
                raise ValueError(f"bad override {item!r}: use field=value with a field of PipelineConfig "
                                 f"({', '.join(sorted(kinds))})")
            current = getattr(self, key)
            kind = type(current[0]) if isinstance(current, list) and current else type(current)
            try:
                if isinstance(current, list):
                    items = [x.strip() for x in raw.split(",") if x.strip()]
                    value: Any = [kind(x) for x in items] if kind in (int, float) else items
                elif isinstance(current, bool):
                    value = raw.strip().lower() in ("1", "true", "yes")
                elif isinstance(current, int | float):
                    value = kind(raw)
                else:
                    value = raw
            except ValueError:
                raise ValueError(f"bad override {item!r}: {key} takes {'a list of ' if isinstance(current, list) else ''}"
                                 f"{kind.__name__} values (now {current!r})") from None
            changes[key] = value
        return self.replace(**changes)



def spread_order(items: Sequence[Any]) -> list[Any]:
    """``items`` reordered so that every prefix is spread over them: positions ``j * s mod n`` with ``s`` the
    integer nearest ``n / golden ratio`` that is coprime to ``n`` (a permutation; the golden-ratio sequence has
    no short period, so a task's families or types sorted or cycling through its split are all drawn)."""
    n = len(items)
    step = max(1, round(n / ((1 + 5 ** 0.5) / 2)))
    while math.gcd(step, n) > 1:
        step += 1
    return [items[(j * step) % n] for j in range(n)]


def _capped(n: int, caps: list[str], task: str) -> int:
    """``n`` lowered by a ``TASK:N`` entry of ``caps`` for ``task``."""
    for cap in caps:
        name, _, value = cap.partition(":")
        if name.strip() == task and value.strip():
            n = min(n, int(value))
    return n


def field_help() -> dict[str, str]:
    """Help text of each config field (the CLI prints it)."""
    return {f.name: f.metadata.get("help", "") for f in fields(PipelineConfig)}


#: The pooled RM's encoders the demo and full presets choose from (by leave-one-task-out CV on held-in data).
RM_CANDIDATES = ["policy+stats", "policy", "minilm+stats", "minilm"]
#: The baselines the demo and full presets read the explicit RM against (``eval_rms``; agentrm_gym.rm.baselines).
BASELINE_RMS = ["heuristic", "stats-only", "encoder-only", "ridge"]

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "name": "smoke", "sft_tasks": ["Maze", "PDDL"], "rm_tasks": ["Maze"], "eval_tasks": ["Maze", "PDDL"],
        "expert_episodes": 6, "expert_episodes_held_in": 6, "expert_max_steps": 12, "vocab_size": 400,
        "context": 256, "n_layer": 1, "n_embd": 48, "n_head": 2, "sft_steps": 30, "sft_batch_size": 4,
        "max_new_tokens": 12, "explore_trees": 2, "mcts_iterations": 2, "mcts_k": 2, "explore_max_steps": 4,
        "rm_epochs": 2, "rm_batch_size": 8, "rm_max_length": 128, "eval_episodes": 2,
        "eval_methods": ["greedy", "bon:2", "beam:2x2"], "eval_max_steps": 4, "rm_eval_episodes": 1,
        "explore_groups": 3, "group_prefix_stride": 2, "rm_kind": "pooled", "rm_text": "compact",
        "rm_candidates": ["policy+stats", "minilm"], "eval_rms": ["implicit", "judge"], "implicit_steps": 10,
        "bootstrap": 200,
    },
    "demo": {
        "name": "demo", "expert_caps": ["Jericho:8", "ScienceWorld:25"], "expert_episodes": 30,
        "expert_episodes_held_in": 40, "sft_steps": 300, "explore_trees": 3, "mcts_iterations": 6, "min_visits": 2,
        "explore_groups": 100, "group_caps": ["ALFWorld:70", "ScienceWorld:24"], "group_prefix_stride": 10,
        "temperature": 0.5, "rm_kind": "pooled", "rm_candidates": list(RM_CANDIDATES), "rm_text": "compact",
        "rm_max_length": 320,
        "eval_episodes": 30, "eval_max_steps": 20, "eval_methods": ["greedy", "bon:5", "beam:2x3"],
        "beam_episodes": 8, "eval_rms": ["implicit", "judge", *BASELINE_RMS], "rm_eval_episodes": 3, "workers": 0,
    },
    "full": {
        "name": "full", "expert_episodes": 200, "expert_episodes_held_in": 500, "n_layer": 4, "n_embd": 256,
        "n_head": 8, "context": 1024, "sft_steps": 4000, "explore_trees": 100, "mcts_iterations": 30,
        "explore_max_steps": 30, "min_visits": 2, "explore_groups": 500, "group_prefix_stride": 5,
        "temperature": 0.5, "rm_kind": "pooled", "rm_candidates": list(RM_CANDIDATES), "rm_text": "compact",
        "rm_max_length": 384, "eval_episodes": 0,
        "eval_methods": ["greedy", "bon:5", "beam:5x5"], "eval_rms": ["implicit", "judge", *BASELINE_RMS],
        "rm_eval_episodes": 10,
        "workers": 0,
    },
}


def preset(name: str) -> PipelineConfig:
    """The config of a named preset (``smoke``, ``demo``, ``full``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PipelineConfig().replace(**PRESETS[name])


class CorruptRunFile(AgentRMGymError, ValueError):
    """A file of a run directory (``config.json``, a stage's ``done.json``) that cannot be read; the message
    names the file and how to recover."""


def read_json_object(path: str | Path, remedy: str) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`CorruptRunFile` naming the file (and ``remedy``) if it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRunFile(f"{path}: unreadable or damaged ({type(exc).__name__}: {exc}); {remedy}") from exc
    if not isinstance(data, dict):
        raise CorruptRunFile(f"{path}: damaged (expected a JSON object, got {type(data).__name__}); {remedy}")
    return data


def load_config(path: str | Path) -> PipelineConfig:
    """The :class:`PipelineConfig` saved in ``path`` (a run's ``config.json``).

    Raises:
        CorruptRunFile: the file is not JSON, not an object, or holds no config field (named in the message).
    """
    remedy = ("restore it, or delete the run directory (or just this file, to start over with the config "
              "given now) to redo the run")
    data = read_json_object(path, remedy)
    known = {f.name for f in fields(PipelineConfig)}
    if not known & set(data):
        raise CorruptRunFile(f"{path}: damaged (no PipelineConfig field in it); {remedy}")
    try:
        return PipelineConfig.from_dict(data)
    except TypeError as exc:
        raise CorruptRunFile(f"{path}: damaged ({exc}); {remedy}") from exc
