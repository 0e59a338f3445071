"""SkyRL-gym adapter: any agentrm task as a ``skyrl_gym`` ``BaseTextEnv``, with a reward on every turn.

SkyRL's generator makes one env per trajectory with ``skyrl_gym.make(env_class, env_config=..., extras=row)``
(``extras`` is the dataset row's fields plus ``max_turns``), calls ``init(prompt)`` for the first chat, then
``step(llm_output)`` once per turn; each step returns the new user messages, the turn's ``reward``, ``done``
and ``metadata``. SkyRL puts a step's reward on that turn's last token, so a per-turn reward reaches the
advantage estimator as it is, not summed into one scalar per episode.

Quick start::

    import skyrl_gym
    import agentrm_gym.rl.skyrl  # registers "agentrm" with skyrl_gym (register_skyrl_env does it again)

    env = skyrl_gym.make("agentrm", extras={"task": "Maze", "task_id": "3", "reward": "rm", "rm": "runs/demo"})
    chat, meta = env.init([])
    out = env.step("Thought: the exit is east.\\nAction: move east")
    out["reward"], out["done"], out["observations"]

The per-turn reward is chosen by ``reward`` (the names of issue 22's reward specs):

* ``"progress"`` (default): the env's progress delta ``p_{t+1} - p_t`` (an oracle dense reward);
* ``"success"``: 1 on the turn that solves the task, else 0;
* ``"outcome"``: the final progress on the last turn only (what LLM-RL trainers use today);
* ``"rm"``: the outcome plus potential-based shaping by the RM, ``coef * (gamma V(s_{t+1}) - V(s_t))``
  (Ng et al. 1999: the optimal policy is unchanged), ``rm`` any RM spec of :func:`~agentrm_gym.rm.make_reward_model`;
* ``"rm-only"``: the shaping alone (no outcome, no success signal);
* ``"heuristic"``: the outcome plus shaping by the "fewer repeated actions" potential.

The episode ends when the env terminates or truncates, or after ``max_turns`` turns; the outcome is paid
on that turn. Settings are read from ``env_config`` (a SkyRL config section ``skyrl_gym.agentrm``, or a
dict), then ``extras`` and ``extras["extra_info"]``, later ones winning: see :data:`SETTINGS`.
:func:`dataset_rows` writes the rows of a SkyRL dataset (``prompt``, ``env_class`` and the settings).

The chat is the project's own prompt (:class:`~agentrm_gym.agents.prompts.PromptBuilder`, the one
evaluation uses), built from the env; a ``system`` message of the dataset's prompt is kept in front.
Observations come back as ``{"role": "user", "content": "Observation: ..."}``, as in that prompt.

RMs are loaded once per spec and process (SkyRL makes an env per trajectory). ``skyrl_gym`` comes with
the ``[skyrl]`` extra and is imported when :class:`AgentRMTextEnv` is first used, so this module and
:func:`turn_reward` import without it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from agentrm_gym.extras import is_available, require_extra

# AgentRMTextEnv (a BaseTextEnv subclass) is made on first access through the module's __getattr__
__all__ = ["ENV_CLASS", "REWARDS", "SETTINGS", "TurnRewarder", "dataset_rows", "register_skyrl_env",
           "require_skyrl_gym", "settings"]

#: The ``env_class`` agentrm tasks are registered under in skyrl_gym.
ENV_CLASS = "agentrm"
REWARDS = ("progress", "success", "outcome", "rm", "rm-only", "heuristic")
#: The settings an env reads (``env_config`` < ``extras`` < ``extras["extra_info"]``) and their defaults.
SETTINGS: dict[str, Any] = {
    "task": None,          # task name or id ("Maze", "agentrm/Maze-v0"); required
    "task_id": None,       # the episode's task id; None: drawn from the split by ``seed``
    "split": "train",      # the split task ids come from
    "seed": None,          # env seed
    "reward": "progress",  # one of REWARDS
    "rm": None,            # RM spec for "rm" / "rm-only"
    "rm_coef": 1.0,        # scale of the shaping term
    "gamma": 1.0,          # discount inside the potential difference
    "heuristic_scale": 0.05,  # value of one repeated action under "heuristic"
    "max_turns": None,     # SkyRL's generator sets it; None: the env's own step budget
    "with_example": True,  # the one-shot oracle example in the prompt
}


def require_skyrl_gym() -> Any:
    """``skyrl_gym``, or :class:`~agentrm_gym.core.MissingExtra` naming the install command."""
    return require_extra("skyrl_gym", "skyrl", "the SkyRL-gym adapter")


@functools.lru_cache(maxsize=8)
def _cached_rm(spec: str) -> Any:
    from agentrm_gym.rm import make_reward_model

    return make_reward_model(spec)


def _as_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    try:  # an omegaconf DictConfig (SkyRL passes its config section)
        from omegaconf import OmegaConf

        return dict(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    except (ImportError, ValueError):
        return dict(vars(config))


def settings(env_config: Any = None, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`SETTINGS` overridden by ``env_config``, ``extras`` and ``extras["extra_info"]`` (in that order)."""
    extras = dict(extras or {})
    out = dict(SETTINGS)
    for layer in (_as_dict(env_config), extras, _as_dict(extras.get("extra_info"))):
        out.update({k: v for k, v in layer.items() if k in SETTINGS and v is not None})
    if not out["task"]:
        raise ValueError("the agentrm SkyRL env needs a task: set extras['task'] (e.g. 'Maze') in the dataset row")
    if out["reward"] not in REWARDS:
        raise ValueError(f"reward {out['reward']!r} is not one of {', '.join(REWARDS)}")
    if out["reward"] in ("rm", "rm-only") and out["rm"] is None:
        raise ValueError(f"reward {out['reward']!r} needs an RM spec: set 'rm' (an RM or run directory, a URL, "
                         f"python:module:attr)")
    return out


