"""Real SIGKILL at named points of every pipeline stage, then resume: the outputs are the uninterrupted run's.

tests/test_robustness.py cuts files by hand where a kill would; this harness kills the real process.

1. **Reference.** The smoke preset's six stages run uninterrupted, each as its CLI command in a subprocess
   (``python -m agentrm_gym pipeline <stage> --out RUN --preset smoke``) with ``AGENTRM_KILL_TRACE`` set:
   every call of :func:`agentrm_gym.files.kill_point` on the way is recorded, so the reference knows each
   stage's named points and how often each is passed (``append``: a JSONL append, killed half-written;
   ``atomic-write`` / ``atomic-dir``: a file or directory written but not yet renamed; ``sft-save``: the
   policy's weights saved, its tokenizer not; ``train-step`` / ``checkpoint``: the RM trainer between
   steps and while a checkpoint replaces the last). It also measures the seconds at which the stage began
   and ended and its output's final :func:`progress` (files written plus JSONL lines).
2. **Kill.** For each stage S, a fresh run directory gets the reference's ``config.json`` and the
   directories of the stages before S; ``pipeline S`` runs with ``AGENTRM_KILL_AT=NAME:N`` and kills
   itself at the N-th pass of point NAME, both drawn from ``random.Random(f"{SEED}/{stage}")``. The
   counts depend on the seed only, so a kill lands at the same place on a fast, a slow or a loaded
   machine, and the test asserts that it did. A soak run (``AGENTRM_KILL_SOAK=1``) adds kills by the
   clock (:data:`SCALES`): once S's output holds ``u`` of the reference's progress, or ``u`` of the way
   from the stage's start to its end in the reference's seconds; where those land depends on the machine,
   so they find new kill windows but do not run in CI.
3. **Resume.** ``pipeline S`` runs again to completion, and every file of S's directories must equal the
   reference's: byte for byte (weights, tokenizers, table.md), JSON and JSONL once the clock fields of
   :data:`CLOCK_FIELDS` are removed and the run directory is written ``<run>``, torch pickles (the RM
   trainer's ``trainer_state.pt``) by content: a resumed trainer's state holds the same values, but its
   pickle memoises strings the uninterrupted one shared (interned dict keys) one by one. No file may be
   left that the reference lacks (debris of an interrupted write). Every JSONL file of the run must hold
   whole lines only and no record twice (:data:`RECORD_KEYS`).

One named kill per stage by default; the ``slow`` test tries two more per stage (``AGENTRM_KILL_POINTS=N``:
N more). The last tests pin down what the kills found (the RM trainer's resume, the SFT policy's
temporary files) and a kill window too narrow for a random kill to hit (between two appends of the
evaluate stage).
"""

from __future__ import annotations

import fnmatch
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentrm_gym.train.pipeline import STAGE_NAMES  # noqa: E402

pytestmark = pytest.mark.timeout(900)

SEED = 12
#: The directories each stage writes, under the run and under ``tb/``.
STAGE_DIRS = {"expert": ("expert",), "sft": ("sft",), "explore": ("explore",), "extract": ("extract",),
              "train-rm": ("rm", "rm_implicit"), "evaluate": ("eval",)}
#: Keys that hold wall-clock measurements, found by diffing two uninterrupted runs; removed (at any depth)
#: before JSON / JSONL files are compared. Nothing else differs between two runs of one seed.
CLOCK_FIELDS = {
    "wall_seconds": "every done.json's stage time; cost.wall_seconds of each planner episode (explore index "
                    "and groups, eval episodes and candidates, a trajectory's meta.cost)",
    "train_seconds": "the SFT and RM training times (sft/done.json, the RM cards, rm/done.json)",
    "seconds": "explore/done.json per task: the sum of the trees' cost.wall_seconds",
    "group_seconds": "explore/done.json per task: the sum of the groups' cost.wall_seconds",
    "method_seconds": "eval results.json / done.json: each method's sum of cost.wall_seconds",
    "greedy_tokens_per_s": "sft/done.json throughput probe: tokens over a timed generation",
    "sampled_tokens_per_s": "sft/done.json throughput probe",
    "sampled_turns_per_s": "sft/done.json throughput probe",
}
#: A record's identity in each JSONL file of a run (``None``: the whole record; two rollouts of one
#: tree are told apart by their steps only).
RECORD_KEYS = {
    "expert/trajectories.jsonl": ("task", "task_id"), "expert/sft.jsonl": ("id",),
    "explore/trees/*.jsonl": ("id",), "explore/index.jsonl": ("task", "task_id"),
    "explore/groups.jsonl": ("task", "task_id"), "explore/rollouts.jsonl": None,
    "extract/pairs.jsonl": ("group", "state"), "eval/episodes.jsonl": ("method", "task", "task_id"),
    "eval/candidates.jsonl": ("method", "task", "task_id"), "eval/scores/*.jsonl": ("task", "task_id"),
    "eval/rm_quality.jsonl": ("task",),
}
ENV = {**os.environ, "TQDM_DISABLE": "1"}


