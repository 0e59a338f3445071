"""What a run's explicit RM rests on, measured on its held-in TRAIN pairs only (``agentrm analyze``; issue 21).

Every analysis re-uses the train-rm stage's own yardstick: the within-group pairwise accuracy of a head's
scores on the held-out folds of ``extract/pairs.jsonl`` (leave-one-task-out with ``rm_cv=task``, the folds,
alphas and group-centred targets of :mod:`agentrm_gym.rm.pooled`), averaged over tasks, and the offline
Best-of-N lift. No test id and no held-out task is read.

* :func:`state_ablation` - the RM without thoughts, without observations, without the statistics (the
  encoder alone), the statistics alone, and the "fewer repeated actions" heuristic; plus the same features
  under a within-group pairwise (Bradley-Terry) head instead of the ridge (:func:`fit_pairwise`);
* :func:`data_scaling` - the RM trained on 1/8, 1/4, 1/2 and all of the groups of each training fold.

Each writes ``RUN/analysis/<name>.md``, ``.json`` and ``.png``. The chosen encoder is the RM's own copy
(``RUN/rm/encoder``); embeddings are computed once per text variant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.files import write_json_atomic, write_text_atomic

#: The analyses of ``agentrm analyze`` (name -> what it measures); the functions are :data:`RUNNERS`.
ANALYSES = {"state-ablation": "RM CV without thoughts / observations / statistics, and a pairwise head",
            "data-scaling": "RM CV against the share of training groups used",
            "bon-scaling": "Best-of-N for N = 1..16 (RM, heuristic, oracle) and beam widths, on test episodes",
            "heatmap": "RM and SFT policy trained on one held-in task, evaluated on all nine",
            "perturbation": "RM-guided search vs the policy alone under instruction perturbations",
            "weak-to-strong": "the RM's Best-of-5 gain on policies it never saw (larger SFT, noisy oracle)",
            "labels": "MCTS vs TD vs MC value labels at equal env steps, held-in train data",
            "rm-candidates": "every RM candidate's Best-of-N pick against the heuristic's, held-in train data"}


# --------------------------------------------------------------------------------------------- inputs
def _run(root: Path) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    from agentrm_gym.train.config import load_config
    from agentrm_gym.train.extract import load_pairs

    cfg = load_config(root / "config.json")
    card_path = root / "rm" / "agentrm_rm.json"
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
    return cfg, load_pairs(root), card


def _backbone(root: Path, cfg: Any, card: dict[str, Any]) -> str:
    """The run's RM encoder: its copy in ``rm/encoder``, else the card's or the config's backbone."""
    path = root / "rm" / "encoder"
    return str(path) if (path / "config.json").exists() else str(card.get("backbone") or cfg.rm_backbone)


def _embed(root: Path, cfg: Any, card: dict[str, Any], texts: list[str]) -> np.ndarray:
    """The chosen encoder's embeddings of ``texts`` (the RM's copy in ``rm/encoder``, else ``rm_backbone``)."""
    from agentrm_gym.rm.backbones import _quiet_transformers
    from agentrm_gym.rm.format import RMFormat
    from agentrm_gym.rm.pooled import PooledValueRewardModel, load_encoder

    _quiet_transformers()
    encoder, tok = load_encoder(_backbone(root, cfg, card))
    rm = PooledValueRewardModel(encoder, tok, np.zeros(int(encoder.config.hidden_size)), 0.0,
                                RMFormat(style=cfg.rm_text), int(card.get("max_length") or cfg.rm_max_length))
    return rm.embed_texts(texts, progress=True).astype(np.float64)


