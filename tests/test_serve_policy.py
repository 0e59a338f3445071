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
        assert c.post(server.url + "/completions", json={**body, "n": 0}).status_code == 400  # as vLLM: not 422


def test_chat_completions(server):
    with httpx.Client(timeout=60) as c:
        body = {"messages": [{"role": "user", "content": "Task: reach the goal"}], "n": 2, "max_tokens": 6,
                "logprobs": True, "temperature": 0.8}
        r = c.post(server.url + "/chat/completions", json=body).json()
        assert len(r["choices"]) == 2
        ch = r["choices"][0]
        assert ch["message"]["role"] == "assistant" and isinstance(ch["message"]["content"], str)
        assert 1 <= len(ch["logprobs"]["content"]) <= 6


@pytest.fixture(scope="module")
def client(server):
    openai = pytest.importorskip("openai", reason="the openai client is in the dev extra")
    c = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)
    yield c
    c.close()


PROMPT = "### User:\nTask: reach the goal\n\n### Assistant:\n"


def test_openai_client_completions_logprobs_echo_and_offsets(client):
    r = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3)
    ch = r.choices[0]
    lp = ch.logprobs
    assert r.object == "text_completion" and 1 <= len(lp.tokens) <= 8
    assert "".join(lp.tokens).startswith(ch.text) and lp.text_offset[0] == 0
    for tok, off, top, v in zip(lp.tokens, lp.text_offset, lp.top_logprobs, lp.token_logprobs, strict=True):
        if off < len(ch.text):
            assert ch.text[off:].startswith(tok) or tok.startswith(ch.text[off:])
        assert tok in top and 3 <= len(top) <= 4 and v <= 0
        best = max(top, key=top.get)
        assert best == tok and top[best] == pytest.approx(v, abs=1e-3)  # greedy: the sampled token is the top one
    assert r.usage.completion_tokens == len(lp.tokens)

    echo = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=1, echo=True)
    e = echo.choices[0]
    assert e.text == PROMPT + ch.text
    assert e.logprobs.token_logprobs[0] is None and e.logprobs.top_logprobs[0] is None
    assert all(v <= 0 for v in e.logprobs.token_logprobs[1:])
    assert "".join(e.logprobs.tokens).startswith(e.text)
    for tok, off in zip(e.logprobs.tokens, e.logprobs.text_offset, strict=True):
        assert e.text[off:off + len(tok)] == tok or off + len(tok) > len(e.text)
    n_prompt = len(e.logprobs.tokens) - len(lp.tokens)
    assert e.logprobs.text_offset[n_prompt] == len(PROMPT)
    assert e.logprobs.token_logprobs[n_prompt:] == pytest.approx(lp.token_logprobs, abs=1e-5)

    scored = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=0, echo=True, logprobs=0)
    s = scored.choices[0]
    assert s.text == PROMPT and "".join(s.logprobs.tokens) == PROMPT and scored.usage.completion_tokens == 0
    assert s.logprobs.token_logprobs[1:] == pytest.approx(e.logprobs.token_logprobs[1:n_prompt], abs=1e-4)