def command(stage: str, run: Path) -> list[str]:
    return [sys.executable, "-m", "agentrm_gym", "pipeline", stage, "--out", str(run), "--preset", "smoke"]


def stage_files(run: Path, stage: str) -> list[Path]:
    return [f for d in STAGE_DIRS[stage] for f in (run / d).rglob("*") if f.is_file()]


def progress(run: Path, stage: str) -> int:
    """How far a stage's output has got: its files (but done.json) plus the lines of its JSONL files."""
    n = 0
    for f in stage_files(run, stage):
        if f.name == "done.json":
            continue
        try:
            n += 1 + (f.read_bytes().count(b"\n") if f.suffix == ".jsonl" else 0)
        except FileNotFoundError:  # a temporary file renamed meanwhile
            pass
    return n


def run_stage(stage: str, run: Path, env: dict[str, str] | None = None) -> float:
    """Run ``pipeline stage`` to completion; returns its seconds."""
    t0 = time.perf_counter()
    res = subprocess.run(command(stage, run), env=env or ENV, cwd=run.parent, capture_output=True, text=True)
    assert res.returncode == 0, f"pipeline {stage} --out {run} failed:\n{res.stderr[-4000:]}"
    return time.perf_counter() - t0


#: The clock's kill scales of a soak run, by point index (``i % 2``).
SCALES = ("progress", "time")
SOAK = os.environ.get("AGENTRM_KILL_SOAK") == "1"


