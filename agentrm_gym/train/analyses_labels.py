"""``agentrm analyze labels RUN``: which value labels make the better RM at equal env steps (issue 21).

AgentRM labels states with MCTS values; AgentPRM (arXiv 2511.08325) reports TD(lambda)/GAE labels along
rollouts as far more compute-efficient; plain Monte-Carlo returns are the simplest. The explore stage of a
run saves what all of them need: the MCTS trees (``explore/trees``, node values V and visit counts), the
trees' rollouts (``explore/rollouts.jsonl``, with per-step progress) and the sampled groups
(``explore/groups.jsonl``). So the labels are compared on the *same* env steps, without re-exploring:

* ``mcts`` - the tree nodes visited at least ``min_visits`` times, valued by V, grouped by siblings;
* ``td`` - every prefix of every rollout, valued by the TD(lambda) target (``td_lambda``, ``td_gamma``; the
  MCTS value bootstraps where the tree holds the state), grouped by (task id, depth);
* ``mc`` - the same prefixes valued by the Monte-Carlo return;
* ``td (critic)`` - the same prefixes valued by TD(lambda) bootstrapped at every step by a critic (a ridge V
  on the training folds' Monte-Carlo returns), the GAE-style labels of AgentPRM;
* ``groups`` - the sampled groups' final states valued by their final progress, the groups taken in a
  seeded order until their env steps reach the trees' (so this row too spends the trees' budget); and
  ``groups (all)`` - every group at its own, larger budget, as the pipeline uses them.

Every label set trains the same head (the run's RM features: its encoder's embedding plus the four
trajectory statistics; ridge on group-centred targets at the run's chosen alpha) on all held-in tasks
but one, and is scored on the left-out task's sampled *final-state* groups, the states Best-of-N ranks:
within-group pairwise accuracy (chance 0.5) and Best-of-N lift (the pick's progress minus the group
mean), averaged over tasks, beside the "fewer repeated actions" heuristic on the same groups. Only held-in
TRAIN data is read. Writes ``RUN/analysis/labels.{json,md,png}``; embeddings are cached in
``RUN/analysis/labels_embeddings.npz`` so a re-run encodes nothing.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.train.analyses import _acc, _embed, _run, _write


def _tree_budget(explore: Path) -> int:
    """Env steps the MCTS trees spent (their rollouts included), from ``explore/index.jsonl``."""
    from agentrm_gym.trajectory import read_jsonl

    index = explore / "index.jsonl"
    return sum(int(r.get("cost", {}).get("env_steps", 0)) for r in read_jsonl(index)) if index.exists() else 0


def _group_steps(group: dict[str, Any]) -> int:
    """Env steps of one sampled group (its recorded cost, else the candidates' steps)."""
    cost = group["candidates"][0]["trajectory"].get("meta", {}).get("cost", {}) if group["candidates"] else {}
    if "env_steps" in cost:
        return int(cost["env_steps"])
    return sum(len(c["trajectory"]["steps"]) for c in group["candidates"])


def label_sets(root: Path, cfg: Any) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int], list[dict[str, Any]]]:
    """The training records of each label kind, their env steps, and the evaluation records (every sampled
    group's final states)."""
    from agentrm_gym.train.extract import group_records, rollout_pairs, tree_pairs, tree_records
    from agentrm_gym.trajectory import read_jsonl

    explore = root / "explore"
    trees = sorted((explore / "trees").glob("*.jsonl"))
    budget = _tree_budget(explore)
    rollouts = list(read_jsonl(explore / "rollouts.jsonl")) if (explore / "rollouts.jsonl").exists() else []
    groups = list(read_jsonl(explore / "groups.jsonl")) if (explore / "groups.jsonl").exists() else []
    tree_values = {s.key(): v for f in trees for s, v in tree_pairs(f, cfg.min_visits)}
    sets: dict[str, list[dict[str, Any]]] = {"mcts": [r for f in trees for r in tree_records(f, cfg.min_visits)]}
    for kind in ("td", "mc"):
        sets[kind] = [{"state": s, "value": v, "task": s.task, "task_id": s.task_id, "source": kind,
                       "group": f"rollout/{s.task}/{s.task_id}/depth{len(s.steps)}"}
                      for s, v in rollout_pairs(rollouts, tree_values, kind, cfg.td_gamma, cfg.td_lambda)]
    order = np.random.default_rng(cfg.seed).permutation(len(groups))
    chosen, spent = [], 0
    for i in order:
        if spent >= budget:
            break
        chosen.append(groups[i])
        spent += _group_steps(groups[i])
    sets["groups"] = group_records(chosen)
    sets["groups (all)"] = group_records(groups)
    steps = {"mcts": budget, "td": budget, "mc": budget, "groups": spent,
             "groups (all)": sum(_group_steps(g) for g in groups)}
    return sets, steps, group_records(groups)


