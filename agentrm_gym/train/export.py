"""Export a run directory's data in the formats other trainers read (``agentrm export``).

Formats (:data:`FORMATS`), one JSON object a line, each loadable with
``datasets.load_dataset("json", data_files=FILE)``:

* ``trl-stepwise`` - TRL's stepwise supervision (``PRMTrainer``): ``{"prompt", "completions", "labels"}``,
  one row per path. ``labels="mcts"``: every root-to-leaf path of every MCTS tree
  (``explore/trees/*.jsonl``), a step labelled ``V(node after the step) >= threshold``; ``"td"``: every
  rollout of ``explore/rollouts.jsonl``, labelled by its TD(lambda) targets (the run's ``td_lambda`` and
  ``td_gamma``, tree values where the trees hold the state: the formula of the extract stage);
  ``"outcome"``: the expert trajectories and the rollouts, every step labelled ``final progress >= threshold``.
  The prompt is the RM header (task, goal, allowed actions: :class:`~agentrm_gym.rm.format.RMFormat`) and the
  first observation; a completion is one step, ``"Thought: ...\\nAction: ...\\nObservation: ..."``
  (``step_format="action"``: the action text only). With TRL's default ``step_separator="\\n"``,
  ``prompt + "".join(c + "\\n" for c in completions)`` is the RM text of the last state plus a newline.
* ``openrlhf-prm`` - OpenRLHF's ``ProcessRewardDataset`` (Math-Shepherd layout): ``{"input", "value"}``,
  the same paths with the placeholder token (``ки``) after each step and one label per placeholder,
  ``"+"`` / ``"-"`` (``soft_labels=True``: the values themselves, floats in [0, 1]). Train with
  ``--input_key input --label_key value --placeholder_token ки --reward_tokens + -``.
* ``rm-pairs`` - pairwise reward-model data (TRL ``RewardTrainer``, OpenRLHF ``RewardDataset``).
  ``pairs="siblings"`` (default): children of one MCTS node whose values differ by more than ``margin``,
  ``{"prompt": RM text of the parent + "\\n", "chosen": step, "rejected": step}``; ``pairs="states"``: two
  states of ``extract/pairs.jsonl`` with the same task id, ``{"chosen": RM text, "rejected": RM text}``
  (a state listed more than once is averaged; at most ``max_pairs_per_task`` a task id, drawn with
  ``seed``; 0: all).
* ``messages`` - chat SFT data from ``expert/sft.jsonl`` (ShareGPT): ``{"messages": [{"role", "content"}]}``
  with roles ``system`` (``system=...``, optional), ``user`` and ``assistant``.

Library use::

    from agentrm_gym.train.export import export
    summary = export("runs/smoke", "trl-stepwise", "prm.jsonl", labels="mcts", threshold=0.5)
"""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from agentrm_gym.core import AgentRMGymError
from agentrm_gym.files import write_jsonl_atomic
from agentrm_gym.rm.format import HISTORY_SEPARATOR, RMFormat
from agentrm_gym.trajectory import AgentState, Trajectory, read_jsonl, state_from_dict

__all__ = ["FORMATS", "LABELS", "ExportConfig", "ExportError", "export", "export_rows"]

FORMATS = ("trl-stepwise", "rm-pairs", "openrlhf-prm", "messages")
LABELS = ("mcts", "td", "outcome")
PAIRS = ("siblings", "states")
STEP_FORMATS = ("full", "action")
PLACEHOLDER = "ки"

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class ExportError(AgentRMGymError, ValueError):
    """The run directory lacks what a format needs, or an option is invalid."""


