"""The pooled explicit RM: a frozen sentence encoder, its own mean pooling, and a ridge value head.

What search needs from an RM is the ranking of the candidates of one episode (Best-of-N compares the
final states of one task id, beam compares siblings), and on a CPU the budget is a few thousand states.
This model spends it where it pays:

* **Representation.** The backbone's own pooling: all-MiniLM-L6-v2 is a mean-pooling sentence encoder,
  so a state's embedding is the attention-masked mean of its last hidden states, L2-normalised. The
  encoder stays frozen, so every training state is encoded once (length-bucketed batches) and the head
  trains in milliseconds.
* **Objective.** Ridge regression on *relative* targets: each state's value minus the mean value of its
  group (the candidates of one episode, or the siblings of one tree node). Raw values differ across
  tasks (WebShop ~0.4, ScienceWorld ~0.05); centred ones say only which candidate is better, which is
  what transfers to a held-out task's header. ``V(s) = w . e(s) + b`` with
  ``w = argmin sum_i (w . e_i + b - (v_i - mean_{g(i)} v))^2 + alpha |w|^2``.
* **Trajectory statistics** (``stats=True``, the pipeline's ``rm_stats``): four task-agnostic numbers read
  off the RM text are appended to the embedding (:func:`text_stats`: steps taken / 20, the share of
  distinct actions, the share of distinct observation snippets, whether the last action repeats an
  earlier one). A mean-pooled embedding hardly encodes counts or loops, and those cues mean the same on a
  task the RM never saw. They are a function of the text alone, so the score cache and the served
  RM's text route stay exact.
* **Validation.** ``alpha`` is chosen by cross-validation on within-group pairwise accuracy. With
  ``cv="task"`` (the pipeline's default) the folds are the tasks (leave-one-task-out): the RM is meant
  for tasks it never saw, so alpha is chosen for transfer to an unseen task, from held-in data alone.
  With ``cv="task_id"`` (or a single task) K folds split *task ids*, so the siblings of one episode never
  straddle train and validation. The card reports that accuracy and the offline Best-of-N lift (the
  selected candidate's value minus the group mean) on the held-out folds, per task.

Quick start::

    from agentrm_gym.rm.pooled import PooledConfig, train_pooled_rm
    rm = train_pooled_rm([{"state": s, "value": v, "group": g, "task_id": tid}, ...], PooledConfig(),
                         out_dir="runs/rm")
    rm.score(states)
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.backbones import ensure_pad_token, require_torch, resolve_backbone
from agentrm_gym.rm.base import RewardModel
from agentrm_gym.rm.card import RMLoadError, write_card
from agentrm_gym.rm.format import RMFormat, split_rm_text
from agentrm_gym.trajectory import AgentState, state_from_dict

HEAD_NAME = "value_head.json"

#: The names of :func:`text_stats`' numbers, in order (the card lists them).
STAT_NAMES = ("steps_over_20", "distinct_actions", "distinct_observations", "last_action_repeats")
_STEP_LINE = re.compile(r"^(\d+)\. (.*?)(?: -> (.*))?$")


def _history(text: str, snippet: int) -> tuple[int | None, list[str], list[str]]:
    """``(steps taken, actions, observation snippets)`` of an RM text's history, case folded."""
    _, history = split_rm_text(text)
    actions: list[str] = []
    observations: list[str] = []
    steps = None
    for line in history.splitlines():
        if line.startswith("Steps taken: "):
            digits = line[len("Steps taken: "):].rstrip(".")
            steps = int(digits) if digits.isdigit() else None
        elif line.startswith("Action: "):
            actions.append(line[len("Action: "):].strip().lower())
        elif line.startswith("Observation: "):
            observations.append(line[len("Observation: "):].strip().lower()[:snippet])
        elif (match := _STEP_LINE.match(line)) is not None:
            actions.append(match.group(2).strip().lower())
            observations.append((match.group(3) or "").strip().lower()[:snippet])
    if len(observations) > len(actions):  # the full style's first observation precedes any action
        observations = observations[len(observations) - len(actions):]
    return steps, actions, observations