class _Data:
    """Values, groups, tasks, folds and targets of the pairs, as the train-rm stage validates them."""

    def __init__(self, records: list[dict[str, Any]], cfg: Any):
        from agentrm_gym.rm.pooled import PooledConfig, centre_by_group, cv_folds

        self.records = records
        self.values = np.array([r["value"] for r in records])
        self.groups = [r["group"] for r in records]
        self.tasks = [r["task"] for r in records]
        self.y = centre_by_group(self.values, self.groups)
        self.alphas = list(cfg.rm_alphas)
        pooled = PooledConfig(cv=cfg.rm_cv, seed=cfg.seed)
        self.folds = cv_folds(records, sorted({(r["task"], r["task_id"]) for r in records}), pooled)

    def metrics(self, scores: np.ndarray) -> dict[str, Any]:
        from agentrm_gym.rm.pooled import group_ranking_metrics

        return group_ranking_metrics(scores, self.values, self.groups, self.tasks)

    def ridge(self, x: np.ndarray, keep: np.ndarray | None = None) -> dict[str, Any]:
        """CV of the ridge head (the RM's) on ``x``, training on the rows of ``keep`` only; best alpha."""
        return self._cv(x, keep, lambda a, tr: _ridge_predictor(x, self.y, tr, a))

    def pairwise(self, x: np.ndarray) -> dict[str, Any]:
        """CV of the within-group Bradley-Terry head on ``x`` (features standardised on the training folds)."""
        return self._cv(x, None, lambda a, tr: _bt_predictor(x, self.values, self.groups, tr, a),
                        alphas=[1e-4, 1e-3, 1e-2, 1e-1])

    def _cv(self, x: np.ndarray, keep: np.ndarray | None, fit: Callable[[float, np.ndarray], Any],
            alphas: Sequence[float] | None = None) -> dict[str, Any]:
        best: dict[str, Any] | None = None
        for alpha in alphas or self.alphas:
            pred = np.zeros(len(self.y))
            for k in np.unique(self.folds):
                train = (self.folds != k) & (keep if keep is not None else True)
                held = self.folds == k
                if train.any():
                    pred[held] = fit(alpha, train)(x[held])
            m = self.metrics(pred)
            if best is None or (m["task_pairwise_accuracy"] or 0.0) > (best["task_pairwise_accuracy"] or 0.0):
                best = {**m, "alpha": alpha}
        assert best is not None
        return best


def _ridge_predictor(x: np.ndarray, y: np.ndarray, train: np.ndarray, alpha: float) -> Callable[[np.ndarray], np.ndarray]:
    from agentrm_gym.rm.pooled import fit_ridge

    w, b = fit_ridge(x[train], y[train], alpha)
    return lambda z: z @ w + b


def fit_pairwise(x: np.ndarray, values: np.ndarray, groups: Sequence[Any], alpha: float,
                 iterations: int = 25) -> np.ndarray:
    """A linear Bradley-Terry head: ``w = argmin mean_{(i, j): v_i > v_j, g(i) = g(j)} -log sigmoid(w . (x_i -
    x_j)) + alpha / 2 |w|^2`` by Newton's method (the objective is convex; no intercept: it cancels)."""
    index: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    first, second = [], []
    for members in index.values():
        for a in members:
            for b in members:
                if values[a] > values[b] + 1e-9:
                    first.append(a)
                    second.append(b)
    w = np.zeros(x.shape[1])
    if not first:
        return w
    d = x[first] - x[second]
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(d @ w)))
        grad = -d.T @ (1.0 - p) / len(d) + alpha * w
        hess = (d * (p * (1.0 - p))[:, None]).T @ d / len(d) + alpha * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-7:
            break
    return w


def _bt_predictor(x: np.ndarray, values: np.ndarray, groups: Sequence[Any], train: np.ndarray,
                  alpha: float) -> Callable[[np.ndarray], np.ndarray]:
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
    idx = np.flatnonzero(train)
    w = fit_pairwise((x[idx] - mean) / std, values[idx], [groups[i] for i in idx], alpha)
    return lambda z: ((z - mean) / std) @ w


# ------------------------------------------------------------------------------------------- analyses
def _row(name: str, m: dict[str, Any], what: str) -> dict[str, Any]:
    return {"rm": name, "what": what, "task_pairwise_accuracy": m.get("task_pairwise_accuracy"),
            "pairwise_accuracy": m.get("pairwise_accuracy"), "bon_lift": m.get("bon_lift"), "alpha": m.get("alpha"),
            "per_task": {t: c["pairwise_accuracy"] for t, c in (m.get("per_task") or {}).items()}}


