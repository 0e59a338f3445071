"""One prompt builder for every task (ETO/AgentRM style) and the ShareGPT converter for SFT data.

A prompt is a list of chat messages::

    user:      <the env's instruction: what the env is, its action grammar>
    assistant: OK
    user:      [START OF THE EXAMPLE]\\nTask: <goal>\\nObservation: <first observation>
    assistant: Thought: ...\\nAction: ...            (the one-shot example, played by the task's oracle
    user:      Observation: ...                      on a train task, cached per task)
    ...
    user:      Observation: ...\\n[END OF THE EXAMPLE]\\n\\nNow it is your turn.\\nTask: <goal>\\n
               Observation: <first observation>
    assistant: Thought: ...\\nAction: ...            (the episode so far)
    user:      Observation: ...

The model's next message is the answer. With a tokenizer that has a chat template, the messages go
through ``apply_chat_template``; otherwise :func:`render_plain` writes this documented format::

    ### User:\\n<content>\\n\\n### Assistant:\\n<content>\\n\\n ... ### Assistant:\\n

Long episodes are cut in the middle to fit a budget: the instruction, the example and the episode's
start stay, the oldest turns go first, and a note says how many were left out; the example goes before
the latest turn does. With ``cut_step=k`` turns are left out ``k`` at a time, so a cut prompt keeps its
start for about ``k`` steps and each prompt is the previous one plus a turn (the KV sampler then resumes
it instead of encoding it again).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrm_gym.agents.parsing import format_turn
from agentrm_gym.files import write_json_atomic
from agentrm_gym.trajectory import AgentState, Trajectory

START_EXAMPLE = "[START OF THE EXAMPLE]"
END_EXAMPLE = "[END OF THE EXAMPLE]"
YOUR_TURN = "Now it is your turn."
#: Strings at which generation stops: the next turn of the plain format, or a hallucinated observation.
STOP_STRINGS = ("\n### ", "\nObservation:")
#: The plain chat format as a Jinja chat template (given to the tokenizers we train; eos ends a turn).
PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '### ' + ('User' if m['role'] == 'user' else ('Assistant' if m['role'] == "
    "'assistant' else 'System')) + ':\n' + m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}"
    "{% endif %}{{ '\n\n' }}{% endfor %}{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)

Message = dict[str, str]

_EXAMPLES: dict[tuple[str, int, int], Trajectory] = {}
_EXAMPLES_LOCK = threading.Lock()


def render_plain(messages: Sequence[Message], add_generation_prompt: bool = True, eos: str = "") -> str:
    """The documented plain format (used when a tokenizer has no chat template)."""
    parts = []
    for m in messages:
        role = {"user": "User", "assistant": "Assistant"}.get(m["role"], "System")
        end = eos if m["role"] == "assistant" else ""
        parts.append(f"### {role}:\n{m['content']}{end}\n\n")
    if add_generation_prompt:
        parts.append("### Assistant:\n")
    return "".join(parts)


def render(messages: Sequence[Message], tokenizer: Any = None, add_generation_prompt: bool = True) -> str:
    """Messages as one prompt string: the tokenizer's chat template when it has one, else plain."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    return render_plain(messages, add_generation_prompt)


def task_message(goal: str, observation: str) -> str:
    """The user message that opens an episode."""
    return f"Task: {goal.strip()}\nObservation: {observation.strip()}"


def episode_messages(state: AgentState | Trajectory) -> list[Message]:
    """The turns after the opening message: assistant actions and user observations, alternating."""
    out: list[Message] = []
    for s in state.steps:
        out.append({"role": "assistant", "content": format_turn(s.thought, s.action)})
        out.append({"role": "user", "content": f"Observation: {s.observation.strip()}"})
    return out


