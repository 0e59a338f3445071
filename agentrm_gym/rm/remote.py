"""A client reward model that scores through a server such as ``agentrm serve rm``.

:class:`RemoteRewardModel` implements ``score()`` by POSTing states to ``/score`` (texts to
``/get_reward``), caching locally like any RM. The server side lives in :mod:`agentrm_gym.serve.rm_server`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from agentrm_gym.extras import require_extra
from agentrm_gym.rm.base import RewardModel
from agentrm_gym.trajectory import AgentState, state_to_dict


class RemoteRewardModel(RewardModel):
    """A reward model behind ``agentrm serve rm`` (or any server with the same ``/score``).

    Scores are cached locally like any RM; each batch of misses is one HTTP request
    (``stats.forward_calls``).

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8001``.
        timeout: seconds per request.
        api_key: the server's ``--api-key`` (sent as ``Authorization: Bearer <key>``); default
            ``$AGENTRM_API_KEY``, else none.
    """

    kind = "remote"

    def __init__(self, url: str, timeout: float = 60.0, batch_size: int = 64, cache_size: int = 100_000,
                 api_key: str | None = None):
        super().__init__(batch_size=batch_size, cache_size=cache_size)
        httpx = require_extra("httpx", "serve", "RemoteRewardModel")
        self.url = url.rstrip("/")
        key = api_key or os.environ.get("AGENTRM_API_KEY")
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else None)

    def _post(self, route: str, payload: dict[str, Any], key: str) -> np.ndarray:
        self.stats.forward_calls += 1
        resp = self._client.post(self.url + route, json=payload)
        if resp.status_code != 200:
            raise RuntimeError(f"{self.url}{route}: HTTP {resp.status_code}: {resp.text[:300]}")
        return np.asarray(resp.json()[key], dtype=np.float64)

    def _score_states(self, states: list[AgentState]) -> np.ndarray:
        return self._post("/score", {"states": [state_to_dict(s) for s in states]}, "scores")

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        return self._post("/get_reward", {"query": texts}, "rewards")

    def health(self) -> dict[str, Any]:
        return self._client.get(self.url + "/health").json()

    def close(self) -> None:
        self._client.close()
