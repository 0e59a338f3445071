"""Search with a finished run's explicit RM beyond Table 1's Best-of-5 (``agentrm analyze``; issue 24).

* :func:`bon_scaling` - the run's SFT policy samples 16 candidates per test episode (the evaluate stage's
  temperature, step cap, test ids and seeds); the expected progress of the Best-of-N pick for N = 1, 2, 4,
  8, 16 of each selector (the explicit RM; the "fewer repeated actions" heuristic of issue 21, ties
  shared; the oracle's pass@N; one sample), exact over the N-subsets of the 16 (:func:`best_of_n`), with
  stratified bootstrap CIs; plus step-level beam search at a few widths on a subset of the episodes.
* :func:`weak_to_strong` - the same RM picking among Best-of-5 candidates of policies it never saw: the
  run's SFT policy (whose trees made the RM's data), a larger SFT policy trained on the same expert data
  with the same tokenizer (twice the layers, width and heads), and the noisy oracle
  (:class:`~agentrm_gym.agents.policy.NoisyOraclePolicy`) at a few noise levels; the gain over one
  sample against the policy's strength (its one-sample progress).

Episodes are played by the evaluate stage's :func:`~agentrm_gym.train.evaluate.episode_job` on the run's
``workers`` (:func:`play_episodes`) and appended to JSONL files under ``RUN/analysis/<name>/``, so a rerun
plays only what is missing. Each analysis writes ``RUN/analysis/<name>.{md,json,png}`` with its cost.
Nothing here chooses anything from the test outcomes: they are only measured.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.files import repair_jsonl
from agentrm_gym.train import table as tab
from agentrm_gym.train.context import StageContext, play_jobs
from agentrm_gym.trajectory import Trajectory, append_jsonl, read_jsonl

GROUP_LABELS = {"held_in": "held-in", "held_out": "held-out", "all": "all"}

#: ``size`` of :func:`bon_scaling`: candidates per episode, test episodes per task (a subset of the run's
#: evaluation ids; 0: all of them), beam widths and their episodes per task. ``full`` plays 12 of the demo's
#: 30 ids per task: Best-of-16 costs about 3x a Best-of-5 episode, and all 30 took over an hour on 2 cores.
BON_SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"n": 4, "episodes": 2, "beams": ("1x2", "2x2"), "beam_episodes": 1},
    "full": {"n": 16, "episodes": 12, "beams": ("1x3", "2x3", "3x3"), "beam_episodes": 3},
}
#: ``size`` of :func:`weak_to_strong`: test episodes per task (a subset of the run's evaluation ids; 0: all
#: of them), noise levels of the oracle, and the factor on the run's layers, width and heads of the larger
#: SFT policy. ``full`` plays half the demo's 30 ids per task, to fit about 30 minutes on 2 cores.
W2S_SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"episodes": 2, "noise": (0.5,), "scale": 2},
    "full": {"episodes": 15, "noise": (0.75, 0.5, 0.25), "scale": 2},
}


def size_spec(sizes: Mapping[str, dict[str, Any]], size: str, name: str) -> dict[str, Any]:
    """The settings of ``size`` for analysis ``name``; ``ValueError`` naming the known sizes otherwise."""
    if size not in sizes:
        raise ValueError(f"{name}: unknown size {size!r}; use one of {', '.join(sizes)}")
    return dict(sizes[size])


# ------------------------------------------------------------------------------------------ estimator
def best_of_n(keys: Sequence[float | None], values: Sequence[float], n: int) -> float:
    """The expected value of the candidate a selector picks from ``n`` of the candidates drawn at random.

    The pick is the highest key (tied keys share it; a missing or NaN key ranks lowest), so the estimate
    is ``sum_i P(i picked) v_i`` over the uniform ``n``-subsets, exactly
    (:func:`~agentrm_gym.train.report.pick_probabilities`): ``n = 1`` is the mean of ``values``; ``n =
    len(values)`` is the value of the top-keyed candidate (the mean of the tied ones).
    """
    from agentrm_gym.train.report import pick_probabilities

    return float(np.dot(pick_probabilities(keys, n, ties="share"), np.asarray(values, dtype=np.float64)))


def selector_keys(record: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each selector's key per candidate of a saved record: ``explicit`` (the score saved at play time),
    ``heuristic`` (minus the repeated actions) and ``oracle`` (progress, success breaking ties)."""
    from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel

    cands = record["candidates"]
    states = [Trajectory.from_dict(c["trajectory"]).state() for c in cands]
    return {"explicit": [c.get("score") for c in cands],
            "heuristic": FewerRepeatsRewardModel().score(states).tolist(),
            "oracle": [float(c["progress"]) + 1e-9 * float(c["success"]) for c in cands]}