@dataclass(frozen=True)
class ExportConfig:
    """Options of :func:`export` (the module docstring says what each format does with them).

    Attributes:
        format: one of :data:`FORMATS`.
        labels: ``mcts`` | ``td`` | ``outcome`` (step labels of ``trl-stepwise`` and ``openrlhf-prm``).
        threshold: a step is good when its value is at least this (values are in [0, 1]).
        step_format: ``full`` (Thought/Action/Observation lines) or ``action`` (the action text).
        placeholder: OpenRLHF's step tag.
        soft_labels: OpenRLHF labels as floats (the values) instead of ``"+"`` / ``"-"``.
        pairs: ``siblings`` or ``states`` (``rm-pairs``).
        margin: a pair needs ``V(chosen) - V(rejected) > margin``.
        max_pairs_per_task: cap of ``pairs="states"`` pairs per task id (0: all).
        seed: the draw of that cap.
        system: a system message put first in every ``messages`` row (none by default).
        min_visits: keep tree nodes visited at least this often (default: the run's ``min_visits``).
        td_lambda, td_gamma: TD(lambda) parameters (default: the run's).
    """

    format: str = "trl-stepwise"
    labels: str = "mcts"
    threshold: float = 0.5
    step_format: str = "full"
    placeholder: str = PLACEHOLDER
    soft_labels: bool = False
    pairs: str = "siblings"
    margin: float = 0.0
    max_pairs_per_task: int = 100
    seed: int = 0
    system: str | None = None
    min_visits: int | None = None
    td_lambda: float | None = None
    td_gamma: float | None = None

    def check(self) -> None:
        for name, value, known in (("format", self.format, FORMATS), ("labels", self.labels, LABELS),
                                   ("pairs", self.pairs, PAIRS), ("step_format", self.step_format, STEP_FORMATS)):
            if value not in known:
                raise ExportError(f"unknown {name} {value!r}; use one of {', '.join(known)}")
        if self.margin < 0:
            raise ExportError(f"margin must be >= 0, got {self.margin}")
        if not self.placeholder:
            raise ExportError("placeholder must not be empty")


# ----------------------------------------------------------------------------------------------- texts


def step_texts(state: AgentState, step_format: str = "full") -> list[str]:
    """Each step of ``state`` as a completion: its lines of the RM history (Thought/Action/Observation, with
    the scores environments print about themselves removed, exactly as :class:`RMFormat` writes them), or
    its action text (``step_format="action"``)."""
    if step_format == "action":
        return [s.action.strip() for s in state.steps]
    fmt = RMFormat()
    prev = fmt.history(replace(state, steps=()))
    out = []
    for t in range(1, len(state.steps) + 1):
        cur = fmt.history(replace(state, steps=state.steps[:t]))
        if not cur.startswith(prev + "\n"):  # pragma: no cover - a history style that is not append-only
            raise ExportError("the RM history format is not one line group per step; use --step-format action")
        out.append(cur[len(prev) + 1:])
        prev = cur
    return out


def prompt_text(state: AgentState) -> str:
    """The RM header and the first observation, ending with a newline (the steps follow it)."""
    fmt = RMFormat()
    return f"{fmt.header(state)}{HISTORY_SEPARATOR}{fmt.history(replace(state, steps=()))}\n"


# ----------------------------------------------------------------------------------------------- reading


def _need(path: Path, what: str, stage: str, run: Path) -> Path:
    if not path.exists():
        raise ExportError(f"{path} does not exist ({what}): run `agentrm pipeline {stage} --out {run}` first")
    return path


def _run_config(run: Path) -> dict[str, Any]:
    path = run / "config.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _trees(run: Path) -> list[dict[int, dict[str, Any]]]:
    folder = _need(run / "explore" / "trees", "the MCTS trees", "explore", run)
    trees = []
    for f in sorted(folder.glob("*.jsonl")):
        nodes = {int(n["id"]): n for n in read_jsonl(f)}
        if nodes:
            trees.append(nodes)
    if not trees:
        raise ExportError(f"{folder} holds no trees: run `agentrm pipeline explore --out {run}` first")
    return trees


def _paths_mcts(run: Path, min_visits: int) -> list[tuple[AgentState, list[float]]]:
    """(leaf state, V of the node after each step) of every root-to-leaf path of every tree."""
    out = []
    for nodes in _trees(run):
        for node in nodes.values():
            if node["N"] < min_visits:
                continue
            kids = [c for c in node.get("children", []) if c in nodes and nodes[c]["N"] >= min_visits]
            if kids or node["parent"] is None:
                continue
            chain = [node]
            while chain[-1]["parent"] is not None:
                chain.append(nodes[int(chain[-1]["parent"])])
            chain.reverse()  # root first
            state = state_from_dict(node["state"])
            values = [float(n["V"]) for n in chain[1:]]
            if len(values) == len(state.steps) and values:
                out.append((state, values))
    return out


