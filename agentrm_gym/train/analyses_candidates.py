"""``agentrm analyze rm-candidates RUN``: every RM candidate against the heuristic, on held-in TRAIN data (issue 21).

The test that matters for a learned RM is whether it picks better Best-of-N candidates than "fewer repeated
actions" on a task it never saw. This analysis asks that of each candidate *before* any test id is read:
leave-one-task-out over the run's held-in tasks, each candidate is fitted on the other tasks' pairs
(``extract/pairs.jsonl``) and picks among the left-out task's sampled groups (their final states, the
states Best-of-N ranks). For every group it records the progress of the candidate's pick minus the
heuristic's pick (ties share the pick, as Table 1 averages them); the table gives the mean over groups with
a 95% bootstrap CI, per task and pooled, beside the within-group pairwise accuracy and the Best-of-N lift
over a random candidate.

The candidates: the run's RM (its encoder's embedding + the four trajectory statistics, ridge on
group-centred values at its alpha); the same with four repeat statistics added (repeated actions,
repeated action-observation pairs, repeated observations, repeats among the last five actions); a
within-group Bradley-Terry head on those features; the RM trained on its pairs plus every prefix of the
MCTS rollouts valued by Monte-Carlo returns; the heuristic with the RM breaking its ties; the encoder
alone; blends of the RM's standardised value and the repeat count; and the encoder fine-tuned (its top layer and a head on it and the eight statistics, within-group
Bradley-Terry, :mod:`agentrm_gym.rm.finetune`; one fine-tuning per left-out task, ~1-5 min each on 2 cores).
A second table (``in_task``) asks the same of the RM, the encoder alone, the statistics alone and the
heuristic with the RM breaking ties on five task-id folds *within* the held-in tasks, every task in training:
how the RM ranks a task it was trained on (the train-rm stage chooses its training tasks' selector this way).
Writes ``RUN/analysis/rm_candidates.{json,md,png}``; embeddings share the cache of ``agentrm analyze labels``
(``RUN/analysis/labels_embeddings.npz``), the fine-tuned scores are cached in
``RUN/analysis/rm_candidates_finetuned.npz``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.finetune import FinetuneConfig
from agentrm_gym.train.analyses import _acc, _backbone, _run, _write, fit_pairwise

#: The fine-tuned encoder candidate's settings (:class:`~agentrm_gym.rm.finetune.FinetuneConfig`).
FINETUNE = FinetuneConfig()
#: The weights on the repeat count of the blends of the run's RM and the heuristic.
BLENDS = (0.5, 1.0)
#: The extra statistics of the ``+ repeats`` candidate, in order.
REPEAT_NAMES = ("repeated_actions_over_20", "repeated_action_observations_over_20", "repeated_observations_over_20",
                "repeats_in_last_5")


def repeat_stats(state: Any) -> np.ndarray:
    """:data:`REPEAT_NAMES` of a state (actions and the first 50 characters of observations, case folded)."""
    actions = [" ".join(s.action.lower().split()) for s in state.steps]
    observations = [" ".join(s.observation.lower().split())[:50] for s in state.steps]
    pairs = list(zip(actions, observations, strict=True))
    last = actions[-5:]
    return np.array([(len(actions) - len(set(actions))) / 20, (len(pairs) - len(set(pairs))) / 20,
                     (len(observations) - len(set(observations))) / 20, (len(last) - len(set(last))) / 5])


def rm_candidates(run: str | Path, resamples: int = 2000) -> dict[str, Any]:
    """Cross-validate each candidate against the heuristic (module docstring); writes
    ``RUN/analysis/rm_candidates.{md,json,png}`` and returns the rows."""
    from agentrm_gym.rm.format import RMFormat
    from agentrm_gym.rm.heuristic import repeated_actions
    from agentrm_gym.rm.pooled import (
        PooledConfig,
        centre_by_group,
        cv_folds,
        cv_predictions,
        fit_ridge,
        group_ranking_metrics,
        text_stats,
    )
    from agentrm_gym.rm.selector import final_groups, gain_over_heuristic, heuristic_ties, pick_differences
    from agentrm_gym.train.analyses_labels import _embeddings, label_sets, require_two_tasks

    started = time.time()
    root = Path(run)
    cfg, pairs, card = _run(root)
    require_two_tasks([p for p in pairs if p["source"] == "group"], "rm-candidates")
    fmt = RMFormat(style=cfg.rm_text)
    alpha = float(card.get("metrics", {}).get("alpha") or 10.0)
    rollouts = label_sets(root, cfg)[0]["mc"]
    records = pairs + rollouts
    texts = [fmt.text(r["state"]) for r in records]
    e = _embeddings(root, cfg, card, texts)
    s = np.array([text_stats(t, fmt.obs_chars) for t in texts])
    rep = np.array([repeat_stats(r["state"]) for r in records])
    values = np.array([r["value"] for r in records])
    groups = [r["group"] for r in records]
    y = centre_by_group(values, groups)
    tasks = np.array([r["task"] for r in records])
    is_pair = np.arange(len(records)) < len(pairs)
    repeats = np.array([repeated_actions(r["state"]) for r in records], dtype=np.float64)
    heuristic = -repeats
    members = final_groups([r["group"] for r in pairs], [r["source"] for r in pairs])
    task_names = sorted({tasks[m[0]] for m in members})

    def ridge(x: np.ndarray, train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        w, b = fit_ridge(x[train], y[train], alpha)
        return lambda z: z @ w + b

    def pairwise(x: np.ndarray, train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
        idx = np.flatnonzero(train)
        w = fit_pairwise((x[idx] - mean) / std, values[idx], [groups[i] for i in idx], 1e-2)
        return lambda z: ((z - mean) / std) @ w

    es, esr = np.hstack([e, s]), np.hstack([e, s, rep])
    candidates: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray] | None]] = {
        "the run's RM": ("encoder + 4 statistics, ridge (the train-rm stage's head)", lambda tr: ridge(es, tr)),
        "+ repeat statistics": ("encoder + 4 statistics + 4 repeat counts, ridge", lambda tr: ridge(esr, tr)),
        "Bradley-Terry head": ("encoder + 4 statistics + 4 repeat counts, within-group BT", lambda tr: pairwise(esr, tr)),
        "+ rollout prefixes": ("the RM trained on its pairs plus every MCTS-rollout prefix (MC returns)",
                               lambda tr: ridge(es, tr)),
        "encoder only": ("the run's encoder alone, ridge", lambda tr: ridge(e, tr)),
    }
    features = {"the run's RM": es, "+ repeat statistics": esr, "Bradley-Terry head": esr, "+ rollout prefixes": es,
                "encoder only": e}
    scores: dict[str, np.ndarray] = {"heuristic": heuristic}
    for name, (_, fit) in candidates.items():
        pred = np.zeros(len(records))
        for task in task_names:
            train = (tasks != task) & (is_pair | (name == "+ rollout prefixes"))
            held = tasks == task
            pred[held] = fit(train)(features[name][held])
        scores[name] = pred
    n = len(pairs)  # the rollouts only train the "+ rollout prefixes" candidate: not encoded again here
    scores["fine-tuned encoder"] = np.concatenate([
        _finetuned(root, card, cfg, texts[:n], np.hstack([s, rep])[:n], values[:n], groups[:n], tasks[:n], task_names),
        np.zeros(len(records) - n)])
    rm = scores["the run's RM"]
    scores["heuristic, RM breaks ties"] = heuristic_ties(rm, repeats, float(rm.mean()), float(rm.std() or 1.0))
    z = (rm - rm.mean()) / (rm.std() or 1.0)
    for lam in BLENDS:
        scores[f"RM - {lam:g} x repeats"] = z - lam * repeats
    whats = {"heuristic": "fewer repeated actions (nothing learned)",
             **{k: v[0] for k, v in candidates.items()},
             "fine-tuned encoder": f"the encoder's top {FINETUNE.layers} layer(s) + a head on it and the 8 statistics, "
                                   "trained with a within-group Bradley-Terry loss",
             "heuristic, RM breaks ties": "the heuristic's pick; the run's RM decides among its ties",
             **{f"RM - {lam:g} x repeats": f"the run's RM standardised, minus {lam:g} per repeated action (between "
                f"the RM alone and the heuristic with its ties broken)" for lam in BLENDS}}
    group_task = np.array([tasks[m[0]] for m in members])
    idx = [i for m in members for i in m]

    def row(name: str, score: np.ndarray, what: str) -> dict[str, Any]:
        diffs = pick_differences(score, repeats, values, members)
        gain = gain_over_heuristic(score, repeats, values, members, cfg.seed, resamples)
        m = group_ranking_metrics(score[idx], values[idx], [groups[i] for i in idx], list(tasks[idx]))
        return {"rm": name, "what": what, "task_pairwise_accuracy": m["task_pairwise_accuracy"],
                "bon_lift": m["bon_lift"], "vs_heuristic": gain["mean"], "ci": gain["ci"],
                "per_task": {t: float(diffs[group_task == t].mean()) for t in task_names}}

    # in-task: task-id folds within the held-in tasks, every task in training (the RM on a task it was trained on)
    folds = cv_folds(pairs, sorted({(p["task"], p["task_id"]) for p in pairs}), PooledConfig(cv="task_id", seed=cfg.seed))
    in_task = {"heuristic": heuristic}
    for name, x in [("the run's RM", es), ("encoder only", e), ("statistics only", s)]:
        in_task[name] = np.concatenate([cv_predictions(x[:n], y[:n], folds, alpha), np.zeros(len(records) - n)])
    own = in_task["the run's RM"]
    in_task["heuristic, RM breaks ties"] = heuristic_ties(own, repeats, float(own.mean()), float(own.std() or 1.0))
    whats["statistics only"] = "the four trajectory statistics alone, ridge"
    result = {"analysis": "rm-candidates", "run": str(root), "alpha": alpha, "tasks": task_names,
              "groups": len(members), "seconds": round(time.time() - started, 1),
              "rows": [row(name, score, whats[name]) for name, score in scores.items()],
              "in_task": [row(name, score, whats[name]) for name, score in in_task.items()]}
    _write(root, "rm_candidates", result, _markdown(result), _plot)
    return result


def _finetuned(root: Path, card: dict[str, Any], cfg: Any, texts: list[str], features: np.ndarray, values: np.ndarray,
               groups: list[Any], tasks: np.ndarray, task_names: list[str]) -> np.ndarray:
    """Leave-one-task-out scores of the fine-tuned encoder (:mod:`agentrm_gym.rm.finetune`), one fine-tuning per
    held-in task left out; cached in ``RUN/analysis/rm_candidates_finetuned.npz`` by the texts and settings."""
    from agentrm_gym.rm.finetune import GroupPreferenceFinetuner
    config = replace(FINETUNE, max_length=int(card.get("max_length") or cfg.rm_max_length))
    key = hashlib.sha1(repr((config, texts, values.tolist(), groups, task_names)).encode("utf-8")).hexdigest()
    cache = root / "analysis" / "rm_candidates_finetuned.npz"
    if cache.exists():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                return z["scores"]
    from agentrm_gym.rm.pooled import load_encoder

    encoder, tok = load_encoder(_backbone(root, cfg, card))
    tuner = GroupPreferenceFinetuner(encoder, tok, config)
    tuner.prepare(texts, progress=True)
    pred = np.zeros(len(texts))
    for task in task_names:
        held = tasks == task
        pred[held] = tuner.fit_score(features, values, groups, tasks != task, held, progress=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), scores=pred)
    return pred


def _markdown(result: dict[str, Any]) -> str:
    tasks = result["tasks"]
    head = ["| candidate | what | task-mean acc. | Best-of-N lift | vs heuristic (points) | " + " | ".join(tasks) + " |",
            "|---|---|---|---|---|" + "---|" * len(tasks)]
    lines = [f"# RM candidates against the heuristic: `{result['run']}`", "",
             "Leave-one-task-out over the held-in tasks' TRAIN pairs; each candidate picks among the left-out "
             f"task's {result['groups']} sampled groups. `vs heuristic`: progress points of its pick minus the "
             "heuristic's (ties share the pick), mean over groups with a 95% bootstrap CI; per task the mean. "
             f"Pairwise accuracy: chance 0.5. Cost: {result['seconds']:.0f} s.", "", *head]

    def table(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            lo, hi = r["ci"]
            noise = " (noise)" if lo <= 0 <= hi else ""
            lines.append(f"| {r['rm']} | {r['what']} | {_acc(r['task_pairwise_accuracy'])} | {_acc(r['bon_lift'])} | "
                         f"{100 * r['vs_heuristic']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]{noise} | "
                         + " | ".join(f"{100 * r['per_task'][t]:+.1f}" for t in tasks) + " |")

    table(result["rows"])
    if result.get("in_task"):
        lines += ["", "## In-task: task-id folds within the held-in tasks", "",
                  "Five folds of task ids; each head is fitted on every held-in task's other folds and picks in the "
                  "held-out ids' groups: how the RM ranks a task it was trained on (the train-rm stage chooses "
                  "its selector for its training tasks this way).", "", *head]
        table(result["in_task"])
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], path: Path) -> Path:
    from agentrm_gym.train.report import _figure, _save

    rows = result["rows"]
    fig = _figure(7.5, 0.45 * len(rows) + 1.5)
    ax = fig.add_subplot()
    means = [100 * r["vs_heuristic"] for r in rows][::-1]
    err = np.array([[100 * (r["vs_heuristic"] - r["ci"][0]), 100 * (r["ci"][1] - r["vs_heuristic"])]
                    for r in rows][::-1]).T
    ax.barh([r["rm"] for r in rows][::-1], means, xerr=err, color="tab:purple", capsize=3)
    ax.axvline(0.0, color="0.3", ls="--", lw=0.8)
    ax.set_xlabel("Best-of-N progress vs the heuristic's pick (points, left-out held-in task, 95% CI)")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
