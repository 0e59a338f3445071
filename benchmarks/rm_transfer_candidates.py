"""Two more ways to make the RM's head transfer to a held-in task it never saw (issue 21, train data only).

Usage::

    python benchmarks/rm_transfer_candidates.py runs/demo_idle

Leave-one-task-out over the run's held-in tasks, as ``agentrm analyze rm-candidates``: each head is fitted on
two tasks' pairs (ridge on group-centred values) and picks among the third task's sampled groups, against
the heuristic's pick (ties share a pick), 95% bootstrap CI over groups, per task the mean. Rows:

* ``plain``: the run's RM features (its encoder's embedding + the four trajectory statistics), as trained;
* ``within-group centred``: the same features minus their group's mean (the fixed-effects fit: the head
  learns only from differences between siblings, none of a task's level), and that with every task's
  features also standardised;
* ``shape``: task-agnostic flags of every step (a new action? a new observation? a changed one?), their
  shares over all and the last five steps, bigrams of (new action, new observation), how late the last new
  action came; ``+ goal words``: the share of steps whose observation shows a goal word first and of the
  goal's words seen; each alone and added to the RM's features;
* ``goal similarity``: the run's encoder's cosine between the goal and each observation (its maximum, the
  last, the mean of the last five, the mean, the last minus the first) and each action (maximum, mean of
  the last five, mean), alone and beside the four statistics.

Prints one line per (features, alpha). Embeddings are cached in the run's ``analysis/labels_embeddings.npz``.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
from rm_transfer_distance import open_run

from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.heuristic import repeated_actions
from agentrm_gym.rm.pooled import STAT_NAMES, centre_by_group, fit_ridge, text_stats
from agentrm_gym.rm.selector import final_groups, gain_over_heuristic, pick_differences
from agentrm_gym.train.analyses_labels import _embeddings
from agentrm_gym.trajectory import AgentState

_STOP = frozenset("the and with for from some put find two your task you then that this".split())
_BIGRAMS = list(itertools.product(itertools.product((False, True), repeat=2), repeat=2))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in _STOP}


def shape_features(state: AgentState, goal_words: bool = False) -> np.ndarray:
    """The ``shape`` features of a state (module docstring); ``goal_words`` appends the two goal shares."""
    goal = _words(state.goal)
    actions: set[str] = set()
    observations: set[str] = set()
    seen_goal: set[str] = set()
    prev = " ".join(state.observation.lower().split())[:50]
    flags, goal_steps = [], 0
    for step in state.steps:
        action, obs = " ".join(step.action.lower().split()), " ".join(step.observation.lower().split())[:50]
        flags.append((action not in actions, obs not in observations, obs != prev))
        new_goal = (_words(step.observation) & goal) - seen_goal
        goal_steps += bool(new_goal)
        seen_goal |= new_goal
        actions.add(action)
        observations.add(obs)
        prev = obs
    n, last = max(1, len(flags)), flags[-5:]
    out = [sum(f[k] for f in flags) / n for k in range(3)] + [sum(f[k] for f in last) / max(1, len(last))
                                                               for k in range(3)]
    pairs = [f[:2] for f in flags]
    steps = list(zip(pairs[:-1], pairs[1:], strict=True))
    out += [steps.count(bigram) / n for bigram in _BIGRAMS]
    new = [i for i, f in enumerate(flags) if f[0]]
    out.append((new[-1] + 1) / n if new else 0.0)
    if goal_words:
        out += [goal_steps / n, len(seen_goal) / max(1, len(goal))]
    return np.array(out, dtype=np.float64)


def goal_similarity(root: Path, cfg: object, card: dict, states: list[AgentState]) -> np.ndarray:
    """The ``goal similarity`` features of ``states`` (module docstring), with the run's encoder."""
    from agentrm_gym.rm.pooled import PooledValueRewardModel, load_encoder
    from agentrm_gym.train.analyses import _backbone

    def clip(text: str, limit: int = 200) -> str:
        return " ".join(text.split())[:limit]

    index: dict[str, int] = {}
    for st in states:
        for text in [st.goal, clip(st.observation), *(clip(x.observation) for x in st.steps),
                     *(clip(x.action, 100) for x in st.steps)]:
            index.setdefault(text, len(index))
    encoder, tok = load_encoder(_backbone(root, cfg, card))
    emb = PooledValueRewardModel(encoder, tok, np.zeros(int(encoder.config.hidden_size)), 0.0, max_length=128,
                                 batch_size=64).embed_texts(list(index), progress=True).astype(np.float64)
    out = []
    for st in states:
        goal = emb[index[st.goal]]
        obs = np.array([emb[index[clip(x.observation)]] @ goal for x in st.steps] or
                       [emb[index[clip(st.observation)]] @ goal])
        act = np.array([emb[index[clip(x.action, 100)]] @ goal for x in st.steps] or [0.0])
        out.append([obs.max(), obs[-1], obs[-5:].mean(), obs.mean(), obs[-1] - obs[0], act.max(), act[-5:].mean(),
                    act.mean()])
    return np.array(out)


