"""The ``openai`` backend: any OpenAI-compatible endpoint (``vllm serve``, ``agentrm serve policy``, ...).

Requests go through ``httpx`` with a timeout, retries with exponential backoff on connection errors,
timeouts, 429 and 5xx, ``n`` samples per request, and log-probs when the server returns them (a server
that rejects the ``logprobs`` field is asked again without it). The states of a batch are sent as
concurrent requests. ``mode="chat"`` sends the prompt builder's messages to ``/chat/completions``
(the server applies its chat template); ``mode="completions"`` sends the plain-format prompt string.
The API key comes from ``api_key``, else ``$OPENAI_API_KEY``, else ``"EMPTY"``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentrm_gym.agents.policy import Generation, LLMPolicy
from agentrm_gym.agents.prompts import STOP_STRINGS, PromptBuilder, render_plain
from agentrm_gym.core import AgentRMGymError
from agentrm_gym.trajectory import AgentState

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(AgentRMGymError, RuntimeError):
    """The endpoint failed after all retries, or answered with an error that retrying cannot fix."""


def normalize_base_url(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/v1`` (a URL already ending in a version path is kept)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    last = url.rsplit("/", 1)[-1]
    return url if last.startswith("v") and last[1:].isdigit() else url + "/v1"


class OpenAIPolicy(LLMPolicy):
    """A policy served by an OpenAI-compatible endpoint.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (``/v1`` is added when missing).
        model: the model name (default: the first of ``GET /models``).
        api_key: the key (default ``$OPENAI_API_KEY`` or ``"EMPTY"``).
        mode: ``"chat"`` or ``"completions"``.
        timeout: seconds per request.
        max_retries: retries of a failed request (with backoff ``backoff * 2**i`` seconds).
        concurrency: concurrent requests for a batch of states.
        logprobs: ask for log-probs.
        builder, max_new_tokens, retries, seed: see :class:`~agentrm_gym.agents.policy.LLMPolicy`.
    """

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, mode: str = "chat",
                 builder: PromptBuilder | None = None, max_new_tokens: int = 64, retries: int = 0,
                 seed: int | None = None, timeout: float = 60.0, max_retries: int = 3, backoff: float = 0.5,
                 concurrency: int = 8, logprobs: bool = True, client: Any = None):
        import httpx

        super().__init__(builder, max_new_tokens, retries, seed)
        if mode not in ("chat", "completions"):
            raise ValueError(f"mode must be 'chat' or 'completions', got {mode!r}")
        self.base_url = normalize_base_url(base_url)
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.mode = mode
        self.max_retries, self.backoff, self.concurrency = max_retries, backoff, max(1, concurrency)
        self.logprobs = logprobs
        self.client = client or httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {self.api_key}"})
        self._model = model
        self.name = f"openai:{model}" if model else f"openai:{self.base_url}"

    @property
    def model(self) -> str:
        if self._model is None:
            data = self._request("GET", "/models")
            models = data.get("data") or []
            if not models:
                raise EndpointError(f"{self.base_url}/models lists no model; pass model=...")
            self._model = str(models[0]["id"])
            self.name = f"openai:{self._model}"
        return self._model

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ requests
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        url = self.base_url + path
        last: str = ""
        for attempt in range(self.max_retries + 1):
            try:
                resp = self.client.request(method, url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 400:
                    return resp.json()
                last = f"HTTP {resp.status_code}: {resp.text[:500]}"
                if resp.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{method} {url} failed: {last}")
            if attempt < self.max_retries:
                time.sleep(self.backoff * 2**attempt)
        raise EndpointError(f"{method} {url} failed after {self.max_retries + 1} attempts: {last}")

    def build_request(self, state: AgentState, n: int, temperature: float, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """The ``(path, JSON body)`` of the request for ``state``."""
        messages = self.builder.messages(state)
        body: dict[str, Any] = {"model": self.model, "n": n, "temperature": max(0.0, temperature),
                                "max_tokens": self.max_new_tokens, "stop": list(STOP_STRINGS)}
        if seed is not None:
            body["seed"] = seed
        if self.mode == "chat":
            body["messages"] = messages
            if self.logprobs:
                body["logprobs"] = True
            return "/chat/completions", body
        body["prompt"] = render_plain(messages)
        if self.logprobs:
            body["logprobs"] = 1
        return "/completions", body

    def _parse(self, data: dict[str, Any], n: int) -> list[Generation]:
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        total = (data.get("usage") or {}).get("completion_tokens")
        out = []
        for c in choices[:n]:
            lp_block = c.get("logprobs") or {}
            if self.mode == "chat":
                text = (c.get("message") or {}).get("content") or ""
                content = lp_block.get("content") or []
                logprob = float(sum(t.get("logprob", 0.0) for t in content))
                ntok = len(content)
            else:
                text = c.get("text") or ""
                lps = [v for v in (lp_block.get("token_logprobs") or []) if v is not None]
                logprob, ntok = float(sum(lps)), len(lps)
            if not ntok and total:
                ntok = int(total) // max(1, len(choices))
            out.append(Generation(text, logprob, ntok, c.get("finish_reason") or "stop"))
        if len(out) < n:
            raise EndpointError(f"the endpoint returned {len(out)} choices for n={n}")
        return out

    def _one(self, state: AgentState, n: int, temperature: float, seed: int | None) -> list[Generation]:
        path, body = self.build_request(state, n, temperature, seed)
        try:
            data = self._request("POST", path, body)
        except EndpointError as exc:
            if "logprobs" not in body or "logprobs" not in str(exc):
                raise
            self.logprobs = False  # this server does not do log-probs; ask without them from now on
            body.pop("logprobs")
            data = self._request("POST", path, body)
        return self._parse(data, n)

    def generate(self, states: Sequence[AgentState], n: int, temperature: float) -> list[list[Generation]]:
        seeds = [int(self.rng.integers(2**31 - 1)) for _ in states]
        _ = self.model  # resolve the model name once, before the threads start
        if len(states) == 1 or self.concurrency == 1:
            return [self._one(s, n, temperature, sd) for s, sd in zip(states, seeds, strict=True)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(states))) as pool:
            return list(pool.map(lambda a: self._one(a[0], n, temperature, a[1]), zip(states, seeds, strict=True)))
