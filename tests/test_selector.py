"""The pooled RM's selector (issue 21): the heuristic first with the value breaking its ties, chosen against
the heuristic on held-out folds of training data only."""

from __future__ import annotations

import numpy as np
import pytest

from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.heuristic import repeated_actions
from agentrm_gym.rm.pooled import text_repeats
from agentrm_gym.rm.selector import choose_selector, gain_over_heuristic, heuristic_ties, room_over_heuristic
from agentrm_gym.trajectory import AgentState, Step


def _groups(n: int, size: int = 4) -> list[list[int]]:
    return [list(range(g * size, (g + 1) * size)) for g in range(n)]


def test_heuristic_ties_orders_by_repeats_then_by_value() -> None:
    values = np.array([5.0, -3.0, 0.1, 0.2, 100.0])
    repeats = np.array([1, 0, 0, 0, 2])
    order = np.argsort(-heuristic_ties(values, repeats, center=0.0, scale=1.0))
    assert list(order) == [3, 2, 1, 0, 4]  # fewer repeats always first; the value only within a count
    assert heuristic_ties(np.array([1e9]), np.array([0]), 0.0, 1.0)[0] < 1.0  # never reaches the next count


def test_gain_over_heuristic_shares_tied_picks() -> None:
    values = np.array([1.0, 0.0, 0.0, 0.0])
    repeats = np.zeros(4)  # the heuristic ties all four: its pick is worth their mean, 0.25
    gain = gain_over_heuristic(np.array([3.0, 2.0, 1.0, 0.0]), repeats, values, [[0, 1, 2, 3]])
    assert gain["mean"] == pytest.approx(0.75) and gain["groups"] == 1


def test_room_over_heuristic_splits_a_pick_into_breaking_ties_and_overruling() -> None:
    repeats = np.array([0, 0, 1, 2])
    values = np.array([0.2, 0.6, 1.0, 0.0])
    room = room_over_heuristic(np.array([0.0, 1.0, 0.5, 0.0]), repeats, values)  # breaks the tie the right way
    assert room["tied"] == 1 and room["heuristic"] == pytest.approx(0.4) and room["oracle"] == 1.0
    assert room["in_ties"] == pytest.approx(0.2) and room["outside"] == pytest.approx(0.4)
    assert room["from_ties"] == pytest.approx(0.2) and room["from_overruling"] == 0.0
    assert room["tie_pairs"] == 1 and room["tie_correct"] == 1
    assert room_over_heuristic([0, 0, 0, 0], list(repeats), list(values))["tie_correct"] == 0.5  # a tie counts half
    overrule = room_over_heuristic(np.array([0.0, 1.0, 1.0, 1.0]), repeats, values)  # three tops: one tied, two not
    assert overrule["from_ties"] == pytest.approx((0.6 - 0.4) / 3)
    assert overrule["from_overruling"] == pytest.approx(2 / 3 * (0.5 - 0.4))
    assert overrule["from_ties"] + overrule["from_overruling"] == pytest.approx(np.mean([0.6, 1.0, 0.0]) - 0.4)


def test_choose_selector_keeps_a_value_that_beats_the_heuristic_and_distrusts_noise() -> None:
    rng = np.random.default_rng(0)
    groups = _groups(60)
    n = 4 * len(groups)
    values = rng.uniform(size=n)
    repeats = rng.integers(0, 2, size=n)  # the heuristic knows nothing here
    sources = ["group"] * n
    group_of = [g for g, m in enumerate(groups) for _ in m]
    good = choose_selector(values + 0.01 * rng.normal(size=n), repeats, values, group_of, sources)
    assert good["chosen"] == "ridge" and good["ridge"]["ci"][0] > 0
    # the heuristic is right and the value is noise: its ties are the only place the value may act
    values = 1.0 - repeats + 0.1 * rng.uniform(size=n)
    noise = choose_selector(rng.normal(size=n), repeats, values, group_of, sources)
    assert noise["chosen"] == "heuristic-ties"
    assert noise["heuristic-ties"]["mean"] >= noise["ridge"]["mean"]
    assert choose_selector(values, repeats, values, group_of, sources, requested="ridge")["chosen"] == "ridge"
    with pytest.raises(ValueError, match="selector must be"):
        choose_selector(values, repeats, values, group_of, sources, requested="best")


@pytest.mark.parametrize("style", ["compact", "full"])
def test_text_repeats_reads_the_heuristic_off_the_rm_text(style: str) -> None:
    actions = ["go north", "take  key", "go north", "Take key", "open door", "go north"]
    state = AgentState(task="Maze", goal="reach the exit", observation="A room.", task_id="0",
                       steps=tuple(Step(action=a, observation=f"after {a}") for a in actions))
    assert text_repeats(RMFormat(style=style).text(state)) == repeated_actions(state) == 3


@pytest.mark.parametrize("style", ["compact", "full"])
def test_task_of_reads_the_task_off_the_header(style: str) -> None:
    fmt = RMFormat(style=style)

    def text(task: str) -> str:
        return fmt.text(AgentState(task=task, goal="find the key", observation="a room",
                                   steps=(Step("look", "a room"),)))

    assert fmt.task_of(text("WebShop"), ["ALFWorld", "WebShop"]) == "WebShop"
    # ToolQuery and ToolOperation share their allowed actions; their roles tell them apart
    assert fmt.task_of(text("ToolOperation"), ["ToolQuery"]) is None
    assert fmt.task_of(text("ToolQuery"), ["ToolOperation", "ToolQuery"]) == "ToolQuery"
    assert fmt.task_of(text("Maze"), ["WebShop"]) is None
    assert fmt.task_of("no header at all", ["WebShop"]) is None
    if style == "full":  # a task without a row in the task table has the generic header: it names no task
        assert fmt.task_of(text("MyOwnTask"), ["MyOwnTask"]) is None
    else:
        assert fmt.task_of(text("MyOwnTask"), ["MyOwnTask"]) == "MyOwnTask"