def _rollouts(run: Path) -> list[tuple[AgentState, float]]:
    path = _need(run / "explore" / "rollouts.jsonl", "the rollouts", "explore", run)
    return [(state_from_dict(r), float(r["progress"])) for r in read_jsonl(path)]


def _paths_td(run: Path, min_visits: int, lam: float, gamma: float) -> list[tuple[AgentState, list[float]]]:
    from agentrm_gym.train.extract import td_targets

    tree_values = {state_from_dict(n["state"]).key(): float(n["V"])
                   for nodes in _trees(run) for n in nodes.values() if n["N"] >= min_visits}
    out = []
    for state, outcome in _rollouts(run):
        if not state.steps:
            continue
        prefixes = [replace(state, steps=state.steps[:t]) for t in range(len(state.steps) + 1)]
        q = td_targets(outcome, [tree_values.get(s.key()) for s in prefixes], gamma, lam)
        out.append((state, [float(v) for v in q[1:]]))
    return out


def _paths_outcome(run: Path) -> list[tuple[AgentState, list[float]]]:
    out = []
    expert = run / "expert" / "trajectories.jsonl"
    if expert.exists():
        for rec in read_jsonl(expert):
            t = Trajectory.from_dict(rec)
            if t.steps:
                out.append((t.state(), [float(t.progress)] * len(t.steps)))
    if (run / "explore" / "rollouts.jsonl").exists():
        out += [(s, [p] * len(s.steps)) for s, p in _rollouts(run) if s.steps]
    if not out:
        raise ExportError(f"{run} has neither expert/trajectories.jsonl nor explore/rollouts.jsonl: "
                          f"run `agentrm pipeline expert --out {run}` first")
    return out


def labelled_paths(run: str | Path, cfg: ExportConfig) -> list[tuple[AgentState, list[float]]]:
    """``(state, value after each of its steps)`` for every path the ``labels`` source gives."""
    root = Path(run)
    saved = _run_config(root)
    min_visits = cfg.min_visits if cfg.min_visits is not None else int(saved.get("min_visits", 1))
    if cfg.labels == "mcts":
        return _paths_mcts(root, min_visits)
    if cfg.labels == "td":
        lam = cfg.td_lambda if cfg.td_lambda is not None else float(saved.get("td_lambda", 0.95))
        gamma = cfg.td_gamma if cfg.td_gamma is not None else float(saved.get("td_gamma", 1.0))
        return _paths_td(root, min_visits, lam, gamma)
    return _paths_outcome(root)


# ----------------------------------------------------------------------------------------------- formats


def _stepwise_rows(run: Path, cfg: ExportConfig) -> list[dict[str, Any]]:
    return [{"prompt": prompt_text(state), "completions": step_texts(state, cfg.step_format),
             "labels": [v >= cfg.threshold for v in values]} for state, values in labelled_paths(run, cfg)]


def _openrlhf_rows(run: Path, cfg: ExportConfig) -> list[dict[str, Any]]:
    rows = []
    for state, values in labelled_paths(run, cfg):
        steps = [s.replace(cfg.placeholder, "") for s in step_texts(state, cfg.step_format)]
        text = prompt_text(state).replace(cfg.placeholder, "") + "\n".join(f"{s} {cfg.placeholder}" for s in steps)
        labels: list[Any] = ([round(min(1.0, max(0.0, v)), 6) for v in values] if cfg.soft_labels
                             else ["+" if v >= cfg.threshold else "-" for v in values])
        rows.append({"input": text, "value": labels})
    return rows


def _sibling_pairs(run: Path, cfg: ExportConfig) -> list[dict[str, Any]]:
    saved = _run_config(run)
    min_visits = cfg.min_visits if cfg.min_visits is not None else int(saved.get("min_visits", 1))
    fmt = RMFormat()
    rows = []
    for nodes in _trees(run):
        for node in nodes.values():
            kids = [nodes[c] for c in node.get("children", []) if c in nodes and nodes[c]["N"] >= min_visits]
            if len(kids) < 2:
                continue
            parent = state_from_dict(node["state"])
            prompt = fmt.text(parent) + "\n"
            for a, b in itertools.combinations(kids, 2):
                hi, lo = (a, b) if a["V"] >= b["V"] else (b, a)
                if float(hi["V"]) - float(lo["V"]) <= cfg.margin:
                    continue
                rows.append({"prompt": prompt,
                             "chosen": step_texts(state_from_dict(hi["state"]), cfg.step_format)[-1],
                             "rejected": step_texts(state_from_dict(lo["state"]), cfg.step_format)[-1]})
    return rows


