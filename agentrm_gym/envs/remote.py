"""A text env played on an env server (``agentrm serve env``): the TextEnv contract over HTTP.

``gym.make("agentrm/Remote-v0", url=..., task=...)`` or, with the task's step budget read from the server,
:func:`make_remote`. Each env holds one server session (opened at the first ``reset``, closed by ``close``);
``snapshot()`` returns a :class:`~agentrm_gym.core.Snapshot` whose ``native`` is a server token, so the
planners (Best-of-N, beam search, MCTS) search a remote env exactly as a local one, and get the same
episodes for the same seeds. Tokens that the client no longer references are freed on the server with the
next snapshot request.

OpenEnv's own clients (``GenericEnvClient``, over the WebSocket) talk to the same server; see docs/serving.md.
"""

from __future__ import annotations

import weakref
from typing import Any

import gymnasium as gym

from agentrm_gym.core import AgentRMGymError, ResetNeeded, Snapshot, TextEnv, normalize_action
from agentrm_gym.extras import require_extra

#: The registered id of :class:`RemoteEnv`.
REMOTE_ENV_ID = "agentrm/Remote-v0"


class RemoteEnvError(AgentRMGymError, RuntimeError):
    """The env server refused a request or could not be reached; the message carries its reason."""


class RemoteSnapshotToken:
    """A server-side snapshot, by its token; copies share it, and the last reference frees it on the server."""

    __slots__ = ("token", "__weakref__")

    def __init__(self, token: str):
        self.token = token

    def __copy__(self) -> RemoteSnapshotToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RemoteSnapshotToken:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteSnapshotToken, (self.token,))

    def __repr__(self) -> str:
        return f"RemoteSnapshotToken({self.token[:6]}...)"


