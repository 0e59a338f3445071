"""Task transfer of a finished run's RM and policy (``agentrm analyze heatmap``; issue 24).

AgentRM's heat-map asks what training on one task buys on the others. Here:

* **RM** - for each held-in task T, the pooled RM's ridge head refitted on T's train pairs alone (the run's
  frozen encoder and statistics, so every state is embedded once; alpha by cross-validation over T's task
  ids, as :func:`~agentrm_gym.rm.pooled.train_pooled_rm` does with one task), then used to re-score the
  run's saved Best-of-N candidates of every task (``eval/candidates.jsonl``): a cell is the progress of its
  pick minus one sample's (the candidates' mean), paired on episodes, with a bootstrap CI. The row "all
  held-in" is the run's RM itself. Beside each, the within-group pairwise accuracy on every held-in task's
  train pairs (for T itself: on held-out folds of T's task ids; for "all held-in": the RM's own
  leave-one-task-out folds).
* **Policy** - an SFT policy trained like the run's (:func:`train_sft_variant`: the SFT stage's records,
  schedule, steps, size and tokenizer) on one held-in task's expert episodes alone, played greedy on a
  subset of every task's test ids; the row "all tasks" is the run's own SFT policy on the same ids (its
  evaluation episodes, reused).

Writes ``RUN/analysis/heatmap.{md,json,png}``; the per-task policies and their episodes are kept under
``RUN/analysis/heatmap/`` (a rerun reuses them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.files import write_dir_atomic
from agentrm_gym.train import table as tab
from agentrm_gym.trajectory import Trajectory, read_jsonl

#: ``size`` of :func:`heatmap`: greedy test episodes per task for each per-task policy (a subset of the
#: run's evaluation ids) and the SFT steps of those policies (0: the run's ``sft_steps``).
HEATMAP_SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"policy_episodes": 1, "sft_steps": 0},
    "full": {"policy_episodes": 10, "sft_steps": 0},
}
ALL_HELD_IN = "all held-in (the run's RM)"


# ------------------------------------------------------------------------------------ SFT variants
def train_sft_variant(root: str | Path, cfg: Any, out: str | Path, *, tasks: Sequence[str] | None = None,
                      n_layer: int | None = None, n_embd: int | None = None, n_head: int | None = None,
                      steps: int | None = None) -> dict[str, Any]:
    """An SFT policy trained as the SFT stage trains the run's, with other data or another size, saved to ``out``.

    The records are the stage's (:func:`~agentrm_gym.train.sft_stage.window_records` of the expert
    trajectories of ``tasks``; all of them by default), the tokenizer is the run's own (``sft/policy``),
    the schedule and batch the run's config; ``n_layer`` / ``n_embd`` / ``n_head`` / ``steps`` default to
    the run's. A directory already holding a policy of the same recipe (``variant.json``) is reused.

    Returns:
        the recipe plus ``train_seconds``, ``parameters``, ``records``, ``loss_first`` and ``loss_last``.
    """
    from transformers import AutoTokenizer

    from agentrm_gym.agents.prompts import CompactPromptBuilder
    from agentrm_gym.agents.tiny import build_tiny_model
    from agentrm_gym.train.context import policy_dir
    from agentrm_gym.train.sft_stage import train_policy, window_records

    root, out = Path(root), Path(out)
    recipe = {"tasks": sorted(tasks) if tasks else "all", "n_layer": n_layer or cfg.n_layer,
              "n_embd": n_embd or cfg.n_embd, "n_head": n_head or cfg.n_head, "steps": steps or cfg.sft_steps,
              "batch_size": cfg.sft_batch_size, "lr": cfg.sft_lr, "context": cfg.context, "seed": cfg.seed}
    meta_path = out / "variant.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if {k: meta.get(k) for k in recipe} == recipe:
            return meta
    source = Path(policy_dir(root, cfg))
    if not (source / "tokenizer.json").exists():
        raise ValueError(f"{source}: no tokenizer of the run's SFT policy to reuse (a served policy, cfg.policy="
                         f"{cfg.policy!r}?); the SFT variants need a run whose SFT stage trained the tiny policy")
    tokenizer = AutoTokenizer.from_pretrained(source)
    trajs = [Trajectory.from_dict(r) for r in read_jsonl(root / "expert" / "trajectories.jsonl")
             if not tasks or r["task"] in tasks]
    if not trajs:
        raise ValueError(f"{root}/expert/trajectories.jsonl holds no expert episode of {list(tasks or [])}")
    builder = CompactPromptBuilder()
    builder.budget = cfg.context - cfg.max_new_tokens
    builder.count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    records = window_records(trajs, builder)
    model = build_tiny_model(tokenizer, n_layer=recipe["n_layer"], n_embd=recipe["n_embd"], n_head=recipe["n_head"],
                             n_positions=cfg.context, seed=cfg.seed)
    t0 = time.time()
    losses = train_policy(model, tokenizer, records, recipe["steps"], cfg.sft_batch_size, cfg.sft_lr, cfg.context,
                          cfg.seed)
    meta = {**recipe, "train_seconds": round(time.time() - t0, 1), "records": len(records),
            "episodes": len(trajs), "parameters": int(sum(p.numel() for p in model.parameters())),
            "loss_first": losses[0], "loss_last": float(np.mean(losses[-10:]))}

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "variant.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    write_dir_atomic(out, save)
    return meta


# ----------------------------------------------------------------------------------------- RM part
def rm_transfer(root: Path, cfg: Any, tasks: Sequence[str], held_in: Sequence[str]) -> dict[str, Any]:
    """The RM half of the heat-map (module docstring): ``{"rows": {row: {task or group: cell}}, ...}``."""
    from agentrm_gym.rm import load_reward_model
    from agentrm_gym.rm.pooled import (
        PooledConfig,
        PooledValueRewardModel,
        centre_by_group,
        cross_validate_ridge,
        cv_folds,
        fit_ridge,
        group_ranking_metrics,
    )
    from agentrm_gym.train.extract import load_pairs

    rm = load_reward_model(root / "rm")
    if not isinstance(rm, PooledValueRewardModel):
        raise ValueError(f"{root}/rm: the heat-map refits the pooled RM's head on one task's pairs; this RM is "
                         f"{type(rm).__name__} (rm_kind={cfg.rm_kind}); rerun train-rm with rm_kind=pooled")
    records = load_pairs(root)
    cands = [r for r in read_jsonl(root / "eval" / "candidates.jsonl") if r.get("candidates")]
    x = rm.features([rm.fmt.text(r["state"]) for r in records], progress=True)
    cand_texts = [rm.fmt.text(Trajectory.from_dict(c["trajectory"]).state()) for rec in cands
                  for c in rec["candidates"]]
    cx = rm.features(cand_texts, progress=True)
    values = np.array([r["value"] for r in records])
    groups = [r["group"] for r in records]
    ptasks = np.array([r["task"] for r in records])
    card = rm.card()
    heads: dict[str, tuple[np.ndarray, float, dict[str, Any]]] = {}
    for t in held_in:
        idx = np.flatnonzero(ptasks == t)
        if len(idx) < 2:
            continue
        sub = [records[i] for i in idx]
        y = centre_by_group(values[idx], [groups[i] for i in idx])
        folds = cv_folds(sub, sorted({(r["task"], r["task_id"]) for r in sub}), PooledConfig(cv="task_id",
                                                                                             seed=cfg.seed))
        cv, alpha = cross_validate_ridge(x[idx], y, folds, list(cfg.rm_alphas), values[idx],
                                         [groups[i] for i in idx], list(ptasks[idx]))
        w, b = fit_ridge(x[idx], y, alpha)
        acc = {t: cv[alpha]["pairwise_accuracy"]}
        for u in held_in:
            other = np.flatnonzero(ptasks == u)
            if u != t and len(other):
                acc[u] = group_ranking_metrics(x[other] @ w + b, values[other], [groups[i] for i in other],
                                               list(ptasks[other]))["pairwise_accuracy"]
        heads[t] = (w, b, {"alpha": alpha, "pairs": int(len(idx)), "pairwise_accuracy": acc})
    loto = (card.get("metrics") or {}).get("per_task") or {}
    heads[ALL_HELD_IN] = (rm.weights, rm.bias, {"alpha": (card.get("metrics") or {}).get("alpha"),
                                                 "pairs": len(records),
                                                 "pairwise_accuracy": {u: (loto.get(u) or {}).get("pairwise_accuracy")
                                                                       for u in held_in}})
    # the run's RM re-scored from these features must give the scores saved at play time
    saved = np.array([np.nan if c.get("score") is None else float(c["score"]) for rec in cands
                      for c in rec["candidates"]])
    check = float(np.nanmax(np.abs(cx @ rm.weights + rm.bias - saved))) if np.isfinite(saved).any() else None
    n = cfg.bon_n
    rows: dict[str, Any] = {}
    for name, (w, b, info) in heads.items():
        flat = cx @ w + b
        scores, at = {}, 0
        for rec in cands:
            scores[(rec["task"], str(rec["task_id"]))] = flat[at:at + len(rec["candidates"])].tolist()
            at += len(rec["candidates"])
        derived = tab.candidate_rows(cands, {"rm": scores}, n)
        pick, one = derived[f"bon:{n} (rm)"], derived["sample"]
        cells = {u: tab.paired_gain(pick, one, [u], [], cfg.bootstrap, cfg.seed)["all_progress_rate"] for u in tasks}
        groups_gain = tab.paired_gain(pick, one, tasks, held_in, cfg.bootstrap, cfg.seed)
        cells.update({g: groups_gain[f"{g}_progress_rate"] for g in tab.GROUPS})
        rows[name] = {"gain": cells, **info}
    return {"rows": rows, "n": n, "candidates": len(cands), "pairs": len(records), "rescore_max_abs_diff": check}


# ------------------------------------------------------------------------------------- policy part
def policy_transfer(root: Path, cfg: Any, tasks: Sequence[str], held_in: Sequence[str],
                    spec: Mapping[str, Any]) -> dict[str, Any]:
    """The policy half of the heat-map (module docstring): greedy progress (%) per row and task, with CIs."""
    from agentrm_gym.train.analyses_search import play_episodes, run_test_ids
    from agentrm_gym.train.evaluate import eval_ids

    out = root / "analysis" / "heatmap"
    ids = {t: eval_ids(v, int(spec["policy_episodes"])) for t, v in run_test_ids(root, "greedy").items()
           if t in tasks}
    jobs = [(t, "greedy", i) for t in tasks if t in ids for i in ids[t]]
    run_greedy = {(r["task"], "greedy", str(r["task_id"])): r for r in read_jsonl(root / "eval" / "episodes.jsonl")
                  if r["method"] == "greedy"}
    plays: dict[str, list[dict[str, Any]]] = {}
    played: dict[str, int] = {}
    trained: dict[str, Any] = {}
    for t in held_in:
        trained[t] = train_sft_variant(root, cfg, out / f"policy_{t}", tasks=[t], steps=spec["sft_steps"] or None)
        plays[t] = play_episodes(root, cfg, jobs, out / f"greedy_{t}.jsonl", f"heatmap greedy {t}",
                                 policy=str(out / f"policy_{t}"), played=played)
    plays["all tasks (the run's policy)"] = [run_greedy[j] for j in jobs]
    rows: dict[str, Any] = {}
    for name, recs in plays.items():
        outcome = {(r["task"], str(r["task_id"])): (float(r["success"]), float(r["progress"])) for r in recs}
        zero = {k: (0.0, 0.0) for k in outcome}
        cells = {u: tab.paired_gain(outcome, zero, [u], [], cfg.bootstrap, cfg.seed)["all_progress_rate"] for u in tasks}
        groups = tab.paired_gain(outcome, zero, tasks, held_in, cfg.bootstrap, cfg.seed)
        cells.update({g: groups[f"{g}_progress_rate"] for g in tab.GROUPS})
        rows[name] = {"progress": cells,
                      "episode_seconds": 0.0 if name not in trained else round(
                          sum(float(r["cost"]["wall_seconds"]) for r in recs), 1),
                      **({"sft": trained[name]} if name in trained else {})}
    return {"rows": rows, "episodes": {t: len(v) for t, v in ids.items()}, "played": played.get("episodes", 0)}


def heatmap(run: str | Path, *, size: str = "full") -> dict[str, Any]:
    """The RM and policy task-transfer heat-maps of a finished run (module docstring); writes
    ``RUN/analysis/heatmap.{md,json,png}``."""
    from agentrm_gym.train.analyses_search import size_spec
    from agentrm_gym.train.config import load_config

    spec = size_spec(HEATMAP_SIZES, size, "heatmap")
    started = time.time()
    root = Path(run)
    cfg = load_config(root / "config.json")
    tasks, held_in = list(cfg.eval_tasks), list(cfg.rm_tasks)
    rm_part = rm_transfer(root, cfg, tasks, held_in)
    rm_seconds = round(time.time() - started, 1)
    policy_part = policy_transfer(root, cfg, tasks, held_in, spec)
    rows = policy_part["rows"].values()
    result = {"analysis": "heatmap", "run": str(root), "size": size, "tasks": tasks, "held_in": held_in,
              "rm": rm_part, "policy": policy_part,
              "cost": {"seconds": round(time.time() - started, 1), "played": policy_part["played"],
                       "rm_seconds": rm_seconds,
                       "sft_seconds": round(sum(r["sft"]["train_seconds"] for r in rows if "sft" in r), 1),
                       "greedy_episode_seconds": round(sum(r["episode_seconds"] for r in rows), 1),
                       "workers": cfg.workers}}
    from agentrm_gym.train.analyses import _write

    _write(root, "heatmap", result, heatmap_markdown(result), plot_heatmap)
    return result


# -------------------------------------------------------------------------------------------- outputs
def _columns(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(t, f"{t}*" if t in r["held_in"] else t) for t in r["tasks"]] + [
        ("held_in", "held-in avg"), ("held_out", "held-out avg"), ("all", "avg (all)")]


def heatmap_markdown(r: Mapping[str, Any]) -> str:
    from agentrm_gym.train.analyses_search import _cost_line, ci

    cols = _columns(r)
    rm, pol = r["rm"], r["policy"]
    n = rm["n"]
    head = "| trained on | " + " | ".join(c for _, c in cols) + " |"
    rule = "|---|" + "---|" * len(cols)
    check = rm["rescore_max_abs_diff"]
    lines = [f"# Task-transfer heat-maps: `{r['run']}` (size {r['size']})", "", _cost_line(r["cost"])
             + f" The RM half took {r['cost']['rm_seconds']:.0f} s (embedding {rm['pairs']} train pairs and "
             f"{rm['candidates']} x {n} candidates once, ridge heads).", "",
             f"## RM: Best-of-{n} gain over one sample (progress points, 95% CI)", "",
             f"Each row's head picks among the run's saved Best-of-{n} candidates of every task's test episodes "
             f"(eval/candidates.jsonl: {rm['candidates']} episodes); rows: the pooled RM's head refitted on one "
             "held-in task's train pairs (the run's encoder and statistics; alpha by CV over that task's ids), "
             "and the run's RM itself"
             + ("." if check is None else f" (re-scored from these features, it differs from the scores saved at "
                                          f"play time by at most {check:.1e})."), "", head, rule]
    for name, row in rm["rows"].items():
        lines.append(f"| {name} | " + " | ".join(ci(row["gain"].get(k), True) for k, _ in cols) + " |")
    held = r["held_in"]
    lines += ["", "Within-group pairwise accuracy on the held-in tasks' train pairs (chance 0.5; on the row's own "
              "task: held-out folds of its task ids; for the run's RM: its leave-one-task-out folds):", "",
              "| trained on | pairs | alpha | " + " | ".join(held) + " |", "|---|---|---|" + "---|" * len(held)]
    for name, row in rm["rows"].items():
        accs = [row["pairwise_accuracy"].get(u) for u in held]
        lines.append(f"| {name} | {row['pairs']} | {row['alpha']} | "
                     + " | ".join("n/a" if a is None else f"{a:.3f}" for a in accs) + " |")
    eps = pol["episodes"]
    lines += ["", "## Policy: greedy progress rate (%, 95% CI)", "",
              f"SFT policies trained like the run's (same size, steps, schedule and tokenizer) on one held-in "
              f"task's expert episodes alone, played greedy on {sum(eps.values())} test episodes "
              f"({', '.join(f'{t} {k}' for t, k in eps.items())}; a subset of the evaluation ids); the last row "
              "is the run's SFT policy (every task's expert data) on the same episodes.", "", head, rule]
    for name, row in pol["rows"].items():
        lines.append(f"| {name} | " + " | ".join(ci(row["progress"].get(k)) for k, _ in cols) + " |")
    lines += ["", "| trained on | expert episodes | SFT records | steps | train seconds | final loss |",
              "|---|---|---|---|---|---|"]
    for name, row in pol["rows"].items():
        if "sft" in row:
            s = row["sft"]
            lines.append(f"| {name} | {s['episodes']} | {s['records']} | {s['steps']} | {s['train_seconds']:.0f} | "
                         f"{s['loss_last']:.3f} |")
    lines += ["", "`*` held-in (the RM's training tasks)."]
    return "\n".join(lines) + "\n"


def plot_heatmap(r: Mapping[str, Any], path: Path) -> Path:
    from agentrm_gym.train.report import _figure, _save

    cols = _columns(r)
    panels = [("rm", "gain", f"RM: Best-of-{r['rm']['n']} gain over one sample (points)", "RdBu"),
              ("policy", "progress", "policy: greedy progress rate (%)", "viridis")]
    fig = _figure(max(9.0, 0.9 * len(cols) + 3), 2.2 + 0.45 * sum(len(r[p]["rows"]) for p, *_ in panels))
    axes = fig.subplots(2, 1)
    for ax, (part, key, title, cmap) in zip(axes, panels, strict=True):
        names = list(r[part]["rows"])
        m = np.array([[np.nan if (c := r[part]["rows"][nm][key].get(k)) is None or c.get("mean") is None
                       else c["mean"] for k, _ in cols] for nm in names], dtype=np.float64)
        lim = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0
        kw = {"vmin": -lim, "vmax": lim} if part == "rm" else {"vmin": 0.0, "vmax": max(lim, 1.0)}
        im = ax.imshow(m, cmap=cmap, aspect="auto", **kw)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(m[i, j]):
                    dark = abs(m[i, j]) > 0.6 * lim if part == "rm" else m[i, j] < 0.5 * kw["vmax"]
                    v = round(float(m[i, j]), 1) + 0.0  # + 0.0: no "-0.0"
                    ax.text(j, i, f"{v:+.1f}" if part == "rm" else f"{v:.1f}", ha="center",
                            va="center", fontsize="x-small", color="white" if dark else "black")
        ax.axvline(len(r["tasks"]) - 0.5, color="k", lw=1)
        ax.set_xticks(range(len(cols)), [c for _, c in cols], rotation=30, ha="right", fontsize="small")
        ax.set_yticks(range(len(names)), names, fontsize="small")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)
