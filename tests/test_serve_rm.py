"""The RM server over loopback: /score, OpenRLHF's /get_reward, /health, RemoteRewardModel."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the [serve] extra")
pytest.importorskip("httpx", reason="needs the [serve] extra")

from agentrm_gym.rm import FunctionRewardModel  # noqa: E402
from agentrm_gym.rm.remote import RemoteRewardModel  # noqa: E402
from agentrm_gym.serve.rm_server import RMServer  # noqa: E402
from agentrm_gym.trajectory import (  # noqa: E402
    AgentState,
    Step,
    state_to_dict,  # noqa: E402
)

pytestmark = pytest.mark.timeout(60)


def states() -> list[AgentState]:
    s0 = AgentState("Maze", "Reach the goal at position 8, 6.", "You are at 5, 4.")
    s1 = s0.extend(Step("move down", "You are at 6, 4."))
    s2 = s1.extend(Step("move right", "You are at 6, 5.", thought="closer"))
    return [s0, s1, s2]


def length_value(s: AgentState) -> float:
    return len(s.steps) + len(s.goal) / 100


def test_score_and_remote_model() -> None:
    import httpx

    local = FunctionRewardModel(length_value)
    with RMServer(local) as server:
        assert server.url.startswith("http://127.0.0.1:")
        remote = RemoteRewardModel(server.url)
        assert remote.health()["kind"] == "function"
        np.testing.assert_allclose(remote.score(states()), local.score(states()))
        np.testing.assert_allclose(remote(states()[:2]), [0.32, 1.32])
        assert remote.stats.forward_calls == 1  # the second call was cached on the client
        resp = httpx.post(server.url + "/score", json={"states": [state_to_dict(s) for s in states()]})
        assert resp.status_code == 200 and resp.json()["scores"] == pytest.approx([0.32, 1.32, 2.32])
        bad = httpx.post(server.url + "/score", json={"states": [{"goal": "no task"}]})
        assert bad.status_code == 422 and "task" in bad.text
        remote.close()


def test_openrlhf_get_reward() -> None:
    import httpx

    rm = FunctionRewardModel(length_value)
    texts = [rm.text(s) for s in states()]

    class TextLength(FunctionRewardModel):
        def _score_texts(self, batch):
            self.stats.forward_calls += 1
            return np.array([len(t) for t in batch], dtype=float)

    with RMServer(TextLength(length_value)) as server:
        resp = httpx.post(server.url + "/get_reward", json={"query": texts, "prompts": ["p"] * 3})
        assert resp.status_code == 200
        assert resp.json()["rewards"] == [float(len(t)) for t in texts]
        assert httpx.post(server.url + "/get_reward", json={"query": "x"}).status_code == 422


def test_cli_has_serve_rm() -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    result = CliRunner().invoke(app, ["serve", "rm", "--help"])
    assert result.exit_code == 0 and "--rm" in result.output


class TextLength(FunctionRewardModel):
    """Scores texts and states by the length of the RM text (a model that scores both routes)."""

    def _score_texts(self, batch):
        self.stats.forward_calls += 1
        return np.array([len(t) for t in batch], dtype=float)

    def _score_states(self, states):
        return self._score_texts([self.text(s) for s in states])


@pytest.mark.parametrize(("route", "payload", "needle"), [
    ("/score", {"states": [{"task": "Maze", "goal": "g", "steps": [{"action": 5}]}]},
     "steps[0].action must be a string"),
    ("/score", {"states": [{"task": "Maze", "goal": "g", "steps": [{"action": "a", "observation": None}]}]},
     "steps[0].observation must be a string"),
    ("/score", {"states": [{"task": "Maze", "goal": "g", "steps": [{"action": "a", "reward": "high"}]}]},
     "steps[0].reward must be a number"),
    ("/score", b'{"states": [{"task": "Maze", "goal": "\\ud800"}]}',
     "states[0].goal: invalid Unicode: a lone surrogate"),
    ("/get_reward", b'{"query": ["ok", "\\udfff"]}', "query[1]: invalid Unicode"),
])
def test_hostile_requests_get_422(route, payload, needle) -> None:
    import httpx

    with RMServer(TextLength(length_value)) as server, httpx.Client(timeout=30) as c:
        if isinstance(payload, bytes):
            r = c.post(server.url + route, content=payload, headers={"content-type": "application/json"})
        else:
            r = c.post(server.url + route, json=payload)
        assert r.status_code == 422 and needle in r.json()["detail"], r.text
        assert c.post(server.url + "/get_reward", json={"query": ["abc"]}).json()["rewards"] == [3.0]


def test_size_limit_api_key_and_remote_client() -> None:
    import httpx

    with RMServer(TextLength(length_value), max_request_bytes=10_000, api_key="k") as server, \
            httpx.Client(timeout=30) as c:
        auth = {"Authorization": "Bearer k"}
        r = c.post(server.url + "/get_reward", json={"query": ["x" * 20_000]}, headers=auth)
        assert r.status_code == 413 and "10000 bytes" in r.json()["detail"]
        assert c.post(server.url + "/get_reward", json={"query": ["x"]}).status_code == 401
        assert c.get(server.url + "/health").status_code == 200
        with pytest.raises(RuntimeError, match="HTTP 401"):
            RemoteRewardModel(server.url).score(states())
        remote = RemoteRewardModel(server.url, api_key="k")
        assert remote.score(states()).shape == (3,)
        remote.close()
    from agentrm_gym.serve.guard import ExposedServerWarning

    with pytest.warns(ExposedServerWarning, match="RM server listens on 0.0.0.0"):
        RMServer(TextLength(length_value), host="0.0.0.0")


def test_states_only_model_answers_texts_with_501() -> None:
    import httpx

    with RMServer(FunctionRewardModel(length_value)) as server:
        r = httpx.post(server.url + "/get_reward", json={"query": ["x"]})
        assert r.status_code == 501 and "cannot score plain texts" in r.json()["detail"]