@dataclass
class Reference:
    """The uninterrupted run: its directory, each stage's begin / end seconds and final progress, and the
    named kill points each stage passed (name -> count)."""

    root: Path
    stages: dict[str, dict[str, float]]
    points: dict[str, dict[str, int]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    root = tmp_path_factory.mktemp("kill") / "reference"
    root.mkdir()
    stages, points = {}, {}
    for s in STAGE_NAMES:
        trace = root.parent / f"trace-{s}.txt"
        end = run_stage(s, root, {**ENV, "AGENTRM_KILL_TRACE": str(trace)})
        wall = json.loads((root / STAGE_DIRS[s][0] / "done.json").read_text())["wall_seconds"]
        stages[s] = {"begin": round(max(0.3, end - wall), 2), "end": round(end, 2), "progress": progress(root, s)}
        names = trace.read_text(encoding="utf-8").split() if trace.exists() else []
        points[s] = {n: names.count(n) for n in sorted(set(names))}
        assert points[s], f"pipeline {s} passed no kill point"
    assert not jsonl_problems(root)
    return Reference(root, stages, points)


def without_clock(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: without_clock(v) for k, v in obj.items() if k not in CLOCK_FIELDS}
    if isinstance(obj, list):
        return [without_clock(v) for v in obj]
    return obj


def outputs(run: Path, stage: str) -> dict[str, Any]:
    """Every file of the stage's directories: relative path -> content (see the module docstring)."""
    out: dict[str, Any] = {}
    for d in STAGE_DIRS[stage]:
        for f in sorted(p for p in (run / d).rglob("*") if p.is_file()):
            data = f.read_bytes().replace(str(run).encode(), b"<run>")
            if f.suffix == ".json":
                data = without_clock(json.loads(data, parse_constant=str))  # NaN as "NaN": equal to itself
            elif f.suffix == ".jsonl":
                data = [without_clock(json.loads(line, parse_constant=str)) for line in data.splitlines()]
            elif f.suffix == ".pt":
                data = pickled_content(f)
            out[f.relative_to(run).as_posix()] = data
    return out


def pickled_content(path: Path) -> Any:
    """A torch pickle as comparable values: tensors as (dtype, shape, bytes), NaN as a string."""
    import torch

    def plain(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [plain(v) for v in obj]
        if isinstance(obj, torch.Tensor):
            return str(obj.dtype), list(obj.shape), obj.numpy().tobytes()
        return "nan" if isinstance(obj, float) and obj != obj else obj

    return plain(torch.load(path, map_location="cpu", weights_only=False))


def where_differ(a: Any, b: Any, at: str = "") -> str:
    """The first path (``[3].cost.x``) where two parsed files differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        k = next((k for k in sorted(set(a) | set(b)) if a.get(k, ...) != b.get(k, ...)), None)
        return where_differ(a.get(k), b.get(k), f"{at}.{k}") if k in a and k in b else f"{at}.{k} (in one only)"
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        return where_differ(a[i], b[i], f"{at}[{i}]")
    return f"{at or 'bytes'}: {str(a)[:80]} != {str(b)[:80]}"


def jsonl_problems(run: Path) -> list[str]:
    """Torn lines and records written twice in the JSONL files of a run (TensorBoard aside)."""
    problems = []
    for f in sorted(run.rglob("*.jsonl")):
        rel = f.relative_to(run).as_posix()
        pattern = next((p for p in RECORD_KEYS if fnmatch.fnmatch(rel, p)), None)
        if pattern is None:
            problems.append(f"{rel}: no RECORD_KEYS entry (add the fields that identify its records)")
            continue
        text = f.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            problems.append(f"{rel}: the last line is cut short")
        seen = set()
        for i, line in enumerate(text.splitlines(), 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"{rel}:{i}: not a whole JSON record")
                continue
            fields = RECORD_KEYS[pattern]
            key = line if fields is None else json.dumps([rec.get(k) for k in fields], sort_keys=True)
            if key in seen:
                problems.append(f"{rel}:{i}: a second record of {key[:200]}")
            seen.add(key)
    return problems


def copy_inputs(ref: Path, run: Path, stage: str) -> None:
    """``run`` with the reference's config and the directories (and TensorBoard logs) before ``stage``."""
    run.mkdir(parents=True)
    shutil.copy2(ref / "config.json", run / "config.json")
    for before in STAGE_NAMES[: STAGE_NAMES.index(stage)]:
        for d in STAGE_DIRS[before]:
            for src, dst in ((ref / d, run / d), (ref / "tb" / d, run / "tb" / d)):
                if src.exists():
                    shutil.copytree(src, dst)


def kill_and_resume(ref: Reference, run: Path, stage: str, due: Callable[[float], bool] | None = None,
                    kill_at: str = "") -> str:
    """Start ``pipeline stage`` and kill it: at the named point ``kill_at`` (``NAME:N``; the process kills
    itself) or by SIGKILL to its process group once ``due(seconds since launch)``; then resume it to the end.
    Returns where the kill landed."""
    copy_inputs(ref.root, run, stage)
    env = {**ENV, "AGENTRM_KILL_AT": kill_at} if kill_at else ENV
    t0 = time.perf_counter()
    proc = subprocess.Popen(command(stage, run), env=env, cwd=run.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None and (due is None or not due(time.perf_counter() - t0)):
        time.sleep(0.01)
    if kill_at:
        assert proc.returncode == -signal.SIGKILL, f"pipeline {stage} never reached kill point {kill_at}"
    elif proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        landed = "after the stage ended"
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the stage's worker processes, if any
        except ProcessLookupError:
            pass
        landed = ("after done.json" if (run / STAGE_DIRS[stage][0] / "done.json").exists()
                  else "mid-stage" if stage_files(run, stage) else "before the stage's first file")
    run_stage(stage, run)
    return landed


def check_kills(ref: Reference, tmp_path: Path, stage: str, points: range, record_property: Any) -> None:
    """Kill at ``points`` (indices into the stage's seeded draws), resume, compare with the reference."""
    want = outputs(ref.root, stage)
    measured, named = ref.stages[stage], ref.points[stage]
    draws = random.Random(f"{SEED}/{stage}")
    u_of = [(draws.uniform(0.1, 0.9), draws.randrange(len(named))) for _ in range(max(points) + 1)]
    kills = [(i, "named") for i in points] + ([(i, SCALES[i % 2]) for i in points] if SOAK else [])
    landed = []
    for i, scale in kills:
        u, which = u_of[i]
        run = tmp_path / f"kill{i}-{scale}" / "run"
        if scale == "named":
            name = sorted(named)[which]
            at = f"{name}:{max(1, round(u * named[name]))}"
            point = f"at point {at} (passed {named[name]} times)"
            where = kill_and_resume(ref, run, stage, kill_at=at)
        elif scale == "progress":
            at = max(1, round(u * measured["progress"]))
            point = f"at progress {at} of {measured['progress']}"
            where = kill_and_resume(ref, run, stage, lambda _t, at=at, run=run: progress(run, stage) >= at)
        else:
            at = measured["begin"] + u * (measured["end"] - measured["begin"])
            point = f"{at:.2f}s after launch (stage {measured['begin']}s to {measured['end']}s)"
            where = kill_and_resume(ref, run, stage, lambda t, at=at: t >= at)
        landed.append(f"{point}: {where}")
        why = f"pipeline {stage} killed {point} (SEED {SEED}, point {i}, u={u:.3f}; landed {where}), then resumed"
        problems = jsonl_problems(run)
        assert not problems, f"{why}:\n" + "\n".join(problems)
        debris = [p.relative_to(run).as_posix() for d in STAGE_DIRS[stage] for p in (run / d).rglob(".*")]
        assert not debris, f"{why}: the resumed stage left the debris of an interrupted write: {debris}"
        got = outputs(run, stage)
        assert sorted(got) == sorted(want), f"{why}: files {sorted(set(got) ^ set(want))} are not in both runs"
        differ = {k: where_differ(got[k], want[k]) for k in want if got[k] != want[k]}
        assert not differ, f"{why}: files differ from the uninterrupted run's (at): {differ}"
    print(f"\n{stage}: killed " + "; ".join(landed))
    record_property(f"kills_{stage}", landed)


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_a_killed_stage_resumes_to_the_uninterrupted_outputs(reference: Reference, tmp_path: Path, stage: str,
                                                            record_property: Any) -> None:
    check_kills(reference, tmp_path, stage, range(1), record_property)


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_many_kill_points_per_stage(reference: Reference, tmp_path: Path, stage: str, record_property: Any) -> None:
    more = int(os.environ.get("AGENTRM_KILL_POINTS", "2"))  # CI's share; a soak run sets more
    check_kills(reference, tmp_path, stage, range(1, 1 + more), record_property)  # not the default's point


def test_rm_training_resumed_from_its_checkpoint_trains_the_same_weights(tmp_path: Path) -> None:
    """What the train-rm kills found: fit() resumed from an epoch's checkpoint drew other dropout masks
    (torch's generator restarted from the seed), so the implicit RM's weights differed from the
    uninterrupted run's; the checkpoint now carries the generator."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from agentrm_gym.rm.backbones import tiny_causal_lm
    from agentrm_gym.rm.trainer import TrainConfig, fit

    _, tok = tiny_causal_lm(["go north", "take the key", "open the door"], vocab_size=60, hidden_size=8,
                            num_layers=1, num_heads=1)
    ids = torch.tensor([tok("go north take the key open the door")["input_ids"]] * 4)

    def train(out: Path, kill_at: int | None = None) -> dict[str, Any]:
        torch.manual_seed(0)  # dropout 0.1 (GPT-2's default), as the SFT policy the implicit RM starts from
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2))
        calls = []

        def batch_loss(m: Any, idx: list[int]) -> Any:
            calls.append(1)
            if len(calls) == kill_at:
                raise KeyboardInterrupt  # killed in epoch 2 (2 steps an epoch): its checkpoint is epoch 1's
            return m(input_ids=ids[idx], labels=ids[idx]).loss

        fit(model, tok, 4, batch_loss, None, out, TrainConfig(epochs=3, batch_size=2), "losses/lm", 1e-2)
        return model.state_dict()

    want = train(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "killed", kill_at=3)
    got = train(tmp_path / "killed")
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_evaluate_resume_after_a_kill_between_candidates_and_episode(reference: Reference, tmp_path: Path) -> None:
    run = tmp_path / "run"
    copy_inputs(reference.root, run, "evaluate")
    shutil.copytree(reference.root / "eval", run / "eval")
    for name in ("done.json", "results.json", "table.md"):
        (run / "eval" / name).unlink()
    episodes = (run / "eval" / "episodes.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    last_bon = max(i for i, line in enumerate(episodes) if json.loads(line)["method"].startswith("bon"))
    (run / "eval" / "episodes.jsonl").write_text("".join(episodes[:last_bon] + episodes[last_bon + 1:]),
                                                 encoding="utf-8")  # its candidates line was appended
    run_stage("evaluate", run)
    assert not jsonl_problems(run)
    assert outputs(run, "evaluate") == outputs(reference.root, "evaluate")


def test_a_resumed_stage_removes_hidden_debris_whatever_its_name(tmp_path: Path) -> None:
    """What a kill on a slower machine found: a SIGKILL while the SFT policy was saved left
    ``sft/policy/.tmpo0Q03B`` (a library's temporary), which the resumed stage kept. Now the policy is
    written under a hidden directory and renamed, and a resumed stage removes every hidden entry."""
    from agentrm_gym.files import write_dir_atomic
    from agentrm_gym.train.common import begin_stage

    sft = tmp_path / "sft"
    (sft / "policy").mkdir(parents=True)
    (sft / "policy" / "config.json").write_text("{}")
    (sft / "policy" / ".tmpo0Q03B").write_text("half")
    (sft / ".policy.partial" / "sub").mkdir(parents=True)
    (sft / ".policy.partial" / "sub" / "model.safetensors").write_bytes(b"x")
    (sft / ".done.json.x.tmp").write_text("{")
    begin_stage(tmp_path, "sft")
    assert sorted(p.relative_to(sft).as_posix() for p in sft.rglob("*")) == ["policy", "policy/config.json"]

    def killed(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dir_atomic(sft / "policy", killed)
    assert (sft / "policy" / "config.json").exists() and not (sft / "policy" / "model.safetensors").exists()
    write_dir_atomic(sft / "policy", lambda tmp: (tmp / "model.safetensors").write_bytes(b"new"))
    assert sorted(p.name for p in (sft / "policy").iterdir()) == ["model.safetensors"]