def scaling_rows(records: Sequence[Mapping[str, Any]], ns: Sequence[int]) -> tab.Rows:
    """``sample``, ``bon:N (explicit)``, ``bon:N (heuristic)`` and ``pass@N (oracle)`` for each N: the expected
    (success, progress) of each episode's pick (:func:`best_of_n`)."""
    rows: tab.Rows = {"sample": {}}
    for rec in records:
        key = (rec["task"], str(rec["task_id"]))
        succ = [float(c["success"]) for c in rec["candidates"]]
        prog = [float(c["progress"]) for c in rec["candidates"]]
        rows["sample"][key] = (float(np.mean(succ)), float(np.mean(prog)))
        for name, keys in selector_keys(rec).items():
            for n in ns:
                label = f"pass@{n} (oracle)" if name == "oracle" else f"bon:{n} ({name})"
                rows.setdefault(label, {})[key] = (best_of_n(keys, succ, n), best_of_n(keys, prog, n))
    return rows


def level_and_gains(rows: tab.Rows, tasks: Sequence[str], held_in: Sequence[str], pairs: Sequence[tuple[str, str]],
                    resamples: int, seed: int) -> dict[str, Any]:
    """Every row's progress and success level (%) with a bootstrap CI (its paired difference from zero), and
    the paired gain of each ``(row, baseline)`` in ``pairs``, per group (:func:`tab.paired_gain`)."""
    levels = {m: tab.paired_gain(r, {k: (0.0, 0.0) for k in r}, tasks, held_in, resamples, seed)
              for m, r in rows.items()}
    gains = {f"{a} - {b}": tab.paired_gain(rows[a], rows[b], tasks, held_in, resamples, seed)
             for a, b in pairs if a in rows and b in rows}
    return {"levels": levels, "gains": gains, "per_task": tab.summarize(rows, tasks, held_in)}


# ---------------------------------------------------------------------------------------------- play
class PolicyContext(StageContext):
    """A :class:`StageContext` whose policy may be a scripted one (``noisy:P``, ``oracle``) instead of a
    model directory (for a directory, set the config's ``policy``)."""

    def __init__(self, cfg: dict[str, Any], root: str | Path, threads: int = 0, policy: str = ""):
        super().__init__(cfg, root, threads)
        self.policy_spec = policy

    def worker_factory(self, threads: int) -> Any:
        return partial(PolicyContext, self.cfg.to_dict(), str(self.root), threads, self.policy_spec)

    @property
    def policy(self) -> Any:
        if self._policy is None and self.policy_spec:
            from agentrm_gym.agents.factory import make_policy

            self._policy = make_policy(self.policy_spec, seed=self.cfg.seed)
        return super().policy


def analysis_job(ctx: StageContext, job: tuple[str, str, str]) -> dict[str, Any]:
    """One test episode ``(task, method, task_id)`` (a worker's job): its outcome and cost, plus the
    candidates (trajectories, the explicit RM's scores) of a Best-of-N episode."""
    from agentrm_gym.train.evaluate import episode_job

    res = episode_job(ctx, job)
    rec = {k: res["episode"][k] for k in ("task", "task_id", "method", "success", "progress", "steps", "cost")}
    if res["candidates"] is not None:
        rec["candidates"] = res["candidates"]["candidates"]
    return rec