def oracle_example(task: str, max_steps: int = 12, candidates: int = 8, perturbation: int = 0) -> Trajectory | None:
    """The one-shot example of ``task``: the oracle on a train task (cached in memory and on disk).

    The first of the first ``candidates`` train tasks that the oracle solves within ``max_steps`` is used
    (else the first one, cut at ``max_steps``). Returns ``None`` when the task's env is not available.
    With ``perturbation`` (1..4, :mod:`agentrm_gym.perturbation`) the example is played in that variant, so
    it speaks its grammar and goals; level 4 changes the example itself: the train tasks after those
    ``candidates`` (another task, another oracle trajectory).
    """
    key = (task, max_steps, perturbation)
    with _EXAMPLES_LOCK:
        if key in _EXAMPLES:
            return _EXAMPLES[key]
        from agentrm_gym.files import cache_dir

        suffix = f"-p{perturbation}" if perturbation else ""
        path = os.path.join(cache_dir("prompts"), f"{task}-example-{max_steps}{suffix}.json")
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    _EXAMPLES[key] = Trajectory.from_dict(json.load(f))
                return _EXAMPLES[key]
            except (OSError, ValueError, TypeError):
                pass  # a damaged cache file is rebuilt below
        example = _build_oracle_example(task, max_steps, candidates, perturbation)
        if example is None:
            return None
        write_json_atomic(path, example.to_dict(), indent=None)
        _EXAMPLES[key] = example
        return example


def _build_oracle_example(task: str, max_steps: int, candidates: int, perturbation: int = 0) -> Trajectory | None:
    from agentrm_gym.agents.runner import oracle_trajectory
    from agentrm_gym.core import AgentRMGymError
    from agentrm_gym.perturbation import changes_example
    from agentrm_gym.registry import make

    try:
        env = make(task, split="train", **({"perturbation": perturbation} if perturbation else {}))
    except (AgentRMGymError, ImportError):
        return None
    try:
        first: Trajectory | None = None
        ids = env.unwrapped.task_ids("train")
        window = ids[candidates: 2 * candidates] if changes_example(perturbation) else []
        for task_id in window or ids[:candidates]:
            traj = oracle_trajectory(env, task_id, seed=0, max_steps=max_steps)
            if traj.success:
                return traj
            first = first or traj
        return first
    finally:
        env.close()


@dataclass
class PromptBuilder:
    """Builds the chat messages of a state (see the module docstring for the layout).

    Attributes:
        with_example: include the task's one-shot oracle example.
        max_example_steps: longest example (in turns).
        budget: the most ``count(render(messages))`` may be (tokens or characters); ``None``: no cut.
        count: how a rendered prompt is measured (``len`` = characters; pass a token counter for tokens).
        examples: explicit examples by task name (instead of the oracle's), e.g. for tests.
        cut_step: turns are left out in multiples of this many (``1``: as few as fit the budget).
        perturbation: the env variant the prompts are for (``agentrm_gym.perturbation``, the env's
            ``info["perturbation"]``): the example is played in it (level 4: another train task's).
    """

    with_example: bool = True
    max_example_steps: int = 12
    budget: int | None = None
    count: Callable[[str], int] = len
    examples: dict[str, Trajectory | None] = field(default_factory=dict)
    cut_step: int = 1
    perturbation: int = 0

    def __post_init__(self) -> None:
        if self.cut_step < 1:
            raise ValueError(f"cut_step must be >= 1, got {self.cut_step}")

    def example(self, task: str) -> Trajectory | None:
        if not self.with_example:
            return None
        if task not in self.examples:
            self.examples[task] = oracle_example(task, self.max_example_steps, perturbation=self.perturbation)
        return self.examples[task]

    def header(self, state: AgentState | Trajectory) -> list[Message]:
        """Instruction, ``OK`` and the example, ending with an assistant turn or the instruction."""
        instruction = state.instruction.strip() or f"You are an agent acting in the {state.task} environment."
        msgs: list[Message] = [{"role": "user", "content": instruction}, {"role": "assistant", "content": "OK"}]
        ex = self.example(state.task)
        if ex is not None:
            body = [{"role": "user", "content": f"{START_EXAMPLE}\n{task_message(ex.goal, ex.observation)}"}]
            body += episode_messages(ex)
            if body[-1]["role"] == "user":
                body[-1] = {"role": "user", "content": body[-1]["content"] + f"\n{END_EXAMPLE}"}
            else:
                body.append({"role": "user", "content": END_EXAMPLE})
            msgs += body
        return msgs

    def messages(self, state: AgentState | Trajectory, budget: int | None = None,
                 render_fn: Callable[[Sequence[Message]], str] | None = None) -> list[Message]:
        """The prompt messages for ``state`` (ends with a user message), cut to ``budget`` if needed."""
        budget = self.budget if budget is None else budget
        head = self.header(state)
        opening = task_message(state.goal, state.observation)
        turns = episode_messages(state)

        def assemble(h: list[Message], dropped: int, kept: list[Message]) -> list[Message]:
            start = opening if dropped == 0 else f"{opening}\n[... {dropped} earlier turns omitted ...]"
            if len(h) > 2:  # the example's last user message and the episode start share one message
                first = {"role": "user", "content": f"{h[-1]['content']}\n\n{YOUR_TURN}\n{start}"}
                return [*h[:-1], first, *kept]
            return [*h, {"role": "user", "content": start}, *kept]

        msgs = assemble(head, 0, turns)
        if budget is None:
            return msgs
        measure = render_fn or render_plain
        n_pairs = len(turns) // 2
        # first drop old turns, then the example (the latest turn matters more), then every turn
        tries = [(h, keep) for h in (head, head[:2]) for keep in range(n_pairs, 0, -1)
                 if (n_pairs - keep) % self.cut_step == 0]
        for h, keep in [*tries, (head, 0), (head[:2], 0)]:
            msgs = assemble(h, n_pairs - keep, turns[len(turns) - 2 * keep:] if keep else [])
            if self.count(measure(msgs)) <= budget:
                return msgs
        return msgs

    def prompt(self, state: AgentState | Trajectory, tokenizer: Any = None) -> str:
        """The rendered prompt string of ``state`` (chat template or plain format)."""
        fn = (lambda m: render(m, tokenizer)) if tokenizer is not None else None
        return render(self.messages(state, render_fn=fn), tokenizer)


