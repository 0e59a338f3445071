"""ScienceWorld's text: how commands are compared and sent, and observations put in canonical order.

:func:`normalize_command` is the form commands are compared in; :func:`send_command` sends one and
answers an ambiguity prompt with its first reading, as AgentBoard does; :func:`canonical_observation`
sorts the object listings the simulator prints in hash-set order, so that an observation is a function
of the state (snapshots, replays and seeded runs give identical text).
"""

from __future__ import annotations

import re

from agentrm_gym.envs.sciworld.jvm import ScienceWorldSimulator

NO_MATCH = "No known action matches that input."
AMBIGUOUS = "Ambiguous request"


def normalize_command(command: str) -> str:
    """Lower case, single spaces, no trailing full stop: how commands are compared."""
    return re.sub(r"\s+", " ", command.strip().lower()).rstrip(".").strip()


def _split_top_level(text: str) -> list[str]:
    """Split at ", " outside parentheses."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and text[i + 1: i + 2] == " ":
            items.append(text[start:i])
            start = i + 2
    items.append(text[start:])
    return items


def _sorted_list(text: str) -> str:
    """Sort a ", "-separated listing (recursively inside "(containing ...)") ."""
    out, i = [], 0
    while i < len(text):
        j = text.find("(containing ", i)
        if j < 0:
            out.append(text[i:])
            break
        depth, k = 0, j
        for k in range(j, len(text)):
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            if depth == 0:
                break
        inner = text[j + len("(containing "): k]
        out.append(text[i:j] + "(containing " + _sorted_list(inner) + ")")
        i = k + 1
    joined = "".join(out)
    items = _split_top_level(joined)
    return ", ".join(sorted(items)) if len(items) > 1 else joined


def canonical_observation(text: str) -> str:
    """ScienceWorld's text with its object listings in sorted order.

    The simulator lists the contents of rooms and containers in hash-set order, which changes between
    loads of the same variation; sorting the listings makes observations a function of the state, so that
    snapshot/restore (a reload and replay) and seeded runs give identical text.
    """
    lines = text.split("\n")
    for n, line in enumerate(lines):
        for marker in (" is: ", "you see: "):
            at = line.find(marker)
            if at >= 0:
                head, body = line[: at + len(marker)], line[at + len(marker):]
                tail = "." if body.endswith(".") else ""
                lines[n] = head + _sorted_list(body[: len(body) - len(tail)]) + tail
                break
        else:
            if "(containing " in line:
                lines[n] = _sorted_list(line) if not line.startswith("\t") else "\t" + _sorted_list(line[1:])
    out: list[str] = []
    block: list[str] = []
    for line in lines + [""]:
        if line.startswith("\t"):
            block.append(line)
            continue
        out.extend(sorted(block))
        block = []
        out.append(line)
    return "\n".join(out[:-1])


def send_command(sim: ScienceWorldSimulator, command: str) -> tuple[str, float, bool]:
    """Send one command, answering an ambiguity prompt with its first reading (``0``), as AgentBoard does.

    Returns:
        ``(text, score, completed)``: the simulator's raw answer, its score / 100 and whether it ended the task.
    """
    text = sim.call(lambda b: b.server.step(command), command)
    if text.startswith(AMBIGUOUS):
        text = sim.call(lambda b: b.server.step("0"), f"{command} (ambiguity: 0)")
    score, completed = sim.call(lambda b: (b.server.getScore(), b.server.getCompleted()), "getScore")
    return text, round(100 * float(score)) / 100, bool(completed)