def play_episodes(root: Path, cfg: Any, jobs: list[tuple[str, str, str]], path: Path, desc: str,
                  policy: str = "", played: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The records of ``jobs`` (``(task, method, task_id)``), played where ``path`` lacks them (appended as they
    finish: interrupt and rerun to resume), in job order. ``policy``: a model directory or a scripted spec
    (``noisy:P``); empty: the run's policy. ``played["episodes"]`` counts the episodes played by this call."""
    repair_jsonl(path)
    have = {(r["task"], r["method"], str(r["task_id"])): r for r in read_jsonl(path)} if path.exists() else {}
    todo = [j for j in jobs if j not in have]
    if played is not None:
        played["episodes"] = played.get("episodes", 0) + len(todo)
    if todo:
        cfg_dict = cfg.to_dict()
        scripted = bool(policy) and not Path(policy).is_dir()
        if policy and not scripted:
            cfg_dict["policy"] = str(policy)
        ctx = PolicyContext(cfg_dict, root, policy=policy if scripted else "")
        try:
            for _, rec in play_jobs(ctx, analysis_job, todo, desc):
                append_jsonl(path, [rec])
                have[(rec["task"], rec["method"], str(rec["task_id"]))] = rec
        finally:
            ctx.close()
    return [have[j] for j in jobs]


def run_test_ids(root: Path, prefix: str) -> dict[str, list[str]]:
    """The test ids of the run's evaluation episodes whose method starts with ``prefix``, per task, in order."""
    path = root / "eval" / "episodes.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the run has no evaluation; run `agentrm pipeline evaluate --out {root}`")
    out: dict[str, list[str]] = {}
    for r in read_jsonl(path):
        if r["method"].startswith(prefix) and str(r["task_id"]) not in out.get(r["task"], []):
            out.setdefault(r["task"], []).append(str(r["task_id"]))
    return out


def _run(root: Path) -> tuple[Any, list[str], list[str]]:
    from agentrm_gym.train.config import load_config

    cfg = load_config(root / "config.json")
    return cfg, list(cfg.eval_tasks), list(cfg.rm_tasks)


def _episodes(spec: dict[str, Any], cfg: Any) -> int:
    return int(spec["episodes"] or cfg.eval_episodes or 30)


def _seconds(records: Sequence[Mapping[str, Any]]) -> float:
    return round(sum(float(r["cost"]["wall_seconds"]) for r in records), 1)