class TurnRewarder:
    """Per-turn rewards of one episode under a reward name of :data:`REWARDS` (framework-free).

    Call :meth:`start` with the first state and info, then :meth:`step` after every env step with the new
    state, its info and whether the episode ends on that turn. ``rm`` is a reward model object (or a spec,
    loaded once per process) for ``"rm"`` / ``"rm-only"``.
    """

    def __init__(self, reward: str = "progress", rm: Any = None, rm_coef: float = 1.0, gamma: float = 1.0,
                 heuristic_scale: float = 0.05):
        if reward not in REWARDS:
            raise ValueError(f"reward {reward!r} is not one of {', '.join(REWARDS)}")
        self.reward = reward
        self.coef = float(rm_coef)
        self.gamma = float(gamma)
        self.potential: Any = None
        if reward in ("rm", "rm-only"):
            if rm is None:
                raise ValueError(f"reward {reward!r} needs an RM")
            self.potential = _cached_rm(str(rm)) if isinstance(rm, str) else rm
        elif reward == "heuristic":
            from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel

            self.potential = FewerRepeatsRewardModel(scale=heuristic_scale)
        self.value = 0.0
        self.progress = 0.0
        self.success = False

    def _v(self, state: Any) -> float:
        import numpy as np

        return float(np.asarray(self.potential.score([state]), dtype=np.float64).reshape(-1)[0])

    def start(self, state: Any, info: Mapping[str, Any]) -> None:
        self.progress = float(info.get("progress", 0.0))
        self.success = bool(info.get("success", False))
        self.value = self._v(state) if self.potential is not None else 0.0

    def step(self, state: Any, info: Mapping[str, Any], done: bool) -> dict[str, float]:
        """``{"reward", "env_progress_delta", "shaping", "rm_value"}`` of the turn that led to ``state``."""
        progress = float(info.get("progress", 0.0))
        success = bool(info.get("success", False))
        delta, solved = progress - self.progress, success and not self.success
        self.progress, self.success = progress, success
        shaping, value = 0.0, self.value
        if self.potential is not None:
            value = self._v(state)
            shaping = self.coef * (self.gamma * value - self.value)
            self.value = value
        outcome = progress if done else 0.0
        reward = {"progress": delta, "success": float(solved), "outcome": outcome, "rm": outcome + shaping,
                  "rm-only": shaping, "heuristic": outcome + shaping}[self.reward]
        return {"reward": reward, "env_progress_delta": delta, "shaping": shaping, "rm_value": value}


def dataset_rows(task: str, split: str = "train", task_ids: list[str] | None = None, reward: str = "progress",
                 rm: str | None = None, with_example: bool = True, **extra: Any) -> list[dict[str, Any]]:
    """The rows of a SkyRL dataset for ``task`` (one per task id): ``prompt`` (the project's chat for the
    task's first state), ``env_class`` ``"agentrm"`` and the settings, ready for ``pandas.DataFrame(rows)
    .to_parquet``. ``extra`` adds settings of :data:`SETTINGS` (``rm_coef``, ``gamma`` ...)."""
    from agentrm_gym.agents.prompts import PromptBuilder
    from agentrm_gym.agents.runner import initial_state
    from agentrm_gym.registry import make

    unknown = set(extra) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    builder = PromptBuilder(with_example=with_example)
    env = make(task, split=split)
    rows = []
    try:
        for task_id in task_ids if task_ids is not None else env.unwrapped.task_ids(split):
            obs, info = env.reset(options={"task_id": task_id})
            rows.append({"prompt": builder.messages(initial_state(env, obs, info)), "env_class": ENV_CLASS,
                         "task": task, "task_id": str(task_id), "split": split, "reward": reward, "rm": rm,
                         "with_example": with_example, **extra})
    finally:
        env.close()
    return rows