def require_two_tasks(records: list[dict[str, Any]], name: str) -> None:
    """Leave-one-task-out needs two held-in tasks with sampled groups; say so instead of fitting on nothing."""
    tasks = sorted({r["task"] for r in records})
    if len(tasks) < 2:
        raise ValueError(f"agentrm analyze {name}: leave-one-task-out needs sampled groups of at least two held-in "
                         f"tasks (rm_tasks with explore_groups > 0); this run has {tasks or 'none'}")


def _embeddings(root: Path, cfg: Any, card: dict[str, Any], texts: list[str]) -> np.ndarray:
    """The embedding of each of ``texts`` (one row each, repeats allowed), from the on-disk cache (keyed by
    the text's sha1) where it holds them; each text not in it is encoded once."""
    cache = root / "analysis" / "labels_embeddings.npz"
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as z:
            known = {k: z[k] for k in z.files}
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
    if todo:
        emb = _embed(root, cfg, card, [t for _, t in todo])
        known.update({k: e for (k, _), e in zip(todo, emb, strict=True)})
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(".labels_embeddings.tmp.npz")
        np.savez(tmp, **known)
        tmp.replace(cache)
    return np.array([known[k] for k in keys])


def labels(run: str | Path) -> dict[str, Any]:
    """Compare MCTS, TD(lambda), Monte-Carlo and group labels at equal env steps (module docstring);
    writes ``RUN/analysis/labels.{md,json,png}`` and returns the rows."""
    from agentrm_gym.rm.format import RMFormat
    from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel
    from agentrm_gym.rm.pooled import centre_by_group, fit_ridge, group_ranking_metrics, text_stats

    started = time.time()
    root = Path(run)
    cfg, _, card = _run(root)
    sets, steps, evaluation = label_sets(root, cfg)
    require_two_tasks(evaluation, "labels")
    fmt = RMFormat(style=cfg.rm_text)
    alpha = float(card.get("metrics", {}).get("alpha") or 10.0)
    all_records = [r for rs in sets.values() for r in rs] + evaluation
    texts = {id(r): fmt.text(r["state"]) for r in all_records}
    distinct = list(dict.fromkeys(texts.values()))
    keyed = dict(zip(distinct, _embeddings(root, cfg, card, distinct), strict=True))

    def features(records: list[dict[str, Any]]) -> np.ndarray:
        return np.array([np.concatenate([keyed[texts[id(r)]], text_stats(texts[id(r)], fmt.obs_chars)])
                         for r in records])

    tasks = sorted({r["task"] for r in evaluation})
    x_eval = features(evaluation)
    values = np.array([r["value"] for r in evaluation])
    groups = [r["group"] for r in evaluation]
    eval_tasks = [r["task"] for r in evaluation]

    def scored(scores: np.ndarray, name: str, what: str, kind_steps: int | None, states: int) -> dict[str, Any]:
        m = group_ranking_metrics(scores, values, groups, eval_tasks)
        return {"labels": name, "what": what, "env_steps": kind_steps, "states": states,
                "task_pairwise_accuracy": m["task_pairwise_accuracy"], "bon_lift": m["bon_lift"],
                "per_task": {t: c["pairwise_accuracy"] for t, c in m["per_task"].items()}}

    rows = [scored(FewerRepeatsRewardModel().score([r["state"] for r in evaluation]), "heuristic",
                   "fewer repeated actions (nothing learned)", None, 0)]
    whats = {"mcts": f"tree nodes, N >= {cfg.min_visits}, MCTS value",
             "td": f"rollout prefixes, TD(lambda={cfg.td_lambda:g}) targets",
             "mc": "rollout prefixes, Monte-Carlo returns",
             "groups": "sampled groups' final states, final progress (the trees' budget)",
             "groups (all)": "every sampled group's final states (the pipeline's budget)"}
    for name, records in sets.items():
        if len({r["task"] for r in records}) < 2:
            continue
        x = features(records)
        raw = np.array([r["value"] for r in records])
        rec_groups = [r["group"] for r in records]
        train_tasks = np.array([r["task"] for r in records])
        critic = name == "mc"  # the MC prefixes also feed the critic-bootstrapped TD row below
        preds = {name: np.zeros(len(evaluation)), "td (critic)": np.zeros(len(evaluation))}
        for task in tasks:
            train, held = train_tasks != task, np.array([t == task for t in eval_tasks])
            if not (train.any() and held.any()):
                continue
            w, b = fit_ridge(x[train], centre_by_group(raw, rec_groups)[train], alpha)
            preds[name][held] = x_eval[held] @ w + b
            if critic:
                targets = _critic_td(x, raw, records, train, alpha, cfg.td_gamma, cfg.td_lambda)
                w, b = fit_ridge(x[train], centre_by_group(targets, rec_groups)[train], alpha)
                preds["td (critic)"][held] = x_eval[held] @ w + b
        rows.append(scored(preds[name], name, whats[name], steps[name], len(records)))
        if critic:
            rows.append(scored(preds["td (critic)"], "td (critic)",
                               f"rollout prefixes, TD(lambda={cfg.td_lambda:g}) bootstrapped by a critic fitted on "
                               "the MC returns (GAE-style, as AgentPRM)", steps[name], len(records)))
    result = {"analysis": "labels", "run": str(root), "alpha": alpha, "tasks": tasks,
              "eval_groups": len(set(groups)), "seconds": round(time.time() - started, 1), "rows": rows}
    _write(root, "labels", result, _markdown(result), _plot)
    return result