# ---------------------------------------------------------------------------------------- bon-scaling
def bon_scaling(run: str | Path, *, size: str = "full") -> dict[str, Any]:
    """Best-of-N scaling of the run's SFT policy and explicit RM (module docstring); writes
    ``RUN/analysis/bon_scaling.{md,json,png}`` and the candidates under ``RUN/analysis/bon_scaling/``."""
    from agentrm_gym.train.evaluate import eval_ids

    spec = size_spec(BON_SIZES, size, "bon-scaling")
    started = time.time()
    root = Path(run)
    cfg, tasks, held_in = _run(root)
    out = root / "analysis" / "bon_scaling"
    out.mkdir(parents=True, exist_ok=True)
    n_max, k = int(spec["n"]), _episodes(spec, cfg)
    ids = {t: eval_ids(v, k) for t, v in run_test_ids(root, "bon").items() if t in tasks}
    tasks = [t for t in tasks if t in ids]
    jobs = [(t, f"bon:{n_max}", i) for t in tasks for i in ids[t]]
    played: dict[str, int] = {}
    records = play_episodes(root, cfg, jobs, out / "candidates.jsonl", "bon-scaling", played=played)
    ns = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= n_max]
    rows = scaling_rows(records, ns)

    # beam search on a subset of the episodes; the run's own beam episodes of a width are reused
    beam_path = out / "beam.jsonl"
    run_beam = run_test_ids(root, "beam")
    beam_ids = {t: eval_ids([i for i in run_beam.get(t, []) if i in ids[t]] or ids[t], int(spec["beam_episodes"]))
                for t in tasks}
    beam_jobs = [(t, f"beam:{w}", i) for w in spec["beams"] for t in tasks for i in beam_ids[t]]
    repair_jsonl(beam_path)
    have = {(r["task"], r["method"], str(r["task_id"])) for r in read_jsonl(beam_path)} if beam_path.exists() else set()
    wanted = set(beam_jobs) - have
    reuse = [{**{k: r[k] for k in ("task", "task_id", "method", "success", "progress", "steps", "cost")},
              "source": "eval/episodes.jsonl"} for r in read_jsonl(root / "eval" / "episodes.jsonl")
             if (r["task"], r["method"], str(r["task_id"])) in wanted]
    append_jsonl(beam_path, reuse)
    beams = play_episodes(root, cfg, beam_jobs, beam_path, "bon-scaling beam", played=played)
    for r in beams:
        rows.setdefault(r["method"], {})[(r["task"], str(r["task_id"]))] = (float(r["success"]), float(r["progress"]))

    pairs = [(f"bon:{n} (explicit)", "sample") for n in ns] + [(f"bon:{n} (heuristic)", "sample") for n in ns]
    pairs += [(f"bon:{n} (explicit)", f"bon:{n} (heuristic)") for n in ns] + [(f"pass@{n} (oracle)", "sample")
                                                                               for n in ns]
    pairs += [(f"beam:{w}", "sample") for w in spec["beams"]]
    stats = level_and_gains(rows, tasks, held_in, pairs, cfg.bootstrap, cfg.seed)
    steps = {key: float(np.mean([len(c["trajectory"]["steps"]) for c in r["candidates"]]))
             for r in records for key in [(r["task"], str(r["task_id"]))]}
    beam_keys = {(t, i) for t in tasks for i in beam_ids[t]}
    beam_table = []
    for name in [f"beam:{w}" for w in spec["beams"]] + [f"bon:{n} (explicit)" for n in ns]:
        sub = {key: v for key, v in rows[name].items() if key in beam_keys}
        if name.startswith("beam"):
            recs = [r for r in beams if r["method"] == name]
            env_steps = float(np.mean([r["cost"]["env_steps"] for r in recs]))
            proposals = float(np.mean([r["cost"]["proposals"] for r in recs]))
            source = "reused" if all(r.get("source") for r in recs) else "played"
        else:
            n = int(name.split(":")[1].split(" ")[0])
            env_steps = float(np.mean([n * steps[key] for key in sub]))
            proposals, source = None, "expected over subsets"
        beam_table.append({"method": name, "episodes": len(sub), "source": source, "env_steps": env_steps,
                           "proposals": proposals,
                           "level": tab.paired_gain(sub, {k: (0.0, 0.0) for k in sub}, tasks, held_in,
                                                    cfg.bootstrap, cfg.seed),
                           "gain": tab.paired_gain(sub, rows["sample"], tasks, held_in, cfg.bootstrap, cfg.seed)})
    result = {"analysis": "bon-scaling", "run": str(root), "size": size, "n": ns, "tasks": tasks,
              "held_in": held_in, "episodes": {t: len(ids[t]) for t in tasks}, "candidates": n_max,
              "temperature": cfg.temperature, "max_steps": cfg.eval_max_steps, **stats, "beam": beam_table,
              "beam_episodes": {t: len(beam_ids[t]) for t in tasks},
              "cost": {"seconds": round(time.time() - started, 1), "played": played.get("episodes", 0),
                       "bon_episode_seconds": _seconds(records),
                       "beam_episode_seconds": _seconds([r for r in beams if not r.get("source")]),
                       "workers": cfg.workers}}
    from agentrm_gym.train.analyses import _write

    _write(root, "bon_scaling", result, bon_markdown(result), plot_bon_scaling)
    return result