def _within(x: np.ndarray, groups: list[str], tasks: np.ndarray | None = None) -> np.ndarray:
    """Each row minus its group's mean; with ``tasks``, then every task's columns scaled to unit deviation."""
    out = x.copy()
    for g in set(groups):
        rows = [i for i, h in enumerate(groups) if h == g]
        out[rows] -= out[rows].mean(axis=0)
    if tasks is not None:
        for t in set(tasks):
            out[tasks == t] /= out[tasks == t].std(axis=0) + 1e-6
    return out


def main(argv: list[str] | None = None) -> None:
    opened = open_run(argv, __doc__, "with two held-in tasks or more")
    if opened is None:
        return
    root, cfg, pairs, card = opened
    tasks = np.array([p["task"] for p in pairs])
    names = sorted(set(tasks))
    if len(names) < 2:
        print(f"skipped: {root}'s pairs hold one task; leave-one-task-out needs two")
        return
    fmt = RMFormat(style=cfg.rm_text)
    texts = [fmt.text(p["state"]) for p in pairs]
    rm = np.hstack([_embeddings(root, cfg, card, texts), np.array([text_stats(t, fmt.obs_chars) for t in texts])])
    values = np.array([p["value"] for p in pairs])
    groups = [p["group"] for p in pairs]
    y = centre_by_group(values, groups)
    repeats = np.array([repeated_actions(p["state"]) for p in pairs], dtype=np.float64)
    members = final_groups(groups, [p["source"] for p in pairs])
    shape = np.array([shape_features(p["state"]) for p in pairs])
    goal = np.array([shape_features(p["state"], goal_words=True) for p in pairs])
    rows = {"plain (the run's RM features)": rm, "within-group centred": _within(rm, groups),
            "within-group centred, task-standardised": _within(rm, groups, tasks), "shape": shape,
            "shape + goal words": goal, "RM features + shape": np.hstack([rm, shape]),
            "RM features + shape + goal words": np.hstack([rm, goal])}
    similarity = goal_similarity(root, cfg, card, [p["state"] for p in pairs])
    rows.update({"goal similarity": similarity,
                 "goal similarity + 4 statistics": np.hstack([similarity, rm[:, -len(STAT_NAMES):]])})
    print(f"{len(members)} groups over {', '.join(names)}; leave-one-task-out; points vs the heuristic's pick")
    for t in names:  # the room: the heuristic's pick (ties share it) against the best candidate's value
        own = [m for m in members if tasks[m[0]] == t]
        best = np.mean([values[m].max() for m in own])
        pick = np.mean([values[m][repeats[m] == repeats[m].min()].mean() for m in own])
        print(f"  {t}: heuristic's pick {100 * pick:.1f}, best candidate {100 * best:.1f} (progress, %)")
    print(f"{'features':<42} {'alpha':>6}  {'vs heuristic (95% CI)':<22} " + " ".join(f"{t:>12}" for t in names))
    for label, x in rows.items():
        for alpha in (0.1, 1.0, 10.0):
            pred = np.zeros(len(pairs))
            for task in names:
                w, b = fit_ridge(x[tasks != task], y[tasks != task], alpha)
                pred[tasks == task] = x[tasks == task] @ w + b
            g = gain_over_heuristic(pred, repeats, values, members, cfg.seed)
            per = [pick_differences(pred, repeats, values, [m for m in members if tasks[m[0]] == t]).mean()
                   for t in names]
            ci = f"{100 * g['mean']:+.1f} [{100 * g['ci'][0]:+.1f}, {100 * g['ci'][1]:+.1f}]"
            print(f"{label:<42} {alpha:>6g}  {ci:<22} " + " ".join(f"{100 * v:>+12.1f}" for v in per))


if __name__ == "__main__":
    main()