def text_repeats(text: str) -> int:
    """How many actions of an RM text's history repeat an earlier one (whitespace folded): the "fewer repeated
    actions" count read off the text (the compact style clips an action at 80 characters)."""
    actions = [" ".join(a.split()) for a in _history(text, 50)[1]]
    return len(actions) - len(set(actions))


def text_stats(text: str, snippet: int = 50) -> np.ndarray:
    """Four task-agnostic statistics of an RM text's history (:data:`STAT_NAMES`).

    Reads both text styles: the compact one (``Steps taken: N.`` then ``i. action -> observation``) and
    the full one (``Action:`` / ``Observation:`` lines). Observations are compared on their first
    ``snippet`` characters (what the compact text shows of every step but the last). A history with no
    step gives zeros.
    """
    steps, actions, observations = _history(text, snippet)
    n = len(actions)
    if n == 0:
        return np.zeros(len(STAT_NAMES))
    return np.array([(steps if steps is not None else n) / 20.0, len(set(actions)) / n,
                     len(set(observations)) / n, float(actions[-1] in actions[:-1])])


@dataclass
class PooledConfig:
    """Hyperparameters of :func:`train_pooled_rm`.

    Attributes:
        backbone: ``"minilm"`` (the packaged all-MiniLM-L6-v2) or a directory of a Hugging Face encoder.
        max_length: encoder tokens (header kept, history cut from the left beyond it).
        stats: append :func:`text_stats` to the embedding.
        alphas: ridge strengths tried by the grouped cross-validation.
        folds: cross-validation folds when they split task ids.
        cv: ``"task"`` (leave-one-task-out; task-id folds when there is one task) or ``"task_id"``.
        target: ``"centred"`` (value minus its group's mean) or ``"raw"``.
        batch_size: texts per encoder forward pass.
        seed: fold assignment.
        selector: ``auto`` (chosen by cross-validation against the heuristic), ``ridge`` or ``heuristic-ties``
            (:mod:`agentrm_gym.rm.selector`).
        seen_selector: with ``cv="task"`` and two tasks or more, choose a second selector for the training
            tasks' own states, by task-id folds within them (the RM ranks a task it was trained on from
            in-task data, a task it never saw from transfer); ``False``: one selector for every task.
    """

    backbone: str = "minilm"
    max_length: int = 384
    stats: bool = False
    alphas: list[float] = field(default_factory=lambda: [0.3, 1.0, 3.0, 10.0])
    folds: int = 5
    cv: str = "task_id"
    target: str = "centred"
    batch_size: int = 32
    seed: int = 0
    selector: str = "auto"
    seen_selector: bool = True