class RemoteEnv(TextEnv):
    """## Description
    Any task of an agentrm-gym env server, played over HTTP with the TextEnv contract: the same
    observations, rewards, ``info`` keys and snapshot/restore as the task in process.

    ## Action Space
    Any text command (the server's task decides validity).

    ## Observation Space
    The observation text.

    ## Rewards
    The increase of the task's progress rate, as computed by the server.

    ## Starting State
    ``reset(seed, options={"task_id": ...})`` on the server (the seed picks a task id of ``split``).

    ## Episode End
    As the task's: success or a terminal state (``terminated``); the server's step budget (``truncated``).

    ## Info keys
    ``task``, ``task_id``, ``goal``, ``progress``, ``success``, ``admissible_actions``, ``action_valid``, ``steps``.

    ## Arguments
    url: the server's base URL, e.g. ``http://127.0.0.1:8002``.
    task: the task name (default: the server's first task).
    split: ``"train"`` or ``"test"``.
    api_key: sent as ``Authorization: Bearer <api_key>`` (the server's ``--api-key``).
    timeout: seconds per request.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, url: str, task: str | None = None, split: str = "test", api_key: str | None = None,
                 timeout: float = 120.0, render_mode: str | None = None):
        super().__init__(split=split, render_mode=render_mode)
        httpx = require_extra("httpx", "serve", "the remote env")
        self.url = url.rstrip("/")
        self.task = task
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._session_id: str | None = None
        self._admissible: list[str] | None = None
        self._instruction = ""
        self._released: list[str] = []

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, json: Any = None) -> Any:
        import httpx

        try:
            response = self._client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise RemoteEnvError(f"the env server at {self.url} cannot be reached ({type(exc).__name__}: {exc})") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if response.status_code == 409:
                raise ResetNeeded(f"{self.url}: {detail}")
            raise RemoteEnvError(f"{method} {path} -> {response.status_code}: {detail}")
        return response.json()

    def _session(self) -> str:
        if self._session_id is None:
            self._session_id = self._request("POST", "/sessions")["session_id"]
        return self._session_id

    def _release(self, token: str) -> None:
        self._released.append(token)

    # ------------------------------------------------------------------ the TextEnv contract
    def task_ids(self, split: str = "test") -> list[str]:
        task = self.task or self._request("GET", "/tasks")["default"]
        return list(self._request("GET", f"/tasks/{task}/ids?split={split}")["task_ids"])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        gym.Env.reset(self, seed=seed)
        body: dict[str, Any] = {"split": self.split}
        if seed is not None:
            body["seed"] = int(seed)
        if self.task is not None:
            body["task"] = self.task
        task_id = (options or {}).get("task_id")
        if task_id is not None:
            body["task_id"] = str(task_id)
        reply = self._request("POST", f"/sessions/{self._session()}/reset", body)
        text, _, _, _, info = self._accept(reply, reset=True)
        return text, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._task_id is None:
            raise ResetNeeded(f"{self.task_name}: call reset() before step()")
        command = normalize_action(action)
        reply = self._request("POST", f"/sessions/{self._session()}/step", {"action": {"command": command}})
        out = self._accept(reply)
        self._actions.append(command)
        return out

    def snapshot(self) -> Snapshot:
        if self._task_id is None:
            raise ResetNeeded(f"{self.task_name}: call reset() before snapshot()")
        released, self._released = self._released, []
        reply = self._request("POST", f"/sessions/{self._session()}/snapshot", {"release": released})
        token = RemoteSnapshotToken(reply["snapshot_id"])
        weakref.finalize(token, self._released.append, reply["snapshot_id"])
        return Snapshot(task_id=self._task_id, reset_rng={}, rng={}, actions=tuple(self._actions), steps=self._steps,
                        progress=self._progress_max, success=self._succeeded, terminated=self._terminated,
                        observation=self._last_obs, action_valid=self._last_valid, native=token)

    def restore(self, state: Snapshot) -> None:
        if not isinstance(state, Snapshot) or not isinstance(state.native, RemoteSnapshotToken):
            raise TypeError(f"restore() takes a Snapshot from this env's snapshot(), got {type(state).__name__}")
        reply = self._request("POST", f"/sessions/{self._session()}/restore", {"snapshot_id": state.native.token})
        self._accept(reply, reset=True)
        self._actions = list(state.actions)

    def admissible_actions(self) -> list[str] | None:
        return None if self._admissible is None else list(self._admissible)

    def expert_action(self) -> str | None:
        if self._task_id is None:
            return None
        return self._request("GET", f"/sessions/{self._session()}/expert")["action"]

    def instruction(self) -> str:
        return self._instruction

    def close(self) -> None:
        if self._session_id is not None:
            session, self._session_id = self._session_id, None
            try:
                self._request("DELETE", f"/sessions/{session}")
            except RemoteEnvError:
                pass  # already reaped, or the server is gone: nothing is left to close
        self._client.close()

    # ------------------------------------------------------------------ helpers
    def _accept(self, reply: dict[str, Any], reset: bool = False) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Mirror the server's observation locally (render, snapshot metadata) and return the step tuple."""
        obs = reply["observation"]
        self.task_name = obs["task"]
        self._task_id, self._goal = obs["task_id"], obs["goal"]
        self._steps, self._progress_max, self._succeeded = obs["steps"], obs["progress"], obs["success"]
        self._terminated, self._last_obs, self._last_valid = obs["terminated"], obs["text"], obs["action_valid"]
        self._admissible = obs["admissible_actions"]
        if reset:
            self._instruction = obs.get("instruction") or ""
            self._actions = []
            self._reset_rng = {}  # the server holds the seed; this marks the env as copyable (__reduce_ex__)
        info = {"task": obs["task"], "task_id": obs["task_id"], "goal": obs["goal"], "progress": obs["progress"],
                "success": obs["success"], "admissible_actions": obs["admissible_actions"],
                "action_valid": obs["action_valid"], "steps": obs["steps"], **obs.get("extra_info", {})}
        if self.render_mode == "human":
            self.render()
        return obs["text"], float(reply.get("reward") or 0.0), bool(obs["terminated"]), bool(obs["truncated"]), info


def make_remote(url: str, task: str | None = None, split: str = "test", api_key: str | None = None,
                **kwargs: Any) -> gym.Env:
    """``gym.make("agentrm/Remote-v0", ...)`` with the task's ``max_episode_steps`` as the server states it."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    httpx = require_extra("httpx", "serve", "the remote env")
    try:
        info = httpx.get(url.rstrip("/") + "/tasks", headers=headers, timeout=30).raise_for_status().json()
    except httpx.HTTPError as exc:
        raise RemoteEnvError(f"cannot read the tasks of the env server at {url}: {exc}") from exc
    name = task or info["default"]
    served = {k.lower(): v for k, v in info["tasks"].items()}
    key = name.removeprefix("agentrm/").removesuffix("-v0").lower()
    if key not in served:
        raise RemoteEnvError(f"the env server at {url} does not serve {name!r}; it serves {', '.join(info['tasks'])}")
    kwargs.setdefault("max_episode_steps", served[key]["max_episode_steps"])
    return gym.make(REMOTE_ENV_ID, url=url, task=name, split=split, api_key=api_key, **kwargs)