def state_ablation(run: str | Path) -> dict[str, Any]:
    """The RM's CV figures with parts of its input taken away (module docstring); writes
    ``RUN/analysis/state_ablation.{md,json,png}`` and returns the rows."""
    from agentrm_gym.rm.format import RMFormat
    from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel
    from agentrm_gym.rm.pooled import text_stats

    root = Path(run)
    cfg, records, card = _run(root)
    data = _Data(records, cfg)
    states = [r["state"] for r in records]
    fmt = RMFormat(style=cfg.rm_text)
    variants = {"": fmt, "no thoughts": RMFormat(style=cfg.rm_text, drop_thoughts=True),
                "no observations": RMFormat(style=cfg.rm_text, drop_observations=True)}
    texts = {k: [f.text(s) for s in states] for k, f in variants.items()}
    embedded: dict[tuple[str, ...], np.ndarray] = {}

    def features(variant: str, stats: bool = True, encoder: bool = True) -> np.ndarray:
        key = tuple(texts[variant])
        if encoder and key not in embedded:
            embedded[key] = _embed(root, cfg, card, texts[variant])
        parts = [embedded[key]] if encoder else []
        if stats:
            parts.append(np.stack([text_stats(t, variants[variant].obs_chars) for t in texts[variant]]))
        return np.hstack(parts)

    same_thoughts = texts["no thoughts"] == texts[""]
    rows = [
        _row("encoder + statistics", data.ridge(features("")), "the RM's features (chosen encoder + 4 statistics)"),
        _row("without thoughts", data.ridge(features("no thoughts")),
             "thoughts left out" + (" (the RM text shows none: same as above)" if same_thoughts else "")),
        _row("without observations", data.ridge(features("no observations")), "observations left out of the text"),
        _row("without statistics", data.ridge(features("", stats=False)), "the encoder alone (encoder-only)"),
        _row("statistics only", data.ridge(features("", encoder=False)), "the 4 statistics alone (stats-only)"),
        _row("heuristic", data.metrics(FewerRepeatsRewardModel().score(states)), "fewer repeated actions, no fit"),
        _row("pairwise head", data.pairwise(features("")), "encoder + statistics, Bradley-Terry within groups"),
        _row("pairwise head, statistics only", data.pairwise(features("", encoder=False)),
             "the 4 statistics, Bradley-Terry within groups"),
    ]
    result = {"analysis": "state-ablation", "run": str(root), "pairs": len(records),
              "cv": cfg.rm_cv, "folds": int(len(np.unique(data.folds))), "rows": rows}
    _write(root, "state_ablation", result, _markdown_rows(result, "State ablation"), _plot_rows)
    return result


def data_scaling(run: str | Path, fractions: Sequence[float] = (0.125, 0.25, 0.5, 1.0)) -> dict[str, Any]:
    """The RM's CV figures trained on a share of each training fold's groups (random, seeded; the held-out
    fold whole); writes ``RUN/analysis/data_scaling.{md,json,png}``."""
    from agentrm_gym.rm.format import RMFormat
    from agentrm_gym.rm.pooled import text_stats

    root = Path(run)
    cfg, records, card = _run(root)
    data = _Data(records, cfg)
    fmt = RMFormat(style=cfg.rm_text)
    texts = [fmt.text(r["state"]) for r in records]
    stats = np.stack([text_stats(t, fmt.obs_chars) for t in texts])
    emb = _embed(root, cfg, card, texts)
    groups = sorted(set(data.groups))
    order = np.random.default_rng(cfg.seed).permutation(len(groups))
    rank = {groups[i]: r for r, i in enumerate(order)}
    rows = []
    for frac in fractions:
        keep = np.array([rank[g] < max(1, round(frac * len(groups))) for g in data.groups])
        for name, x in (("encoder + statistics", np.hstack([emb, stats])), ("encoder only", emb),
                        ("statistics only", stats)):
            rows.append({**_row(name, data.ridge(x, keep), f"{frac:g} of the groups"), "fraction": frac,
                         "states": int(keep.sum())})
    result = {"analysis": "data-scaling", "run": str(root), "pairs": len(records), "cv": cfg.rm_cv,
              "folds": int(len(np.unique(data.folds))), "rows": rows}
    _write(root, "data_scaling", result, _markdown_rows(result, "Data scaling"), _plot_scaling)
    return result


