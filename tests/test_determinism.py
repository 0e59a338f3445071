"""The README's determinism promise, tested.

* **On one machine**, a seed gives bit-identical run files whatever ``threads`` and ``workers`` are and
  whatever Python's hash seed is: the training stages run torch on one thread
  (:func:`agentrm_gym.rm.backbones.training_threads`), the episode stages' outputs are the same for any
  number of workers (tests/test_parallel.py). Here: the smoke run's expert data and SFT policy under
  two hash seeds and two thread counts.
* **Across machines**, the task splits and the expert data are the same: their digests are committed
  (``tests/data/determinism.json``), so a CI run on another machine checks that its envs build the same
  test sets (the first ids of each split: goal, first observation, admissible actions and three oracle
  steps) and its expert stage writes the same trajectories. Trained weights are not promised across
  machines: the CPU's kernels (MKL / oneDNN pick code paths per CPU) round differently.

``AGENTRM_UPDATE_GOLDEN=1`` rewrites the digests (after a deliberate change of an env or the expert).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from agentrm_gym.registry import SUITE, TASKS, TaskSpec

from .conftest import require_task

GOLDEN = Path(__file__).parent / "data" / "determinism.json"
UPDATE = os.environ.get("AGENTRM_UPDATE_GOLDEN") == "1"


def golden() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def check_golden(key: str, digest: str) -> None:
    data = golden()
    if UPDATE:
        data[key] = digest
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return
    assert key in data, f"no committed digest for {key}; run with AGENTRM_UPDATE_GOLDEN=1 once"
    assert data[key] == digest, f"{key}: this machine builds other data than the committed digest's"


def split_digest(spec: TaskSpec, ids: int = 8, oracle_steps: int = 3) -> str:
    """The first ``ids`` test ids of a task: goal, first observation, admissible actions and the
    observations of ``oracle_steps`` oracle steps, hashed."""
    env = gym.make(spec.env_id, split="test", disable_env_checker=True)
    digest = hashlib.sha256()
    try:
        for task_id in env.unwrapped.task_ids("test")[:ids]:
            obs, info = env.reset(seed=0, options={"task_id": task_id})
            record = [task_id, info["goal"], obs, info["admissible_actions"]]
            for _ in range(oracle_steps):
                action = env.unwrapped.expert_action()
                if action is None:
                    break
                obs, reward, term, trunc, info = env.step(action)
                record.append([action, obs, round(float(reward), 9), info["admissible_actions"]])
                if term or trunc:
                    break
            digest.update(json.dumps(record, sort_keys=True).encode())
    finally:
        env.close()
    return digest.hexdigest()


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if TASKS[n].slow else [])
                                  for n in SUITE])
def test_the_test_splits_are_the_committed_ones(name: str) -> None:
    spec = TASKS[name]
    require_task(spec)
    check_golden(f"split/{name}", split_digest(spec))


def stage(stage: str, run: Path, hash_seed: str, threads: int = 0) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "agentrm_gym", "pipeline", stage, "--out", str(run), "--preset", "smoke"]
    if threads:
        cmd += ["--set", f"threads={threads}"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The smoke run's expert and SFT stages under hash seeds 0 and 1 and torch threads 1 and 2."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("determinism")
    out = {}
    for name, hash_seed, threads in (("a", "0", 2), ("b", "1", 1)):
        run = root / name
        stage("expert", run, hash_seed)
        stage("sft", run, hash_seed, threads)
        out[name] = run
    return out


def test_expert_data_is_the_same_for_any_hash_seed_and_machine(runs: dict[str, Path]) -> None:
    a, b = (runs[k] / "expert" / "trajectories.jsonl" for k in "ab")
    assert file_digest(a) == file_digest(b)
    assert file_digest(runs["a"] / "expert" / "sft.jsonl") == file_digest(runs["b"] / "expert" / "sft.jsonl")
    check_golden("smoke/expert/trajectories.jsonl", file_digest(a))


def test_the_sft_policy_is_the_same_for_any_hash_seed_and_thread_count(runs: dict[str, Path]) -> None:
    for name in ("model.safetensors", "tokenizer.json"):
        a, b = (runs[k] / "sft" / "policy" / name for k in "ab")
        assert file_digest(a) == file_digest(b), f"sft/policy/{name} differs between the two runs"
