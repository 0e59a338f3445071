"""``agentrm serve policy`` over loopback, and the ``openai`` backend driving episodes against it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import gymnasium as gym
import httpx
import pytest

import agentrm_gym  # noqa: F401
from agentrm_gym.agents.openai_backend import EndpointError, OpenAIPolicy, normalize_base_url
from agentrm_gym.agents.planners import BestOfN, Greedy
from agentrm_gym.agents.tiny import build_tiny_policy
from agentrm_gym.serve.policy_server import BackgroundServer, create_app

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is faster single-threaded on a shared CPU
    yield build_tiny_policy(tmp_path_factory.mktemp("tiny"), episodes=8, vocab_size=512)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def server(model_dir):
    with BackgroundServer(create_app(str(model_dir), model_name="tiny", device="cpu")) as srv:
        yield srv


def test_models_and_completions(server):
    with httpx.Client(timeout=60) as c:
        models = c.get(server.url + "/models").json()
        assert models["data"][0]["id"] == "tiny"
        body = {"model": "tiny", "prompt": ["### User:\nhi\n\n### Assistant:\n", "Task: x"], "n": 3,
                "temperature": 1.0, "max_tokens": 8, "logprobs": 1, "seed": 1}
        r = c.post(server.url + "/completions", json=body).json()
        assert len(r["choices"]) == 6 and [ch["index"] for ch in r["choices"]] == list(range(6))
        for ch in r["choices"]:
            lp = ch["logprobs"]["token_logprobs"]
            assert 1 <= len(lp) <= 8 and all(v <= 0 for v in lp)
            assert "".join(ch["logprobs"]["tokens"]).startswith(ch["text"][:1])
        assert r["usage"]["completion_tokens"] == sum(len(ch["logprobs"]["tokens"]) for ch in r["choices"])
        again = c.post(server.url + "/completions", json=body).json()
        assert [ch["text"] for ch in again["choices"]] == [ch["text"] for ch in r["choices"]]  # seeded
        greedy = c.post(server.url + "/completions", json={**body, "temperature": 0, "n": 2}).json()
        assert greedy["choices"][0]["text"] == greedy["choices"][1]["text"]
        stop = c.post(server.url + "/completions", json={**body, "stop": ["a", "e", "o", " "], "max_tokens": 30}).json()
        assert all(not any(s in ch["text"] for s in "aeo ") for ch in stop["choices"])
        assert c.post(server.url + "/completions", json={**body, "model": "other"}).status_code == 404
        assert c.post(server.url + "/completions", json={**body, "n": 0}).status_code == 422


def test_chat_completions(server):
    with httpx.Client(timeout=60) as c:
        body = {"messages": [{"role": "user", "content": "Task: reach the goal"}], "n": 2, "max_tokens": 6,
                "logprobs": True, "temperature": 0.8}
        r = c.post(server.url + "/chat/completions", json=body).json()
        assert len(r["choices"]) == 2
        ch = r["choices"][0]
        assert ch["message"]["role"] == "assistant" and isinstance(ch["message"]["content"], str)
        assert 1 <= len(ch["logprobs"]["content"]) <= 6


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_openai_backend_drives_an_episode(server, mode):
    env = gym.make("agentrm/Maze-v0", split="test", max_episode_steps=3)
    policy = OpenAIPolicy(server.url, mode=mode, max_new_tokens=12, seed=0)
    assert policy.model == "tiny"
    res = Greedy(policy).run(env, "double_t-5-4", seed=0)
    traj = res.trajectory
    assert len(traj.steps) == 3 and traj.policy == "openai:tiny"
    assert res.cost.policy_calls == 3 and res.cost.generated_tokens > 0
    props = policy.propose(traj.state(), n=3, temperature=1.0)
    assert len(props) == 3 and all(p.logprob < 0 and p.num_tokens > 0 for p in props)
    bon = BestOfN(policy, lambda states: [len(s.steps) for s in states], n=2, max_steps=2).run(env, "double_t-5-4")
    assert len(bon.candidates) == 2 and bon.cost.policy_calls == 2
    policy.close()
    env.close()


def test_openai_backend_retries_then_fails_clearly():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = OpenAIPolicy(f"http://127.0.0.1:{port}", model="m", max_retries=2, backoff=0.01, timeout=2)
    start = time.monotonic()
    with pytest.raises(EndpointError, match="after 3 attempts"):
        policy.propose(__import__("agentrm_gym.trajectory").trajectory.AgentState("Maze", "g", "o"))
    assert time.monotonic() - start < 10
    assert normalize_base_url("localhost:8000") == "http://localhost:8000/v1"
    assert normalize_base_url("http://h/v1/") == "http://h/v1"


@pytest.mark.slow
def test_cli_serve_policy_subprocess(model_dir):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "agentrm_gym", "serve", "policy", "--model", str(model_dir),
                             "--port", str(port), "--device", "cpu"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
                time.sleep(0.5)
        assert r.json()["data"][0]["id"] == str(model_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
