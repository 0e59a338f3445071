"""The env server (`agentrm serve env`, on openenv-core) and its client env `agentrm/Remote-v0`.

Every test talks to a real server on loopback (a free port) and shuts it down. Covered: snapshot/restore/fork
isolation on every registered task (as the task in process), OpenEnv's WebSocket client, 4xx answers to
malformed, oversized and unauthorised requests, session and snapshot bounds, idle reaping, planners giving
the same episodes remotely as in process, and `openenv validate --url` against `agentrm serve env`.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time

import gymnasium as gym
import pytest

from agentrm_gym.core import restore, snapshot
from agentrm_gym.extras import is_available
from agentrm_gym.registry import TaskSpec
from tests.conftest import require_task, spec_params

pytestmark = pytest.mark.skipif(not (is_available("openenv") and is_available("httpx")),
                                reason="the env server needs openenv-core and httpx: pip install 'agentrm-gym[serve]'")

FAST = ["Maze", "PDDL"]


@pytest.fixture(scope="module")
def server():
    from agentrm_gym.serve.env_server import EnvServer

    with EnvServer(max_sessions=32, max_snapshots_per_session=64) as srv:
        yield srv


@pytest.fixture()
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def _actions(info: dict, n: int = 3) -> list[str]:
    acts = info.get("admissible_actions") or ["check valid actions", "look", "inventory"]
    return [acts[i % len(acts)] for i in range(n)]


def _play(env: gym.Env, actions: list[str]) -> list[tuple]:
    return [env.step(a) for a in actions]


# ---------------------------------------------------------------------------------- every task
@pytest.mark.parametrize("spec", spec_params())
def test_snapshot_restore_fork_isolation(server, spec: TaskSpec):
    """A remote episode equals the in-process one; restore returns exactly; a fork is isolated both ways."""
    require_task(spec)
    from agentrm_gym.envs.remote import make_remote
    from agentrm_gym.registry import make

    local, a, b = make(spec.name, split="test"), make_remote(server.url, spec.name), make_remote(server.url, spec.name)
    try:
        obs_l, info_l = local.reset(seed=3)
        obs_a, info_a = a.reset(seed=3)
        assert (obs_a, info_a) == (obs_l, info_l)
        prefix = _actions(info_l, 2)
        assert _play(a, prefix) == _play(local, prefix)

        snap = snapshot(a)
        pickle.loads(pickle.dumps(snap))  # a token: picklable
        after = _actions({"admissible_actions": a.unwrapped.admissible_actions()}, 3)
        expected = _play(local, after)
        assert _play(a, after) == expected

        # fork: b (another session) starts from a's snapshot; its steps do not touch a, and a's not b
        b.reset(seed=11)
        gym_restore(b, snap)
        assert b.unwrapped.last_observation == snap.observation and b.unwrapped.steps == snap.steps
        a_state = (a.unwrapped.last_observation, a.unwrapped.steps, a.unwrapped.progress)
        assert _play(b, after) == expected  # same actions from the same state: the same results
        assert (a.unwrapped.last_observation, a.unwrapped.steps, a.unwrapped.progress) == a_state
        _play(b, ["check valid actions", "an invalid command !?"])
        gym_restore(a, snap)
        assert _play(a, after) == expected
        assert a.unwrapped.steps == snap.steps + len(after)
    finally:
        for env in (local, a, b):
            env.close()


def gym_restore(env: gym.Env, snap) -> None:
    restore(env, snap)  # keeps the client's TimeLimit in step with the restored state


# ---------------------------------------------------------------------------------- the HTTP routes
def test_fork_route_and_session_lifecycle(server, http):
    sid = http.post("/sessions").json()["session_id"]
    first = http.post(f"/sessions/{sid}/reset", json={"task": "Maze", "seed": 5}).json()
    move = first["observation"]["admissible_actions"][0]
    http.post(f"/sessions/{sid}/step", json={"action": {"command": move}})
    fork = http.post(f"/sessions/{sid}/fork")
    assert fork.status_code == 201
    fid = fork.json()["session_id"]
    assert fid != sid and fork.json()["observation"]["steps"] == 1
    step_a = http.post(f"/sessions/{sid}/step", json={"action": {"command": move}}).json()
    step_f = http.post(f"/sessions/{fid}/step", json={"action": {"command": move}}).json()
    assert step_a == {**step_f, "observation": {**step_f["observation"], "session_id": sid}}
    assert http.get(f"/sessions/{fid}/state").json()["step_count"] == 2
    expert = http.get(f"/sessions/{sid}/expert").json()["action"]
    assert isinstance(expert, str) and expert
    for s in (sid, fid):
        assert http.delete(f"/sessions/{s}").json()["closed"] is True
        assert http.post(f"/sessions/{s}/step", json={"action": {"command": move}}).status_code == 404


def test_remote_env_copy_and_token_release(server):
    from agentrm_gym.envs.remote import make_remote

    env = make_remote(server.url, "Maze")
    try:
        _, info = env.reset(seed=2)
        env.step(info["admissible_actions"][0])
        twin = copy.deepcopy(env)  # a new session restored from a snapshot token
        try:
            assert twin.unwrapped.last_observation == env.unwrapped.last_observation
            assert twin.unwrapped.steps == env.unwrapped.steps == 1
        finally:
            twin.close()
        before = len(server.env_server.store)
        for _ in range(20):
            env.unwrapped.snapshot()  # dropped at once: freed with the next snapshot request
            gc.collect()
        assert len(server.env_server.store) <= before + 2
    finally:
        env.close()


def test_openenv_websocket_client_forks_with_reset(server, http):
    """OpenEnv's own client: reset/step over /ws; the snapshot routes take its session id; a new
    connection forks with reset(snapshot_id=...)."""
    from openenv.core.generic_client import GenericEnvClient

    with GenericEnvClient(base_url=server.url).sync() as client:
        first = client.reset(task="Maze", seed=4)
        sid = first.observation["session_id"]
        move = first.observation["admissible_actions"][0]
        client.step({"command": move})
        token = http.post(f"/sessions/{sid}/snapshot").json()["snapshot_id"]
        after = client.step({"command": move})
        with GenericEnvClient(base_url=server.url).sync() as other:
            forked = other.reset(snapshot_id=token)
            assert forked.observation["steps"] == 1 and forked.observation["session_id"] != sid
            again = other.step({"command": move})
        assert again.observation["text"] == after.observation["text"] and again.reward == after.reward
        assert client.state()["step_count"] == 2


# ---------------------------------------------------------------------------------- 4xx, never 500
def test_malformed_requests_get_4xx_json(server, http):
    sid = http.post("/sessions").json()["session_id"]
    try:
        cases = [
            (http.post(f"/sessions/{sid}/step", content=b"{not json", headers={"content-type": "application/json"}), 422),
            (http.post(f"/sessions/{sid}/step", json={"action": {"command": 5}}), 422),
            (http.post(f"/sessions/{sid}/step", json={"action": "go"}), 422),
            (http.post(f"/sessions/{sid}/step", json={"action": {"command": "x"}}), 409),  # before reset
            (http.post(f"/sessions/{sid}/reset", json={"task": "NoSuchTask"}), 404),
            (http.post(f"/sessions/{sid}/reset", json={"task": "Maze", "task_id": "no-such-id"}), 404),
            (http.post(f"/sessions/{sid}/reset", json={"seed": -1}), 422),
            (http.post(f"/sessions/{sid}/reset", json={"split": "dev"}), 422),
            (http.post(f"/sessions/{sid}/reset", json={"bogus": 1}), 422),
            (http.post(f"/sessions/{sid}/reset", json=[1, 2]), 422),
            (http.post(f"/sessions/{sid}/restore", json={"snapshot_id": "never-issued"}), 410),
            (http.post(f"/sessions/{sid}/restore", json={"snapshot_id": 7}), 422),
            (http.post(f"/sessions/{sid}/restore", json={}), 422),
            (http.post(f"/sessions/{sid}/snapshot", json={"release": "x"}), 422),
            (http.post(f"/sessions/{sid}/snapshot"), 409),  # before reset
            (http.get(f"/sessions/{sid}/expert"), 409),
            (http.post("/sessions/not-a-session/reset", json={}), 404),
            (http.post("/step", json={"action": {"command": "x"}}), 409),  # OpenEnv's stateless step: fresh env
            (http.post("/step", json={"action": {"nope": "x"}}), 422),
            (http.post(f"/sessions/{sid}/step", content=b"x" * 2_000_000, headers={"content-type": "application/json"}), 413),
        ]
        for response, status in cases:
            assert response.status_code == status, (response.request.url, response.text)
            assert isinstance(response.json()["detail"], (str, list))
    finally:
        http.delete(f"/sessions/{sid}")


def test_api_key_required_on_http_and_websocket():
    import httpx
    from websockets.sync.client import connect

    from agentrm_gym.envs.remote import RemoteEnvError, make_remote
    from agentrm_gym.serve.env_server import EnvServer

    with EnvServer(FAST, api_key="sesame") as srv:
        assert httpx.get(srv.url + "/health").status_code == 200
        assert httpx.post(srv.url + "/sessions").status_code == 401
        assert httpx.post(srv.url + "/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.post(srv.url + "/reset", json={}).status_code == 401
        with pytest.raises(Exception):  # noqa: B017  (refused: the client's handshake error, whatever its class)
            with connect(srv.url.replace("http", "ws") + "/ws") as ws:
                ws.send(json.dumps({"type": "reset", "data": {}}))
                ws.recv(timeout=10)
        with pytest.raises(RemoteEnvError):
            make_remote(srv.url, "Maze")
        env = make_remote(srv.url, "Maze", api_key="sesame")
        try:
            _, info = env.reset(seed=0)
            assert info["task"] == "Maze"
        finally:
            env.close()


def test_env_kwargs_carry_a_perturbation_level_to_the_served_env():
    from agentrm_gym.envs.remote import make_remote
    from agentrm_gym.registry import make
    from agentrm_gym.serve.env_server import EnvServer

    local = make("Maze", split="test", perturbation=3)
    with EnvServer(["Maze"], env_kwargs={"Maze": {"perturbation": 3}}) as srv:
        env = make_remote(srv.url, "Maze", split="test")
        try:
            obs, info = env.reset(seed=0)
            want_obs, want_info = local.reset(seed=0)
            assert (obs, info["goal"]) == (want_obs, want_info["goal"])
            assert info["admissible_actions"] == want_info["admissible_actions"]
            assert all(a.startswith("go ") for a in info["admissible_actions"])  # the renamed grammar
            refused = env.step("move up")  # the original wording is refused in-env, as in process
            assert refused[:2] == local.step("move up")[:2]
            assert refused[4]["action_valid"] is False
        finally:
            env.close()
            local.close()


def test_session_and_snapshot_bounds_and_idle_reaping():
    import httpx

    from agentrm_gym.serve.env_server import EnvServer

    with EnvServer(FAST, max_sessions=2, max_snapshots_per_session=2, max_snapshots=3, idle_timeout=0.5) as srv:
        c = httpx.Client(base_url=srv.url, timeout=60)
        s1, s2 = (c.post("/sessions").json()["session_id"] for _ in range(2))
        assert c.post("/sessions").status_code == 429
        c.post(f"/sessions/{s1}/reset", json={"seed": 0})
        c.post(f"/sessions/{s2}/reset", json={"seed": 0})
        t = [c.post(f"/sessions/{s1}/snapshot").json()["snapshot_id"] for _ in range(3)]
        assert c.post(f"/sessions/{s1}/restore", json={"snapshot_id": t[0]}).status_code == 410  # per-session LRU
        assert c.post(f"/sessions/{s1}/restore", json={"snapshot_id": t[2]}).status_code == 200
        u = [c.post(f"/sessions/{s2}/snapshot").json()["snapshot_id"] for _ in range(2)]
        assert c.get("/capacity").json()["snapshots"] == 3  # the global bound evicted s1's oldest
        assert c.post(f"/sessions/{s2}/restore", json={"snapshot_id": u[0]}).status_code == 200
        envs = [srv.env_server._sessions[s] for s in (s1, s2)]
        assert all(e._env is not None for e in envs)
        deadline = time.monotonic() + 60  # the reaper checks every 5 s; no timing is asserted
        while srv.env_server.active_sessions and time.monotonic() < deadline:
            time.sleep(0.5)
        assert srv.env_server.active_sessions == 0
        assert all(e._env is None for e in envs)  # env.close() ran: the simulator is gone
        assert len(srv.env_server.store) == 0
        assert c.post(f"/sessions/{s1}/step", json={"action": {"command": "x"}}).status_code == 404
        c.close()


# ---------------------------------------------------------------------------------- planners
@pytest.mark.parametrize("task", FAST)
@pytest.mark.parametrize("method", ["bon:5", "beam:2x2"])
def test_planner_against_remote_env_equals_in_process(server, task: str, method: str):
    from agentrm_gym.agents.planners import make_planner
    from agentrm_gym.agents.policy import NoisyOraclePolicy
    from agentrm_gym.envs.remote import make_remote
    from agentrm_gym.registry import make

    def plan(env: gym.Env, seed: int) -> dict:
        try:
            record = make_planner(method, NoisyOraclePolicy(0.5, seed=seed)).run(env, None, seed=seed).trajectory.to_dict()
        finally:
            env.close()
        record.get("meta", {}).pop("cost", None)  # wall time differs
        return record

    for seed in (0, 1):
        assert plan(make_remote(server.url, task), seed) == plan(make(task, split="test"), seed)


def test_agentrm_eval_with_env_url_equals_in_process(server, tmp_path):
    """`agentrm eval --env-url URL --method bon:5` gets the in-process episodes for the same seeds."""
    import json

    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    def episodes(out, *extra):
        res = CliRunner().invoke(app, ["eval", "--env", "Maze", "--policy", "noisy:0.5", "--method", "bon:5",
                                       "--scorer", "progress", "--episodes", "3", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
        return [(r["task_id"], [s["action"] for s in r["steps"]], r["progress"]) for r in rows]

    remote = episodes(tmp_path / "remote", "--env-url", server.url)
    assert len(remote) == 3 and remote == episodes(tmp_path / "local")


# ---------------------------------------------------------------------------------- the CLI
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cli_server(tasks: str) -> tuple[subprocess.Popen, str]:
    """``agentrm serve env --tasks TASKS`` on a free port, once its /health answers: (process, URL)."""
    import httpx

    port = _free_port()
    agentrm = os.path.join(os.path.dirname(sys.executable), "agentrm")
    proc = subprocess.Popen([agentrm, "serve", "env", "--tasks", tasks, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"agentrm serve env did not start:\n{proc.stdout.read()}")
        time.sleep(0.3)


def test_cli_serves_and_openenv_validate_passes():
    import httpx

    proc, url = _start_cli_server("Maze,PDDL")
    try:
        assert httpx.get(url + "/tasks").json()["default"] == "Maze"
        openenv = shutil.which("openenv", path=os.path.dirname(sys.executable))
        if openenv is None:
            pytest.skip("the openenv command is not installed")
        out = subprocess.run([openenv, "validate", "--url", url, "--timeout", "30"], capture_output=True, text=True,
                             timeout=300)
        report = json.loads(out.stdout)
        assert out.returncode == 0 and report["passed"] is True, out.stdout + out.stderr
        assert report["mode"] == "simulation"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _children(pid: int) -> set[int]:
    """The process ids whose parent is ``pid`` (from /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_killed_server_leaves_no_simulator_behind():
    """SIGKILL of `agentrm serve env` while a ScienceWorld session holds its JVM: the JVM exits too (it is
    started to die with its parent's stdin), so no orphan outlives the server."""
    import signal

    import httpx

    pytest.importorskip("scienceworld", reason="pip install 'agentrm-gym[sciworld]'")
    proc, url = _start_cli_server("ScienceWorld")
    try:
        sid = httpx.post(url + "/sessions", timeout=60).json()["session_id"]
        reset = httpx.post(f"{url}/sessions/{sid}/reset", json={"task": "ScienceWorld", "seed": 0}, timeout=300)
        assert reset.status_code == 200, reset.text
        jvms = _children(proc.pid)
        assert jvms, "the ScienceWorld session started no simulator process"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in jvms) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in jvms if _alive(p)], "a simulator outlived the killed server"