# ------------------------------------------------------------------------------------- weak-to-strong
def weak_to_strong(run: str | Path, *, size: str = "full") -> dict[str, Any]:
    """The run's explicit RM guiding policies it never saw (module docstring); writes
    ``RUN/analysis/weak_to_strong.{md,json,png}``, the larger policy and the candidates under
    ``RUN/analysis/weak_to_strong/``."""
    from agentrm_gym.train.analyses_transfer import train_sft_variant
    from agentrm_gym.train.evaluate import eval_ids

    spec = size_spec(W2S_SIZES, size, "weak-to-strong")
    started = time.time()
    root = Path(run)
    cfg, tasks, held_in = _run(root)
    out = root / "analysis" / "weak_to_strong"
    (out / "candidates").mkdir(parents=True, exist_ok=True)
    n, k = cfg.bon_n, _episodes(spec, cfg)
    method = f"bon:{n}"
    ids = {t: eval_ids(v, k) for t, v in run_test_ids(root, method).items() if t in tasks}
    tasks = [t for t in tasks if t in ids]
    jobs = [(t, method, i) for t in tasks for i in ids[t]]
    saved = {(r["task"], r["method"], str(r["task_id"])): r for r in read_jsonl(root / "eval" / "candidates.jsonl")}
    scale = int(spec["scale"])
    big = {"n_layer": cfg.n_layer * scale, "n_embd": cfg.n_embd * scale, "n_head": cfg.n_head * scale}
    variant = train_sft_variant(root, cfg, out / "policy", **big)
    played: dict[str, int] = {}
    policies: list[dict[str, Any]] = [
        {"policy": f"SFT {cfg.n_layer}x{cfg.n_embd} (the run's)", "kind": "sft",
         "what": "the run's SFT policy, whose trees made the RM's data", "records": [saved[j] for j in jobs]},
        {"policy": f"SFT {big['n_layer']}x{big['n_embd']}", "kind": "sft-large",
         "what": f"{scale}x the layers, width and heads; the same expert data, tokenizer and steps",
         "records": play_episodes(root, cfg, jobs, out / "candidates" / "sft_large.jsonl", "w2s sft-large",
                                  policy=str(out / "policy"), played=played),
         "train_seconds": variant["train_seconds"], "parameters": variant["parameters"]}]
    for p in spec["noise"]:
        policies.append({"policy": f"noisy oracle p={p:g}", "kind": "noisy",
                         "what": f"the task's oracle, a random admissible action with probability {p:g}",
                         "records": play_episodes(root, cfg, jobs, out / "candidates" / f"noisy_{p:g}.jsonl",
                                                  f"w2s noisy:{p:g}", policy=f"noisy:{p:g}", played=played)})
    for pol in policies:
        rows = scaling_rows(pol["records"], [n])  # with N = all candidates: Table 1's picks, ties shared
        pairs = [(f"bon:{n} (explicit)", "sample"), (f"bon:{n} (heuristic)", "sample"),
                 (f"bon:{n} (explicit)", f"bon:{n} (heuristic)"), (f"pass@{n} (oracle)", "sample")]
        pol.update(level_and_gains({m: r for m, r in rows.items() if r}, tasks, held_in, pairs, cfg.bootstrap,
                                   cfg.seed))
        records = pol.pop("records")
        pol["episode_seconds"] = _seconds(records) if pol["kind"] != "sft" else 0.0  # the run's: already paid
    result = {"analysis": "weak-to-strong", "run": str(root), "size": size, "n": n, "tasks": tasks,
              "held_in": held_in, "episodes": {t: len(ids[t]) for t in tasks}, "temperature": cfg.temperature,
              "policies": policies,
              "cost": {"seconds": round(time.time() - started, 1), "played": played.get("episodes", 0),
                       "sft_train_seconds": variant["train_seconds"],
                       "episode_seconds": round(sum(p["episode_seconds"] for p in policies), 1),
                       "workers": cfg.workers}}
    from agentrm_gym.train.analyses import _write

    _write(root, "weak_to_strong", result, w2s_markdown(result), plot_weak_to_strong)
    return result