class PooledValueRewardModel(RewardModel):
    """``V(s) = w . [meanpool(encoder(text(s))), stats(text(s))] + b`` with a frozen encoder.

    Args:
        encoder: a Hugging Face encoder (``AutoModel``; a decoder's hidden states serve as well).
        tokenizer: its tokenizer.
        weights, bias: the linear value head on the normalised embedding (and the statistics).
        stats: whether :func:`text_stats` follow the embedding (``weights`` then has 4 more entries).
        fmt: the RM text format.
        max_length: encoder tokens.
        tie_break: ``{"center", "scale"}`` to rank by the heuristic first and by the value within its ties
            (:func:`agentrm_gym.rm.selector.heuristic_ties`); ``None``: the value itself.
        seen: ``{"tasks": [...], "tie_break": {...} | None}``: the selector of the states of the tasks the RM
            was trained on (read off the RM text's header, :meth:`RMFormat.task_of`); ``tie_break`` then
            ranks the others. ``None``: ``tie_break`` ranks every state.
    """

    kind = "pooled_value"

    def __init__(self, encoder: Any, tokenizer: Any, weights: Sequence[float] | np.ndarray, bias: float = 0.0,
                 fmt: RMFormat | None = None, max_length: int = 384, batch_size: int = 32, backbone: str = "",
                 meta: dict[str, Any] | None = None, cache_size: int = 100_000, stats: bool = False,
                 tie_break: dict[str, float] | None = None, seen: dict[str, Any] | None = None):
        super().__init__(fmt=fmt or RMFormat(style="compact"), batch_size=batch_size, cache_size=cache_size)
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        self.bias = float(bias)
        self.max_length = max_length
        self.backbone = backbone
        self.meta = dict(meta or {})
        self.use_stats = bool(stats)
        self.tie_break = dict(tie_break) if tie_break else None
        self.seen = ({"tasks": [str(t) for t in seen["tasks"]],
                      "tie_break": dict(seen["tie_break"]) if seen.get("tie_break") else None} if seen else None)

    def features(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """What the head reads: the embeddings, followed by :func:`text_stats` when ``stats`` is on."""
        return self.with_stats(self.embed_texts(texts, progress=progress).astype(np.float64), texts)

    def with_stats(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``embeddings`` of ``texts`` followed by their :func:`text_stats` when ``stats`` is on."""
        if not self.use_stats:
            return embeddings
        return np.hstack([embeddings, np.stack([text_stats(t, self.fmt.obs_chars) for t in texts])])

    def embed_texts(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, encoded in length-sorted batches."""
        from agentrm_gym.rm.backbones import encode_rm_inputs

        torch = require_torch()
        out = np.zeros((len(texts), int(self.encoder.config.hidden_size)), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        device = next(self.encoder.parameters()).device
        starts = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="encode RM states", unit="batch")
        with torch.inference_mode():
            for start in starts:
                idx = order[start:start + self.batch_size]
                enc = encode_rm_inputs(self.tokenizer, [split_rm_text(texts[i]) for i in idx], self.max_length)
                enc = {k: v.to(device) for k, v in enc.items()}  # the encoder may sit on a GPU: rm.encoder.to("cuda")
                hidden = self.encoder(**enc).last_hidden_state
                mask = enc["attention_mask"][..., None].to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
        return out

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        self.stats.forward_calls += 1
        return self.rank(self.features(texts) @ self.weights + self.bias, texts)

    def rank(self, values: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """The scores of ``texts`` from their ``values``: each text by its selector (``seen``'s for the
        training tasks' texts, ``tie_break``'s for the others)."""
        from agentrm_gym.rm.selector import heuristic_ties

        values = np.asarray(values, dtype=np.float64)
        seen = np.array([self.seen is not None and self.fmt.task_of(t, self.seen["tasks"]) is not None
                         for t in texts], dtype=bool)
        out = values.copy()
        for rule, rows in ((self.tie_break, np.flatnonzero(~seen)),
                           (self.seen["tie_break"] if self.seen else None, np.flatnonzero(seen))):
            if rule is not None and len(rows):
                out[rows] = heuristic_ties(values[rows], np.array([text_repeats(texts[i]) for i in rows]),
                                           rule["center"], rule["scale"])
        return out

    def card(self) -> dict[str, Any]:
        return {**super().card(), "backbone": self.backbone, "max_length": self.max_length,
                "stats": list(STAT_NAMES) if self.use_stats else [],
                "selector": "heuristic-ties" if self.tie_break else "ridge",
                **({"seen_selector": "heuristic-ties" if self.seen["tie_break"] else "ridge",
                    "seen_tasks": self.seen["tasks"]} if self.seen else {}), **self.meta}

    def save(self, path: str | Path) -> Path:
        """The encoder and tokenizer under ``path/encoder``, the head as JSON, and the card."""
        from agentrm_gym.files import write_json_atomic

        path = Path(path)
        (path / "encoder").mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(path / "encoder")
        self.tokenizer.save_pretrained(path / "encoder")
        write_json_atomic(path / HEAD_NAME, {"weights": self.weights.tolist(), "bias": self.bias,
                                             **({"tie_break": self.tie_break} if self.tie_break else {}),
                                             **({"seen": self.seen} if self.seen else {})})
        write_card(path, self.card())
        return path

    @classmethod
    def load(cls, path: str | Path, card: dict[str, Any], fmt: RMFormat, meta: dict[str, Any],
             **overrides: Any) -> PooledValueRewardModel:
        """Rebuild from a directory written by :meth:`save` (``load_reward_model`` calls this)."""
        from agentrm_gym.rm.card import load_hf, load_tokenizer, require_hf

        require_hf()
        from transformers import AutoModel

        path = Path(path)
        head_path = path / HEAD_NAME
        try:
            head = json.loads(head_path.read_text(encoding="utf-8"))
            weights = np.asarray(head["weights"], dtype=np.float64)
            bias = float(head["bias"])
            tie_break = head.get("tie_break")
            if tie_break is not None:
                tie_break = {"center": float(tie_break["center"]), "scale": float(tie_break["scale"])}
            seen = head.get("seen")
            if seen is not None:
                rule = seen.get("tie_break")
                seen = {"tasks": [str(t) for t in seen["tasks"]],
                        "tie_break": {"center": float(rule["center"]), "scale": float(rule["scale"])} if rule else None}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RMLoadError(f"{head_path}: missing or corrupted value head ({exc}); retrain the RM") from exc
        encoder = load_hf(path / "encoder", AutoModel)
        stats = card.get("stats") or []
        if stats and list(stats) != list(STAT_NAMES):
            raise RMLoadError(f"{path}: the card's statistics {stats} are not this release's {list(STAT_NAMES)}; "
                              "retrain the RM or install the release that wrote it")
        width = int(encoder.config.hidden_size) + len(stats)
        if weights.shape != (width,) or not np.all(np.isfinite(weights)):
            raise RMLoadError(f"{head_path}: head of shape {weights.shape} does not fit the encoder's width "
                              f"{encoder.config.hidden_size} plus {len(stats)} statistics (or holds non-finite "
                              "numbers)")
        tok = load_tokenizer(path / "encoder")
        ensure_pad_token(tok, encoder)
        kwargs = {"max_length": card.get("max_length", 384), "backbone": card.get("backbone", ""), "meta": meta,
                  "stats": bool(stats), "tie_break": tie_break, "seen": seen}
        return cls(encoder, tok, weights, bias, fmt, **{**kwargs, **overrides})


# ---------------------------------------------------------------------------------------- training
def centre_by_group(values: np.ndarray, groups: Sequence[Any]) -> np.ndarray:
    """Each value minus the mean of its group."""
    out = np.asarray(values, dtype=np.float64).copy()
    index: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    for members in index.values():
        out[members] -= out[members].mean()
    return out


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression with an unpenalised intercept: ``(w, b)``."""
    mean_x, mean_y = x.mean(axis=0), float(y.mean())
    xc = x - mean_x
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - mean_y))
    return w, mean_y - float(mean_x @ w)


def cv_folds(records: list[dict[str, Any]], ids: list[tuple[str, str]], cfg: PooledConfig) -> np.ndarray:
    """The fold of every record: its task (``cv="task"``, two tasks or more) or a random fold of its task id
    (every state of one task id, all its groups, in one fold)."""
    if cfg.cv not in ("task", "task_id"):
        raise ValueError(f"cv must be 'task' or 'task_id', got {cfg.cv!r}")
    tasks = sorted({r["task"] for r in records})
    if cfg.cv == "task" and len(tasks) >= 2:
        return np.array([tasks.index(r["task"]) for r in records])
    rng = np.random.default_rng(cfg.seed)
    fold_of = {key: int(f) for key, f in zip(ids, rng.permutation(len(ids)) % max(2, cfg.folds), strict=True)}
    return np.array([fold_of[(r["task"], r["task_id"])] for r in records])


def group_ranking_metrics(scores: np.ndarray, values: np.ndarray, groups: Sequence[Any],
                          tasks: Sequence[str]) -> dict[str, Any]:
    """Within-group pairwise accuracy (ties count 1/2) and the Best-of-N lift of the argmax, per task.

    The lift of a group is ``value(argmax score) - mean value``: what choosing by the RM adds over a random
    candidate; ``room`` is the same for the best candidate (the oracle selector). ``pairwise_accuracy``
    pools every pair; ``task_pairwise_accuracy`` is the mean of the tasks' own accuracies (each task
    weighted alike, as the tables average tasks): the selection criterion of :func:`train_pooled_rm`.
    """
    index: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    per_task: dict[str, dict[str, Any]] = {}
    for members in index.values():
        v, s = values[members], scores[members]
        if len(members) < 2:
            continue
        diff_v = v[:, None] - v[None, :]
        diff_s = s[:, None] - s[None, :]
        mask = diff_v > 1e-9
        cell = per_task.setdefault(str(tasks[members[0]]), {"lift": [], "room": [], "pairs": 0.0, "correct": 0.0})
        cell["pairs"] += float(mask.sum())
        cell["correct"] += float(((diff_s > 0) & mask).sum() + 0.5 * ((diff_s == 0) & mask).sum())
        cell["lift"].append(float(v[int(np.argmax(s))] - v.mean()))
        cell["room"].append(float(v.max() - v.mean()))
    lifts = [x for c in per_task.values() for x in c["lift"]]
    pairs = sum(c["pairs"] for c in per_task.values())
    accuracy = {t: c["correct"] / c["pairs"] for t, c in per_task.items() if c["pairs"]}
    return {
        "pairwise_accuracy": sum(c["correct"] for c in per_task.values()) / pairs if pairs else None,
        "task_pairwise_accuracy": float(np.mean(list(accuracy.values()))) if accuracy else None,
        "pairs": int(pairs),
        "bon_lift": float(np.mean(lifts)) if lifts else None,
        "per_task": {t: {"pairwise_accuracy": accuracy.get(t), "bon_lift": float(np.mean(c["lift"])),
                         "oracle_room": float(np.mean(c["room"])), "groups": len(c["lift"])}
                     for t, c in sorted(per_task.items())},
    }


def _as_records(samples: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for s in samples:
        if isinstance(s, dict):
            state = s["state"] if isinstance(s["state"], AgentState) else state_from_dict(s["state"])
            group = s.get("group", state.task_id)
            out.append({"state": state, "value": float(s["value"]), "group": str(group),
                        "task_id": str(s.get("task_id", state.task_id)), "task": state.task,
                        "source": str(s.get("source", ""))})
        else:
            state, value = s[0], float(s[1])
            out.append({"state": state, "value": value, "group": str(state.task_id), "task_id": str(state.task_id),
                        "task": state.task, "source": ""})
    return out


def load_encoder(backbone: str) -> tuple[Any, Any]:
    """``(encoder, tokenizer)`` of a backbone (``minilm`` or a Hugging Face directory, a decoder's too),
    with a pad token."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_backbone(backbone)
    tok = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path)
    ensure_pad_token(tok, encoder)
    return encoder, tok


def _cross_validate(records: list[dict[str, Any]], texts: list[str], cfg: PooledConfig, fmt: RMFormat,
                    encoded: dict[tuple[str, int], tuple[Any, Any, np.ndarray]]) -> dict[str, Any]:
    """Build the model of ``cfg``, encode every state's text once and cross-validate ``alpha``: the model,
    its features, the targets, the folds, the metrics per alpha and the best alpha. ``encoded`` keeps each
    (backbone, max_length)'s encoder, tokenizer and embeddings, so candidates that differ only in
    ``stats`` encode once."""
    key = (str(cfg.backbone), int(cfg.max_length))
    cached = encoded.get(key)
    encoder, tok = cached[:2] if cached is not None else load_encoder(cfg.backbone)
    rm = PooledValueRewardModel(encoder, tok, np.zeros(int(encoder.config.hidden_size)), 0.0, fmt, cfg.max_length,
                                cfg.batch_size, backbone=str(cfg.backbone), stats=cfg.stats)
    if cached is None:
        encoded[key] = (encoder, tok, rm.embed_texts(texts, progress=True).astype(np.float64))
    x = rm.with_stats(encoded[key][2], texts)
    values = np.array([r["value"] for r in records])
    groups = [r["group"] for r in records]
    tasks = [r["task"] for r in records]
    y = centre_by_group(values, groups) if cfg.target == "centred" else values
    folds = cv_folds(records, sorted({(r["task"], r["task_id"]) for r in records}), cfg)
    cv, best = cross_validate_ridge(x, y, folds, cfg.alphas, values, groups, tasks)
    return {"rm": rm, "x": x, "y": y, "folds": folds, "cv": cv, "alpha": best,
            "task_pairwise_accuracy": cv[best]["task_pairwise_accuracy"] or 0.0}


def cross_validate_ridge(x: np.ndarray, y: np.ndarray, folds: np.ndarray, alphas: Sequence[float], values: np.ndarray,
                         groups: Sequence[Any], tasks: Sequence[str]) -> tuple[dict[float, dict[str, Any]], float]:
    """:func:`group_ranking_metrics` of a ridge head on ``x`` predicted on each held-out fold, per alpha, and the
    best alpha (the highest task-mean pairwise accuracy; ties: the smallest alpha)."""
    cv = {alpha: group_ranking_metrics(cv_predictions(x, y, folds, alpha), values, groups, tasks) for alpha in alphas}
    return cv, max(alphas, key=lambda a: (cv[a]["task_pairwise_accuracy"] or 0.0, -a))


def cv_predictions(x: np.ndarray, y: np.ndarray, folds: np.ndarray, alpha: float) -> np.ndarray:
    """Every row's ridge prediction by the head fitted on the other folds (zero where a fold is everything)."""
    pred = np.zeros(len(y))
    for k in np.unique(folds):
        train, held = folds != k, folds == k
        if train.any():
            w, b = fit_ridge(x[train], y[train], alpha)
            pred[held] = x[held] @ w + b
    return pred


def candidate_name(cfg: PooledConfig) -> str:
    """How a candidate is named on the card: ``<backbone>`` or ``<backbone>+stats``."""
    return f"{cfg.backbone}{'+stats' if cfg.stats else ''}"


def train_pooled_rm(samples: Iterable[Any], config: PooledConfig | Sequence[PooledConfig] | None = None, *,
                    out_dir: str | Path, fmt: RMFormat | None = None, writer: Any = None) -> PooledValueRewardModel:
    """Encode every state once, choose ``alpha`` by grouped CV, fit the head, save the RM in ``out_dir``.

    The criterion, for ``alpha`` and for the candidate, is the within-group pairwise accuracy on the
    held-out folds averaged over tasks (``task_pairwise_accuracy``: each task weighted alike, as the
    tables' held-in / held-out averages weight them; the pooled accuracy would let the task with the most
    pairs decide). ``config`` may be a list of candidates (e.g. other backbones, with and without
    ``stats``): each is cross-validated the same way, and the best (at its best alpha; ties: the first
    listed) is fitted and saved; the card's
    ``metrics.candidates`` lists every candidate's alpha, pairwise accuracy and Best-of-N lift. The folds
    and the criterion are those of ``alpha``, so with ``cv="task"`` the encoder too is chosen for transfer
    to a held-in task left out, on training data alone.

    Args:
        samples: ``{"state", "value", "group", "task_id"}`` dicts (``group``: the candidates compared with
            each other; default the task id) or ``(AgentState, value)`` tuples.
        config: a :class:`PooledConfig` or a list of them.
        fmt: the RM text format (default: compact).
        writer: a TensorBoard ``SummaryWriter``: ``rm/cv_pairwise_accuracy`` (the task mean) per alpha
            (step: 1000 alpha) of the chosen candidate, and, with several, ``rm/cv_candidates/<i>_<name>``.
    """
    from agentrm_gym.rm.backbones import _quiet_transformers

    configs = [config or PooledConfig()] if config is None or isinstance(config, PooledConfig) else list(config)
    if not configs:
        raise ValueError("train_pooled_rm needs at least one PooledConfig")
    for cfg in configs:
        if cfg.target not in ("centred", "raw"):
            raise ValueError(f"target must be 'centred' or 'raw', got {cfg.target!r}")
    records = _as_records(samples)
    if len(records) < 2:
        raise ValueError(f"train_pooled_rm needs at least 2 samples, got {len(records)}")
    started = time.time()
    _quiet_transformers()
    fmt = fmt or RMFormat(style="compact")
    chosen: dict[str, Any] | None = None
    table: dict[str, dict[str, Any]] = {}
    encoded: dict[tuple[str, int], tuple[Any, Any, np.ndarray]] = {}
    curves: list[tuple[str, dict[float, dict[str, Any]]]] = []
    texts = [fmt.text(r["state"]) for r in records]  # the same for every candidate
    for i, cfg in enumerate(configs):
        name = candidate_name(cfg)
        result = _cross_validate(records, texts, cfg, fmt, encoded)
        curves.append((f"rm/cv_candidates/{i}_{Path(name).name}", result["cv"]))
        best = result["cv"][result["alpha"]]
        table[name] = {"alpha": result["alpha"], "task_pairwise_accuracy": best["task_pairwise_accuracy"],
                       "pairwise_accuracy": best["pairwise_accuracy"], "bon_lift": best["bon_lift"]}
        if chosen is None or result["task_pairwise_accuracy"] > chosen["task_pairwise_accuracy"]:
            chosen, chosen_cfg = result, cfg
    assert chosen is not None
    cfg, rm, cv, best = chosen_cfg, chosen["rm"], chosen["cv"], chosen["alpha"]
    # the baselines on the same pairs, folds and alphas: the chosen encoder alone, the statistics alone
    from agentrm_gym.rm.baselines import BASELINES_NAME, baseline_summary, fit_baselines

    baselines = fit_baselines(records, texts, encoded[(str(cfg.backbone), int(cfg.max_length))][2], cfg, fmt)
    encoded.clear()  # the encoders of the candidates that lost
    if writer is not None:
        for tag, curve in [("rm/cv_pairwise_accuracy", cv), *(curves if len(configs) > 1 else [])]:
            for alpha, m in curve.items():
                if m["task_pairwise_accuracy"] is not None:
                    writer.add_scalar(tag, m["task_pairwise_accuracy"], int(round(alpha * 1000)))
    rm.weights, rm.bias = fit_ridge(chosen["x"], chosen["y"], best)
    values = np.array([r["value"] for r in records])
    groups = [r["group"] for r in records]
    from agentrm_gym.rm.selector import choose_selector

    repeats, sources = np.array([text_repeats(t) for t in texts]), [r["source"] for r in records]
    selector = choose_selector(cv_predictions(chosen["x"], chosen["y"], chosen["folds"], best), repeats, values,
                               groups, sources, cfg.selector, cfg.seed)
    rm.tie_break = _rule(selector)
    seen: dict[str, Any] = {}
    tasks = sorted({r["task"] for r in records})
    if cfg.seen_selector and cfg.cv == "task" and len(tasks) >= 2:
        in_task = cv_folds(records, sorted({(r["task"], r["task_id"]) for r in records}),
                           dataclasses.replace(cfg, cv="task_id"))
        seen = {**choose_selector(cv_predictions(chosen["x"], chosen["y"], in_task, best), repeats, values, groups,
                                  sources, cfg.selector, cfg.seed), "tasks": tasks}
        rm.seen = {"tasks": tasks, "tie_break": _rule(seen)}
    rm.clear_cache()
    ranked = {"ridge": "the value", "heuristic-ties": "the heuristic first, the value within its ties"}
    rm.meta = {
        "objective": f"ridge on {cfg.target} values (mean-pooled frozen encoder"
                     f"{' + trajectory statistics' if cfg.stats else ''}), ranked by "
                     + (f"{ranked[seen['chosen']]} on its training tasks, by {ranked[selector['chosen']]} on others"
                        if seen else ranked[selector["chosen"]]),
        "training": {"samples": len(records), "groups": len(set(groups)),
                     "task_ids": len({(r["task"], r["task_id"]) for r in records}),
                     "tasks": sorted({r["task"] for r in records}), "value_mean": float(values.mean()),
                     "value_std": float(values.std())},
        "metrics": {"alpha": best, "cv": cfg.cv, "cv_folds": int(len(np.unique(chosen["folds"]))), **cv[best],
                    "cv_by_alpha": {str(a): cv[a]["task_pairwise_accuracy"] for a in cfg.alphas},
                    **({"candidates": table, "chosen": candidate_name(cfg)} if len(configs) > 1 else {}),
                    "baselines": {name: baseline_summary(b) for name, b in baselines.items()},
                    "selector": selector, **({"selector_seen": seen} if seen else {}),
                    "train_seconds": round(time.time() - started, 1)},
        "train_config": dataclasses.asdict(cfg),
    }
    from agentrm_gym.files import write_json_atomic

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out_dir) / BASELINES_NAME, baselines)
    rm.save(out_dir)
    return rm


def _rule(selector: dict[str, Any]) -> dict[str, float] | None:
    """The ``tie_break`` of a :func:`~agentrm_gym.rm.selector.choose_selector` result (``None``: ridge)."""
    return {"center": selector["center"], "scale": selector["scale"]} if selector["chosen"] == "heuristic-ties" else None