# -------------------------------------------------------------------------------------------- outputs
def _acc(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _markdown_rows(result: dict[str, Any], title: str) -> str:
    rows = result["rows"]
    tasks = sorted({t for r in rows for t in r["per_task"]})
    folds = "leave-one-task-out" if result["cv"] == "task" and len(tasks) > 1 else "folds of task ids"
    lines = [f"# {title}: `{result['run']}`", "",
             f"Within-group pairwise accuracy (chance 0.5) on the held-out folds of the run's {result['pairs']} held-in "
             f"train pairs ({folds}, {result['folds']} folds; the RM's alphas and targets), the task mean first.", "",
             "| RM | what | task-mean acc. | pooled acc. | Best-of-N lift | " + " | ".join(tasks) + " |",
             "|---|---|---|---|---|" + "---|" * len(tasks)]
    for r in rows:
        lines.append(f"| {r['rm']} | {r['what']} | {_acc(r['task_pairwise_accuracy'])} | {_acc(r['pairwise_accuracy'])} "
                     f"| {_acc(r['bon_lift'])} | " + " | ".join(_acc(r["per_task"].get(t)) for t in tasks) + " |")
    return "\n".join(lines) + "\n"


def _plot_rows(result: dict[str, Any], path: Path) -> Path:
    from agentrm_gym.train.report import _figure, _save

    rows = result["rows"]
    fig = _figure(7.5, 0.45 * len(rows) + 1.5)
    ax = fig.add_subplot()
    ax.barh([r["rm"] for r in rows][::-1], [r["task_pairwise_accuracy"] or 0.0 for r in rows][::-1], color="tab:blue")
    ax.axvline(0.5, color="0.3", ls="--", lw=0.8)
    ax.set_xlabel("task-mean pairwise accuracy (held-out folds; chance 0.5)")
    ax.set_xlim(0.3, 1.0)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _plot_scaling(result: dict[str, Any], path: Path) -> Path:
    from agentrm_gym.train.report import _figure, _save

    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    for name in dict.fromkeys(r["rm"] for r in result["rows"]):
        pts = [(r["states"], r["task_pairwise_accuracy"] or 0.0) for r in result["rows"] if r["rm"] == name]
        ax.plot(*zip(*pts, strict=True), marker="o", label=name)
    ax.axhline(0.5, color="0.3", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training states (log)")
    ax.set_ylabel("task-mean pairwise accuracy")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _write(root: Path, name: str, result: dict[str, Any], markdown: str,
           plot: Callable[[dict[str, Any], Path], Path]) -> None:
    out = root / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{name}.json", result)
    from agentrm_gym.extras import is_available

    png = ""
    if is_available("matplotlib"):
        png = f"\n![{name}]({plot(result, out / f'{name}.png').name})\n"
    write_text_atomic(out / f"{name}.md", markdown + png)


def _bon_scaling(run: str | Path, *, size: str = "full") -> dict[str, Any]:
    from agentrm_gym.train.analyses_search import bon_scaling

    return bon_scaling(run, size=size)


def _weak_to_strong(run: str | Path, *, size: str = "full") -> dict[str, Any]:
    from agentrm_gym.train.analyses_search import weak_to_strong

    return weak_to_strong(run, size=size)


def _heatmap(run: str | Path, *, size: str = "full") -> dict[str, Any]:
    from agentrm_gym.train.analyses_transfer import heatmap

    return heatmap(run, size=size)


def _labels(run: str | Path) -> dict[str, Any]:
    from agentrm_gym.train.analyses_labels import labels

    return labels(run)


def _rm_candidates(run: str | Path) -> dict[str, Any]:
    from agentrm_gym.train.analyses_candidates import rm_candidates

    return rm_candidates(run)


def _perturbation(run: str | Path, *, size: str = "full") -> dict[str, Any]:
    """:func:`agentrm_gym.train.analyses_perturb.perturbation`, imported only when asked for."""
    from agentrm_gym.core import MissingExtra

    try:
        from agentrm_gym.train.analyses_perturb import perturbation
    except ModuleNotFoundError as exc:
        if exc.name != "agentrm_gym.train.analyses_perturb":
            raise
        others = ", ".join(k for k in ANALYSES if k != "perturbation")
        raise MissingExtra("perturbation: its module agentrm_gym/train/analyses_perturb.py is not in this install; "
                           f"update agentrm-gym, or run another analysis ({others})") from exc
    return perturbation(run, size=size)


#: ``agentrm analyze NAME RUN`` -> the function. Those with a ``size`` keyword (``smoke`` | ``full``) get
#: ``--size``; the others have one size.
RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"state-ablation": state_ablation, "data-scaling": data_scaling,
                                                     "bon-scaling": _bon_scaling, "heatmap": _heatmap,
                                                     "perturbation": _perturbation,
                                                     "weak-to-strong": _weak_to_strong, "labels": _labels,
                                                     "rm-candidates": _rm_candidates}
