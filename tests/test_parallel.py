"""Workers and Ray (issue 13): the same output for any number of workers, errors named, contexts closed.

The pipeline tests run the smoke preset once in one process (the reference), then the stages that play
episodes (expert, explore, evaluate) again from the reference's inputs with two worker processes and on a
local Ray with 2 CPUs; the stage files must equal the reference's (wall-clock fields aside).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from agentrm_gym.extras import is_available
from agentrm_gym.parallel import JobFailed, canonical_order, run_jobs
from agentrm_gym.train.pipeline import preset, run_pipeline, run_stage

TIMING = ("seconds", "per_s")  # wall-clock fields differ between any two runs


class Recorder:
    """A worker context that says, in a file, when it was closed."""

    def __init__(self, marks: str):
        self.marks = Path(marks)
        self.pid = os.getpid()
        (self.marks / f"opened-{self.pid}").write_text("ok")

    def close(self) -> None:
        (self.marks / f"closed-{self.pid}").write_text("ok")


def square(ctx: Recorder, job: int) -> tuple[int, int]:
    time.sleep(0.05 * (job % 3))  # finish out of order
    if job < 0:
        raise ValueError("negative job")
    return job * job, ctx.pid


def slow(ctx: Recorder, job: int) -> int:
    time.sleep(30 if job else 0)
    return job


def make_recorder(marks: str) -> Recorder:
    return Recorder(marks)


def until_both_opened(ctx: Recorder, job: int) -> int:
    """Return once two workers have opened their contexts (at most 60 s)."""
    deadline = time.time() + 60
    while len(list(ctx.marks.glob("opened-*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    return job


class SlowSecondRecorder(Recorder):
    """The second worker to start opens its context, then takes 3 s more to finish building it."""

    def __init__(self, marks: str):
        super().__init__(marks)
        try:
            os.close(os.open(Path(marks) / "first", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            time.sleep(3)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_jobs_gives_every_result_once(tmp_path: Path, workers: int) -> None:
    from functools import partial

    got = dict(run_jobs(square, range(8), partial(make_recorder, str(tmp_path)), workers=workers, progress_bar=False))
    assert {j: r[0] for j, r in got.items()} == {j: j * j for j in range(8)}
    if workers == 2:
        assert len({r[1] for r in got.values()}) == 2  # both workers played
        assert len(list(tmp_path.glob("closed-*"))) == 2  # and each closed its context


def test_a_failing_job_is_named_and_results_before_it_are_kept(tmp_path: Path) -> None:
    from functools import partial

    seen = []
    with pytest.raises(JobFailed, match=r"job -1 failed in a worker: ValueError: negative job"):
        for job, _ in run_jobs(square, [0, 1, -1, 2], partial(make_recorder, str(tmp_path)), workers=2,
                               progress_bar=False):
            seen.append(job)
    assert 0 in seen and 1 in seen


def test_interrupting_the_caller_stops_the_workers_and_closes_their_envs(tmp_path: Path) -> None:
    """A KeyboardInterrupt in the consuming loop (Ctrl-C) terminates workers mid-job; their contexts close."""
    from functools import partial

    t0 = time.time()
    with pytest.raises(KeyboardInterrupt):
        for _ in run_jobs(slow, [0, 1, 1], partial(make_recorder, str(tmp_path)), workers=2, progress_bar=False):
            raise KeyboardInterrupt
    assert time.time() - t0 < 25, "the 30 s jobs were not stopped"
    opened = {p.name.split("-")[1] for p in tmp_path.glob("opened-*")}
    assert opened and opened == {p.name.split("-")[1] for p in tmp_path.glob("closed-*")}


def test_a_worker_stopped_while_building_its_context_still_closes_it(tmp_path: Path) -> None:
    """Ctrl-C while a worker is still building its context: SIGTERM waits until the context exists, then closes
    it (the default action used to kill the worker with the context open)."""
    with pytest.raises(KeyboardInterrupt):
        for _ in run_jobs(until_both_opened, [0, 0, 0, 0], functools.partial(SlowSecondRecorder, str(tmp_path)),
                          workers=2,
                          progress_bar=False):
            raise KeyboardInterrupt
    opened = {p.name.split("-")[1] for p in tmp_path.glob("opened-*")}
    assert len(opened) == 2 and opened == {p.name.split("-")[1] for p in tmp_path.glob("closed-*")}


def test_canonical_order_is_the_single_process_order() -> None:
    recs = [{"k": "b", "i": 1}, {"k": "a", "i": 2}, {"k": "b", "i": 3}, {"k": "z", "i": 4}]
    assert [r["i"] for r in canonical_order(recs, lambda r: r["k"], ["a", "b"])] == [2, 1, 3, 4]


# ----------------------------------------------------------------------------- the pipeline's stages
def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not any(t in k for t in TIMING)}
    if isinstance(obj, list):
        return [_strip(x) for x in obj]
    return obj


def _stage_files(root: Path, stage: str) -> dict[str, object]:
    """Every file of a stage: JSON(L) parsed with timing fields removed, other files as bytes."""
    out = {}
    for f in sorted((root / stage).rglob("*")):
        if not f.is_file():
            continue
        rel = str(f.relative_to(root))
        if f.suffix in (".json", ".jsonl"):  # the run directory's path is written into some of them
            text = f.read_text(encoding="utf-8").replace(str(root), "RUN")
            out[rel] = ([_strip(json.loads(line)) for line in text.splitlines()] if f.suffix == ".jsonl"
                        else _strip(json.loads(text)))
        else:
            out[rel] = f.read_bytes()
    return out


PLAYED = [("expert", "expert"), ("explore", "explore"), ("evaluate", "eval")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("one-process")
    run_pipeline(preset("smoke"), root)
    return root


def _rerun(reference: Path, tmp: Path, stage: str, sub: str, **changes: object) -> Path:
    """The reference run without ``stage``'s directory, then ``stage`` again with ``changes``."""
    root = tmp / "run"
    shutil.copytree(reference, root)
    shutil.rmtree(root / sub)
    run_stage(preset("smoke").replace(**changes), root, stage)
    return root


@pytest.mark.parametrize(("stage", "sub"), PLAYED)
def test_two_workers_write_what_one_process_writes(reference: Path, tmp_path: Path, stage: str, sub: str) -> None:
    root = _rerun(reference, tmp_path, stage, sub, workers=0 if stage == "expert" else 2)  # 0: one per core
    assert _stage_files(root, sub) == _stage_files(reference, sub)


@pytest.fixture(scope="module")
def local_ray():
    if not is_available("ray"):
        pytest.skip("ray is not installed: pip install 'agentrm-gym[dist]'")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize(("stage", "sub"), PLAYED)
def test_ray_writes_what_one_process_writes(local_ray, reference: Path, tmp_path: Path, stage: str, sub: str) -> None:
    root = _rerun(reference, tmp_path, stage, sub, workers=2, ray="auto")  # joins the fixture's local Ray
    assert _stage_files(root, sub) == _stage_files(reference, sub)
    assert local_ray.is_initialized()  # a Ray the caller started is left running


def test_ray_needs_its_extra_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from functools import partial

    from agentrm_gym.core import MissingExtra

    monkeypatch.setattr("agentrm_gym.extras.missing_modules", lambda names: ["ray"])
    with pytest.raises(MissingExtra, match=r"agentrm-gym\[dist\]"):
        list(run_jobs(square, [1], partial(make_recorder, str(tmp_path)), ray="local", progress_bar=False))