def test_openai_client_streams_completions(client):
    kwargs = {"model": "tiny", "prompt": [PROMPT, "Task: x"], "n": 2, "max_tokens": 8, "temperature": 1.0,
              "seed": 3}
    full = client.completions.create(**kwargs)
    chunks = list(client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" for c in chunks)
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    for c in chunks[:-1]:
        (choice,) = c.choices
        texts[choice.index] = texts.get(choice.index, "") + choice.text
        if choice.finish_reason:
            finish[choice.index] = choice.finish_reason
    assert texts == {ch.index: ch.text for ch in full.choices}
    assert finish == {ch.index: ch.finish_reason for ch in full.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    echoed = list(client.completions.create(model="tiny", prompt=PROMPT, max_tokens=4, echo=True, logprobs=1,
                                            stream=True, seed=1))
    assert echoed[0].choices[0].text == PROMPT and echoed[0].choices[0].logprobs.token_logprobs[0] is None
    pieces = [c.choices[0] for c in echoed[1:-1]]
    assert all(len(p.logprobs.tokens) == 1 for p in pieces)  # one token a chunk, with its log-prob
    assert [p.logprobs.text_offset[0] for p in pieces] == sorted(p.logprobs.text_offset[0] for p in pieces)


def test_openai_client_chat_parts_logprobs_and_stream(client):
    messages = [{"role": "system", "content": "You are an agent."},
                {"role": "user", "content": [{"type": "text", "text": "Task: reach the goal"},
                                             {"type": "text", "text": "Observation: a wall"}]}]
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=3)
    ch = r.choices[0]
    assert r.object == "chat.completion" and ch.message.role == "assistant"
    content = ch.logprobs.content
    assert 1 <= len(content) <= 6 and r.usage.completion_tokens == len(content)
    for tok in content:
        assert len(tok.top_logprobs) == 3 and tok.logprob <= 0 and bytes(tok.bytes).decode() == tok.token
        assert tok.top_logprobs[0].token == tok.token and tok.top_logprobs[0].logprob == pytest.approx(tok.logprob,
                                                                                                        abs=1e-3)
    joined = [{"role": "system", "content": "You are an agent."},
              {"role": "user", "content": "Task: reach the goal\nObservation: a wall"}]
    same = client.chat.completions.create(model="tiny", messages=joined, max_tokens=6, temperature=0)
    assert same.choices[0].message.content == ch.message.content  # parts are joined by newlines

    stream = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0,
                                            logprobs=True, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    print("\n".join(c.model_dump_json(exclude_none=True) for c in chunks[:3] + chunks[-2:]))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    body = [c.choices[0] for c in chunks if c.choices]
    assert "".join(b.delta.content or "" for b in body) == ch.message.content
    assert [t.token for b in body if b.logprobs for t in b.logprobs.content] == [t.token for t in content]
    assert body[-1].finish_reason == ch.finish_reason and body[-1].delta.content is None
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == r.usage.total_tokens


def test_openai_client_gets_openai_shaped_errors(client, server):
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="other", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="n: Input should be greater than or equal to 1"):
        client.completions.create(model="tiny", prompt="x", max_tokens=2, n=0)
    with pytest.raises(openai.BadRequestError, match="top_logprobs needs logprobs=true"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], top_logprobs=2)
    with pytest.raises(openai.BadRequestError, match="not supported by this text-only model"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    with pytest.raises(openai.BadRequestError, match="max_tokens must be at least 1"):
        client.completions.create(model="tiny", prompt="x", max_tokens=0)
    with httpx.Client(timeout=60) as c:
        r = c.post(server.url + "/completions", json={"prompt": "x", "temperature": "hot"})
        assert r.status_code == 400
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["param"] == "temperature"
        assert err["type"] == "invalid_request_error"
        r = c.post(server.url + "/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()
        r = c.get(server.url + "/nowhere")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


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


SURROGATE = b'"a\\ud800b"'  # JSON's escape of a lone surrogate: valid JSON, invalid Unicode


@pytest.mark.parametrize(("route", "body", "param", "needle"), [
    ("/completions", {"prompt": "", "max_tokens": 2}, "prompt", "prompt is empty"),
    ("/completions", {"prompt": ["x", ""], "max_tokens": 2}, "prompt", "prompt is empty"),
    ("/completions", b'{"prompt": ' + SURROGATE + b', "max_tokens": 2}', "prompt", "lone surrogate"),
    ("/completions", b'{"prompt": "x", "stop": [' + SURROGATE + b"]}", "stop.0", "lone surrogate"),
    ("/chat/completions", b'{"messages": [{"role": "user", "content": ' + SURROGATE + b"}]}",
     "messages.0.content", "lone surrogate"),
    ("/chat/completions", b'{"messages": [{"role": "user", "content": [{"type": "text", "text": ' + SURROGATE
     + b"}]}]}", "messages.0.content.0.text", "lone surrogate"),
    ("/completions", {"prompt": "x", "max_tokens": 2, "seed": 2**70}, "seed", "less than or equal to"),
    ("/completions", {"prompt": "x", "max_tokens": 2, "seed": -(2**64)}, "seed", "greater than or equal to"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}], "seed": 2**70}, "seed", "less than"),
    ("/completions", {"prompt": "x", "max_tokens": 4096}, "max_tokens", "does not fit: this model's context"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 4000}, "max_tokens",
     "does not fit"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 4000},
     "max_completion_tokens", "does not fit"),
])
def test_hostile_requests_get_openai_shaped_400s(server, route, body, param, needle):
    with httpx.Client(timeout=60) as c:
        if isinstance(body, bytes):
            r = c.post(server.url + route, content=body, headers={"content-type": "application/json"})
        else:
            r = c.post(server.url + route, json=body)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
        assert err["param"] == param and needle in err["message"], err
        assert c.post(server.url + "/completions", json={"prompt": "x", "max_tokens": 1, "seed": -1}).status_code == 200


def test_request_size_limit_and_api_key(model_dir):
    openai = pytest.importorskip("openai", reason="the openai client is in the dev extra")
    app = create_app(str(model_dir), model_name="tiny", device="cpu", max_request_bytes=20_000, api_key="s3cret")
    with BackgroundServer(app) as srv, httpx.Client(timeout=60) as c:
        auth = {"Authorization": "Bearer s3cret"}
        r = c.post(srv.url + "/completions", json={"prompt": "x" * 30_000, "max_tokens": 1}, headers=auth)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        assert "20000 bytes" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: counted as it streams in
            yield b'{"prompt": "'
            for _ in range(10):
                yield b"y" * 5_000
            yield b'"}'

        r = c.post(srv.url + "/completions", content=chunks(), headers={**auth, "content-type": "application/json"})
        assert r.status_code == 413
        r = c.post(srv.url + "/completions", json={"prompt": "x", "max_tokens": 1})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert c.get(srv.url + "/models").status_code == 401
        assert c.get(f"http://{srv.host}:{srv.port}/health").status_code == 200
        assert c.post(srv.url + "/completions", json={"prompt": "x", "max_tokens": 1}, headers=auth).status_code == 200
        with pytest.raises(openai.AuthenticationError, match="API key"):
            openai.OpenAI(base_url=srv.url, api_key="wrong", max_retries=0).models.list()
        policy = OpenAIPolicy(srv.url, api_key="s3cret", mode="completions", max_new_tokens=4)
        assert policy.model == "tiny"
        policy.close()


def test_serve_warns_beyond_loopback_without_key(monkeypatch):
    import uvicorn

    from agentrm_gym.serve import policy_server
    from agentrm_gym.serve.guard import ExposedServerWarning

    calls = []
    monkeypatch.setattr(policy_server, "create_app", lambda *a, **k: calls.append(k) or object())
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    with pytest.warns(ExposedServerWarning, match="0.0.0.0"):
        policy_server.serve("m", host="0.0.0.0")
    policy_server.serve("m", host="0.0.0.0", api_key="k", max_request_bytes=5)
    assert calls[-1]["api_key"] == "k" and calls[-1]["max_request_bytes"] == 5