def _build_env_class() -> type:
    """The ``BaseTextEnv`` subclass, made on first use so that importing this module needs no skyrl_gym."""
    require_skyrl_gym()
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

    class AgentRMTextEnv(BaseTextEnv):
        """An agentrm task as a SkyRL text env (see :mod:`agentrm_gym.rl.skyrl`).

        Args:
            env_config: defaults of :data:`SETTINGS` (SkyRL passes ``skyrl_gym.agentrm`` of its config).
            extras: the dataset row (``task``, ``task_id``, ``reward``, ``rm`` ...) plus SkyRL's ``max_turns``.
        """

        def __init__(self, env_config: Any = None, extras: Mapping[str, Any] | None = None):
            super().__init__()
            from agentrm_gym.agents.prompts import PromptBuilder
            from agentrm_gym.agents.runner import max_episode_steps
            from agentrm_gym.registry import make

            self.settings = settings(env_config, extras)
            s = self.settings
            self.env = make(s["task"], split=s["split"])
            self.max_turns = int(s["max_turns"] or max_episode_steps(self.env))
            self.rewarder = TurnRewarder(s["reward"], s["rm"], s["rm_coef"], s["gamma"], s["heuristic_scale"])
            self.builder = PromptBuilder(with_example=bool(s["with_example"]))
            self.state: Any = None
            self.info: dict[str, Any] = {}
            self.invalid_actions = 0
            self.episode_return = 0.0

        def init(self, prompt: list[dict[str, str]] | None = None) -> tuple[list[dict[str, str]], dict[str, Any]]:
            """Reset the task and return the first chat (the project's prompt; a leading system message of
            ``prompt`` is kept) and ``{"task", "task_id", "goal"}``."""
            from agentrm_gym.agents.runner import initial_state

            s = self.settings
            options = {"task_id": str(s["task_id"])} if s["task_id"] is not None else None
            obs, info = self.env.reset(seed=s["seed"], options=options)
            self.state, self.info = initial_state(self.env, obs, info), dict(info)
            self.turns, self.invalid_actions, self.episode_return = 0, 0, 0.0
            self.rewarder.start(self.state, info)
            chat = self.builder.messages(self.state)
            system = [m for m in (prompt or [])[:1] if m.get("role") == "system"]
            return [*system, *chat], {"task": self.state.task, "task_id": self.state.task_id,
                                      "goal": self.state.goal}

        def step(self, action: str) -> Any:
            """Play the turn ``action`` (the LLM's output, "Thought: ...\\nAction: ..."); its reward per
            ``reward``; the observation as the next user message unless the episode ended."""
            from agentrm_gym.agents.parsing import parse_output
            from agentrm_gym.agents.runner import step_record

            if self.state is None:
                raise RuntimeError("AgentRMTextEnv: call init() before step()")
            self.turns += 1
            thought, command = parse_output(action)
            obs, reward, terminated, truncated, info = self.env.step(command)
            self.state = self.state.extend(step_record(thought, command, obs, reward, info))
            self.info = dict(info)
            self.invalid_actions += not info.get("action_valid", True)
            done = bool(terminated or truncated) or self.turns >= self.max_turns
            parts = self.rewarder.step(self.state, info, done)
            self.episode_return += parts["reward"]
            metadata = {**parts, "action": command, "progress": float(info.get("progress", 0.0)),
                        "success": bool(info.get("success", False)),
                        "action_valid": bool(info.get("action_valid", True)), "env_reward": float(reward)}
            observations = [] if done else [{"role": "user", "content": f"Observation: {obs.strip()}"}]
            return BaseTextEnvStepOutput(observations=observations, reward=float(parts["reward"]), done=done,
                                         metadata=metadata, postprocessed_action=None)

        def get_metrics(self) -> dict[str, Any]:
            return {"success": float(bool(self.info.get("success", False))),
                    "progress": float(self.info.get("progress", 0.0)), "turns": self.turns,
                    "invalid_actions": self.invalid_actions, "return": self.episode_return}

        def close(self) -> None:
            self.env.close()

    AgentRMTextEnv.__module__ = __name__
    AgentRMTextEnv.__qualname__ = "AgentRMTextEnv"  # pickles by name through the module's __getattr__
    return AgentRMTextEnv


@functools.lru_cache(maxsize=1)
def _env_class() -> type:
    return _build_env_class()


def register_skyrl_env(env_class: str = ENV_CLASS, **kwargs: Any) -> str:
    """Register :class:`AgentRMTextEnv` with skyrl_gym's registry under ``env_class`` (again: a no-op);
    ``kwargs`` become constructor defaults (e.g. ``env_config={"reward": "rm", "rm": "runs/demo"}``)."""
    skyrl_gym = require_skyrl_gym()
    if env_class not in skyrl_gym.registry:
        skyrl_gym.register(id=env_class, entry_point=f"{__name__}:AgentRMTextEnv", kwargs=kwargs)
    return env_class


def __getattr__(name: str) -> Any:
    if name == "AgentRMTextEnv":
        return _env_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if is_available("skyrl_gym"):  # importing the adapter registers it, as SkyRL's own env modules do
    register_skyrl_env()