# -------------------------------------------------------------------------------------------- outputs
def ci(cell: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``12.3 [10.1, 14.6]`` (``+`` signs and ``(noise)`` when the CI holds 0, for a gain)."""
    if not cell or cell.get("mean") is None:
        return "n/a"
    def num(x: float) -> str:
        if round(x, 1) == 0.0 and abs(x) >= 0.005:  # a bound just off 0: its sign decides "(noise)"
            return f"{x:+.2f}" if signed else f"{x:.2f}"
        return (f"{{:{'+' if signed else ''}.1f}}").format(round(x, 1) + 0.0)  # + 0.0: no "-0.0"

    text = f"{num(float(cell['mean']))} [{num(float(cell['lo']))}, {num(float(cell['hi']))}]"
    return text + (" (noise)" if signed and cell["lo"] <= 0.0 <= cell["hi"] else "")


def _cost_line(cost: Mapping[str, Any]) -> str:
    played = cost.get("played")
    parts = [f"{cost['seconds'] / 60:.1f} min wall for this invocation"
             + ("" if played is None else f", which played {played} episodes")]
    for key, label in (("bon_episode_seconds", "Best-of-N episodes"), ("beam_episode_seconds", "beam episodes"),
                       ("sft_train_seconds", "training the larger policy"), ("episode_seconds", "episodes"),
                       ("sft_seconds", "training the per-task policies"),
                       ("greedy_episode_seconds", "greedy episodes")):
        if key in cost:
            parts.append(f"{label} {cost[key]:.0f} s")
    return ("**Cost**: " + "; ".join(parts) + " (episode and training seconds are measured when first played "
            "and summed over worker processes, reruns reuse them).")


def bon_markdown(r: Mapping[str, Any]) -> str:
    ns, lv, gains = r["n"], r["levels"], r["gains"]
    eps = sum(r["episodes"].values())
    lines = [f"# Best-of-N scaling: `{r['run']}` (size {r['size']})", "",
             f"The run's SFT policy sampled {r['candidates']} candidates per test episode ({eps} episodes: "
             f"{', '.join(f'{t} {k}' for t, k in r['episodes'].items())}; temperature {r['temperature']}, at most "
             f"{r['max_steps'] or 'the task budget of'} steps, the evaluate stage's ids and seeds). Each cell is "
             f"the expected progress rate (%) of the pick from N of the {r['candidates']} drawn at random, exact "
             "over the N-subsets; the mean over tasks of each task's mean, with a 95% bootstrap CI over "
             "episodes (stratified by task). Selectors: `explicit` (the run's RM), `heuristic` (fewer repeated "
             "actions, ties shared), `oracle` (pass@N: the env's own progress), `one sample` (N = 1 of any).", "",
             _cost_line(r["cost"]), ""]
    names = [("explicit RM", "bon:{n} (explicit)"), ("heuristic", "bon:{n} (heuristic)"),
             ("oracle (pass@N)", "pass@{n} (oracle)")]
    for g, label in GROUP_LABELS.items():
        lines += [f"## Progress rate (%), {label} tasks", "", "| selector | " + " | ".join(f"N={n}" for n in ns) + " |",
                  "|---|" + "---|" * len(ns)]
        for title, fmt in names:
            lines.append(f"| {title} | " + " | ".join(ci(lv[fmt.format(n=n)][f'{g}_progress_rate']) for n in ns) + " |")
        lines += [f"| one sample | {ci(lv['sample'][f'{g}_progress_rate'])} |" + " |" * (len(ns) - 1), ""]
    lines += ["## Gains (progress points, 95% CI)", "",
              "| gain | group | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|---|" + "---|" * len(ns)]
    for title, a, b in (("explicit RM over one sample", "bon:{n} (explicit)", "sample"),
                        ("heuristic over one sample", "bon:{n} (heuristic)", "sample"),
                        ("explicit RM over heuristic", "bon:{n} (explicit)", "bon:{n} (heuristic)")):
        for g, label in GROUP_LABELS.items():
            cells = [ci(gains[f"{a.format(n=n)} - {b.format(n=n)}"][f"{g}_progress_rate"], True) for n in ns]
            lines.append(f"| {title} | {label} | " + " | ".join(cells) + " |")
    top = ns[-1]
    lines += ["", f"## Per task, N={top} (progress rate %)", "",
              "| task | episodes | one sample | explicit RM | heuristic | oracle |", "|---|---|---|---|---|---|"]
    per = r["per_task"]
    for t in r["tasks"]:
        star = "*" if t in r["held_in"] else ""
        cells = [per[m]["tasks"][t]["progress_rate"] for m in
                 ("sample", f"bon:{top} (explicit)", f"bon:{top} (heuristic)", f"pass@{top} (oracle)")]
        lines.append(f"| {t}{star} | {r['episodes'][t]} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    beam_eps = sum(r["beam_episodes"].values())
    lines += ["", "`*` held-in (the RM's training tasks).", "",
              f"## Beam search against Best-of-N on the same {beam_eps} episodes", "",
              "Step-level beam search (W1 beams, W2 sampled expansions each, the explicit RM scoring every new "
              "state) on a subset of the episodes; Best-of-N rows are the expected picks above, restricted to the "
              "same episodes, with their expected env steps (N times a candidate's mean length). Reused: the "
              "run's own evaluation episodes of that width (same ids and seeds).", "",
              "| method | episodes | progress % (all) | gain over one sample (all) | held-in | held-out | env steps "
              "/ episode | source |", "|---|---|---|---|---|---|---|---|"]
    for b in r["beam"]:
        lines.append(f"| {b['method']} | {b['episodes']} | {ci(b['level']['all_progress_rate'])} | "
                     f"{ci(b['gain']['all_progress_rate'], True)} | {ci(b['gain']['held_in_progress_rate'], True)} | "
                     f"{ci(b['gain']['held_out_progress_rate'], True)} | {b['env_steps']:.1f} | {b['source']} |")
    return "\n".join(lines) + "\n"


def w2s_markdown(r: Mapping[str, Any]) -> str:
    n = r["n"]
    eps = sum(r["episodes"].values())
    lines = [f"# Weak-to-strong: `{r['run']}` (size {r['size']})", "",
             f"The run's explicit RM picks the best of {n} sampled trajectories (temperature {r['temperature']}) of "
             f"policies it never saw, on the same {eps} test episodes (the evaluate stage's ids and seeds). "
             f"Strength: the policy's one-sample progress rate. Gains in progress points, paired on episodes, with "
             "95% bootstrap CIs (stratified by task); averages are means over tasks.", "", _cost_line(r["cost"]), "",
             "| policy | what | one sample % (all) | RM Best-of-{n} % (all) | RM gain: held-in | held-out | all | "
             "heuristic gain (all) | RM over heuristic (all) | pass@{n} % (all) |".replace("{n}", str(n)),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in r["policies"]:
        lv, g = p["levels"], p["gains"]
        rm = g[f"bon:{n} (explicit) - sample"]
        lines.append(f"| {p['policy']} | {p['what']} | {ci(lv['sample']['all_progress_rate'])} | "
                     f"{ci(lv[f'bon:{n} (explicit)']['all_progress_rate'])} | "
                     f"{ci(rm['held_in_progress_rate'], True)} | {ci(rm['held_out_progress_rate'], True)} | "
                     f"{ci(rm['all_progress_rate'], True)} | "
                     f"{ci(g[f'bon:{n} (heuristic) - sample']['all_progress_rate'], True)} | "
                     f"{ci(g[f'bon:{n} (explicit) - bon:{n} (heuristic)']['all_progress_rate'], True)} | "
                     f"{ci(lv[f'pass@{n} (oracle)']['all_progress_rate'])} |")
    lines += ["", "## Per task: one sample -> RM Best-of-{n} (progress rate %)".replace("{n}", str(n)), "",
              "| policy | " + " | ".join(f"{t}{'*' if t in r['held_in'] else ''}" for t in r["tasks"]) + " |",
              "|---|" + "---|" * len(r["tasks"])]
    for p in r["policies"]:
        per = p["per_task"]
        lines.append(f"| {p['policy']} | " + " | ".join(
            f"{per['sample']['tasks'][t]['progress_rate']:.1f} -> {per[f'bon:{n} (explicit)']['tasks'][t]['progress_rate']:.1f}"
            for t in r["tasks"]) + " |")
    lines += ["", "`*` held-in (the RM's training tasks)."]
    big = next((p for p in r["policies"] if p["kind"] == "sft-large"), None)
    if big is not None:
        lines += ["", f"The larger SFT policy: {big['parameters']:,} parameters, trained in {big['train_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def _errorbars(cells: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[list[float]]]:
    ys = [c["mean"] for c in cells]
    return ys, [[max(0.0, c["mean"] - c["lo"]) for c in cells], [max(0.0, c["hi"] - c["mean"]) for c in cells]]


def plot_bon_scaling(r: Mapping[str, Any], path: Path) -> Path:
    from agentrm_gym.train.report import _figure, _save

    ns, lv = r["n"], r["levels"]
    fig = _figure(16.0, 3.9)
    axes = fig.subplots(1, 4)
    for ax, (g, label) in zip(axes, GROUP_LABELS.items(), strict=False):
        for title, fmt, style in (("explicit RM", "bon:{n} (explicit)", dict(color="tab:blue", marker="o")),
                                  ("heuristic", "bon:{n} (heuristic)", dict(color="tab:orange", marker="s")),
                                  ("oracle (pass@N)", "pass@{n} (oracle)", dict(color="0.2", ls="--"))):
            cells = [lv[fmt.format(n=n)][f"{g}_progress_rate"] for n in ns]
            ys, err = _errorbars(cells)
            ax.errorbar(ns, ys, yerr=err, capsize=3, label=title, **style)
        one = lv["sample"][f"{g}_progress_rate"]["mean"]
        ax.axhline(one, color="0.5", ls=":", label="one sample")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("N (candidates)")
        ax.set_ylabel("progress rate (%)")
        ax.set_title(f"Best-of-N, {label} tasks")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    ax = axes[3]  # paired gains over one sample on the beam's episodes, against env steps
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    bon = [b for b in r["beam"] if b["method"].startswith("bon")]
    ys, err = _errorbars([b["gain"]["all_progress_rate"] for b in bon])
    ax.errorbar([b["env_steps"] for b in bon], ys, yerr=err, fmt="o-", capsize=3, color="tab:blue",
                label="Best-of-N (N = " + ", ".join(str(n) for n in ns) + "), explicit RM")
    for b in [b for b in r["beam"] if b["method"].startswith("beam")]:
        ys, err = _errorbars([b["gain"]["all_progress_rate"]])
        ax.errorbar([b["env_steps"]], ys, yerr=err, fmt="D", capsize=3, label=b["method"])
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xscale("log")
    steps = [b["env_steps"] for b in r["beam"]]
    ax.set_xticks([x for x in (5, 10, 20, 50, 100, 200, 500, 1000) if min(steps) / 1.5 <= x <= max(steps) * 1.5])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("env steps per episode (log)")
    ax.set_ylabel("gain over one sample (points), all tasks")
    ax.set_title(f"beam vs Best-of-N ({sum(r['beam_episodes'].values())} episodes)")
    ax.legend(fontsize="x-small", loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_weak_to_strong(r: Mapping[str, Any], path: Path) -> Path:
    from agentrm_gym.train.report import _figure, _save

    n = r["n"]
    fig = _figure(13.0, 4.0)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (g, label) in zip(axes, GROUP_LABELS.items(), strict=True):
        xs = [p["levels"]["sample"][f"{g}_progress_rate"]["mean"] for p in r["policies"]]
        nudge = 0.01 * (max(xs) - min(xs) or 1.0)  # the heuristic's bars beside the RM's, not on them
        for key, title, dx, style in ((f"bon:{n} (explicit) - sample", "explicit RM", 0.0,
                                       dict(fmt="o", color="tab:blue")),
                                      (f"bon:{n} (heuristic) - sample", "heuristic", nudge,
                                       dict(fmt="s", color="tab:orange", alpha=0.7))):
            ys, err = _errorbars([p["gains"][key][f"{g}_progress_rate"] for p in r["policies"]])
            ax.errorbar([x + dx for x in xs], ys, yerr=err, capsize=3, label=title, **style)
        for x, p in zip(xs, r["policies"], strict=True):
            ax.annotate(p["policy"].replace(" (the run's)", "*"), (x, p["gains"][f"bon:{n} (explicit) - sample"]
                                                                  [f"{g}_progress_rate"]["mean"]),
                        textcoords="offset points", xytext=(4, 6), fontsize="x-small")
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xlabel("policy strength: one-sample progress (%)")
        ax.set_title(f"{label} tasks")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"Best-of-{n} gain over one sample (points, 95% CI)")
    axes[0].legend(fontsize="small")
    return _save(fig, path)