def to_sharegpt(trajectory: Trajectory, builder: PromptBuilder | None = None,
                record_id: str | None = None) -> dict[str, Any]:
    """An episode as an ETO/ShareGPT SFT record ``{"id", "conversations": [{"from", "value"}]}``.

    The conversation is exactly the prompt the policy sees (same builder), without a cut, ending with the
    last assistant turn ("Thought: ...\\nAction: ...").
    """
    builder = builder or PromptBuilder()
    msgs = through_last_turn(builder.messages(trajectory, budget=None))
    return messages_to_sharegpt(msgs, record_id or f"{trajectory.task}_{trajectory.task_id}")


def through_last_turn(msgs: Sequence[Message]) -> list[Message]:
    """The messages up to the last assistant turn (the observation after it dropped)."""
    end = len(msgs)
    while end and msgs[end - 1]["role"] != "assistant":
        end -= 1
    return list(msgs[:end])


def messages_to_sharegpt(msgs: Sequence[Message], record_id: str) -> dict[str, Any]:
    """Chat messages as an ETO/ShareGPT record ``{"id", "conversations": [{"from", "value"}]}``."""
    conv = [{"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]} for m in msgs]
    return {"id": record_id, "conversations": conv}


def sharegpt_to_messages(record: dict[str, Any]) -> list[Message]:
    """ShareGPT conversations back to chat messages."""
    return [{"role": "user" if c["from"] in ("human", "user") else "assistant", "content": c["value"]}
            for c in record["conversations"]]


class CompactPromptBuilder(PromptBuilder):
    """:class:`PromptBuilder` with a one-line instruction and no example (the pipeline's tiny policy).

    The layout is otherwise the ETO one (instruction, ``OK``, ``Task: ...\\nObservation: ...``, then
    alternating turns), so the SFT data stays in the ShareGPT format and a real model can be swapped in.
    Old turns are cut ``cut_step`` (4) at a time, so a cut prompt keeps its start for about four steps
    and the sampler resumes it from the previous step's KV cache.
    """

    def __init__(self, budget: int | None = None, count: Any = len, cut_step: int = 4):
        super().__init__(with_example=False, budget=budget, count=count, cut_step=cut_step)

    def header(self, state: AgentState | Trajectory) -> list[Message]:
        return [{"role": "user", "content": f"You are an agent in the {state.task} environment."},
                {"role": "assistant", "content": "OK"}]