def _state_pairs(run: Path, cfg: ExportConfig) -> list[dict[str, Any]]:
    path = _need(run / "extract" / "pairs.jsonl", "the (state, value) pairs", "extract", run)
    fmt = RMFormat()
    # task id -> RM text -> values (a state may be listed in several comparison groups: averaged here)
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in read_jsonl(path):
        state = state_from_dict(rec["state"])
        groups[(state.task, state.task_id)][fmt.text(state)].append(float(rec["value"]))
    rng = random.Random(cfg.seed)
    rows = []
    for key in sorted(groups):
        states = [(text, sum(vs) / len(vs)) for text, vs in groups[key].items()]
        candidates = [(hi, lo) if hi[1] >= lo[1] else (lo, hi) for hi, lo in itertools.combinations(states, 2)]
        candidates = [(hi, lo) for hi, lo in candidates if hi[1] - lo[1] > cfg.margin]
        if cfg.max_pairs_per_task and len(candidates) > cfg.max_pairs_per_task:
            candidates = rng.sample(candidates, cfg.max_pairs_per_task)
        rows += [{"chosen": hi[0], "rejected": lo[0]} for hi, lo in candidates]
    return rows


def _messages_rows(run: Path, cfg: ExportConfig) -> list[dict[str, Any]]:
    path = _need(run / "expert" / "sft.jsonl", "the ShareGPT SFT records", "expert", run)
    rows = []
    for rec in read_jsonl(path):
        msgs = [{"role": "system", "content": cfg.system}] if cfg.system else []
        for turn in rec.get("conversations", []):
            role = _ROLES.get(str(turn.get("from", "")).lower())
            if role is None:
                raise ExportError(f"{path}: record {rec.get('id')!r} has a turn from {turn.get('from')!r} "
                                  f"(expected one of {', '.join(_ROLES)})")
            msgs.append({"role": role, "content": str(turn.get("value", ""))})
        if any(m["role"] == "assistant" for m in msgs):
            rows.append({"messages": msgs})
    return rows


def export_rows(run: str | Path, format: str = "trl-stepwise", **options: Any) -> list[dict[str, Any]]:  # noqa: A002
    """The rows of ``format`` built from the run directory ``run`` (options: :class:`ExportConfig`)."""
    known = {f.name for f in fields(ExportConfig)} - {"format"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ExportError(f"unknown export option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    cfg = ExportConfig(format=format, **options)
    cfg.check()
    root = Path(run)
    if not root.is_dir():
        raise ExportError(f"{root}: no such run directory")
    if cfg.format == "trl-stepwise":
        return _stepwise_rows(root, cfg)
    if cfg.format == "openrlhf-prm":
        return _openrlhf_rows(root, cfg)
    if cfg.format == "rm-pairs":
        return _sibling_pairs(root, cfg) if cfg.pairs == "siblings" else _state_pairs(root, cfg)
    return _messages_rows(root, cfg)


def export(run: str | Path, format: str, out: str | Path, **options: Any) -> dict[str, Any]:  # noqa: A002
    """Write :func:`export_rows` to ``out`` (JSONL, atomically); returns ``{"format", "rows", "out", ...}``."""
    rows = export_rows(run, format, **options)
    if not rows:
        hint = {"rm-pairs": "no two states differ by more than the margin: lower --margin or try --pairs states",
                "messages": "expert/sft.jsonl has no conversation with an assistant turn"}.get(
            format, "the run has no path with a step for these labels: try --labels outcome")
        raise ExportError(f"nothing to export from {run} as {format}: {hint}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(path, rows)
    summary: dict[str, Any] = {"format": format, "rows": len(rows), "out": str(path)}
    if format in ("trl-stepwise", "openrlhf-prm"):
        threshold = options.get("threshold", ExportConfig.threshold)
        labels = [x for r in rows for x in r["labels" if format == "trl-stepwise" else "value"]]
        good = sum(1 for x in labels if x is True or x == "+"
                   or (isinstance(x, float) and not isinstance(x, bool) and x >= threshold))
        summary.update(labels=options.get("labels", ExportConfig.labels), steps=len(labels), positive_steps=good)
    return summary