def _critic_td(x: np.ndarray, returns: np.ndarray, records: list[dict[str, Any]], train: np.ndarray, alpha: float,
               gamma: float, lam: float) -> np.ndarray:
    """TD(lambda) targets of the rollout prefixes with a critic: a ridge V fitted on the Monte-Carlo returns of
    the ``train`` rows bootstraps every step (``Q_t = gamma ((1 - lam) V(s_{t+1}) + lam Q_{t+1})``, ``Q_T = R``).
    A rollout's prefixes are consecutive records of one task id with depths 0..T."""
    from agentrm_gym.rm.pooled import fit_ridge
    from agentrm_gym.train.extract import td_targets

    w, b = fit_ridge(x[train], returns[train], alpha)
    critic = x @ w + b
    out = returns.copy()
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or len(records[i]["state"].steps) == 0:  # a new rollout starts at depth 0
            out[start:i] = td_targets(float(returns[i - 1]), [float(v) for v in critic[start:i]], gamma, lam)
            start = i
    return out


def _markdown(result: dict[str, Any]) -> str:
    tasks = result["tasks"]
    lines = [f"# Labels at equal env steps: `{result['run']}`", "",
             f"Each label set trains the RM's head (its encoder + 4 statistics, ridge, alpha {result['alpha']:g}) on "
             "all held-in tasks but one and is scored on the left-out task's sampled final-state groups "
             f"({result['eval_groups']} groups; held-in TRAIN data only). Pairwise accuracy: chance 0.5. "
             f"Cost: {result['seconds']:.0f} s.", "",
             "| labels | what | env steps | states | task-mean acc. | Best-of-N lift | "
             + " | ".join(tasks) + " |", "|---|---|---|---|---|---|" + "---|" * len(tasks)]
    for r in result["rows"]:
        lines.append(f"| {r['labels']} | {r['what']} | {r['env_steps'] if r['env_steps'] is not None else '-'} | "
                     f"{r['states']} | {_acc(r['task_pairwise_accuracy'])} | {_acc(r['bon_lift'])} | "
                     + " | ".join(_acc(r["per_task"].get(t)) for t in tasks) + " |")
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], path: Path) -> Path:
    from agentrm_gym.train.report import _figure, _save

    rows = result["rows"]
    fig = _figure(7.5, 0.45 * len(rows) + 1.5)
    ax = fig.add_subplot()
    ax.barh([r["labels"] for r in rows][::-1], [r["task_pairwise_accuracy"] or 0.0 for r in rows][::-1],
            color="tab:green")
    ax.axvline(0.5, color="0.3", ls="--", lw=0.8)
    ax.set_xlabel("task-mean pairwise accuracy on left-out tasks' final-state groups (chance 0.5)")
    ax.set_xlim(0.3, 1.0)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)

