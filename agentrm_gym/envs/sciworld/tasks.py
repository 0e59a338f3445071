"""ScienceWorld's task table: variations per task, the 90 test episodes and AgentBoard's simplifications.

:data:`TASK_VARIATIONS` gives each task's train and test variation ids as scienceworld 1.2.3 reports
them; :data:`TEST_EPISODES` is the fixed test split, 90 (task, variation) episodes from the test
variations whose gold path finishes the task within the 30-step limit (the rule is in its comment).
:func:`simplifications_for` is the simplification string a task is loaded with.
"""

from __future__ import annotations

#: AgentBoard's simplifications (the spelling ``ScienceWorldEnv.load`` accepts).
SIMPLIFICATIONS = ("selfWateringFlowerPots", "openContainers", "openDoors", "noElectricalAction")
#: Tasks that need electrical actions: ``noElectricalAction`` is dropped for them (the simulator refuses it).
ELECTRICAL_MARKERS = ("power-component", "conductivity")

#: Per task: (number of train variations (ids 0..n-1), first test variation, last test variation), as
#: ``get_variations_train()`` / ``get_variations_test()`` report them for scienceworld 1.2.3.
TASK_VARIATIONS: dict[str, tuple[int, int, int]] = {}  # filled below from _VARIATION_TABLE

#: The 90 test episodes (17 of the 30 task types). Rule (deterministic, computed once with the simulator):
#: for each task, scan its test variations in ascending order, stopping at the third consecutive one
#: whose gold path (``load(..., generateGoldPath=True)`` under :data:`SIMPLIFICATIONS` in a JVM started
#: with :data:`JVM_OPTIONS`, replayed right after that load) does not reach score 100 within 30 steps; the
#: ones that do are eligible. Then visit the tasks round-robin in the simulator's task order, taking each
#: task's next eligible variation, until 90 are chosen. Tasks whose gold paths never fit in 30 steps (boil, freeze, melt, grow-plant,
#: grow-fruit, the inclined-plane and mendelian tasks, ...) cannot appear.
TEST_EPISODES: tuple[tuple[str, int], ...] = ()  # filled below from _TEST_TABLE

#: task:num_train:first_test:last_test, one task a line.
_VARIATION_TABLE = """
boil:14:21:29
change-the-state-of-matter-of:14:21:29
chemistry-mix:16:24:31
chemistry-mix-paint-secondary-color:18:27:35
chemistry-mix-paint-tertiary-color:18:27:35
find-animal:150:225:299
find-living-thing:150:225:299
find-non-living-thing:150:225:299
find-plant:150:225:299
freeze:14:21:29
grow-fruit:62:93:125
grow-plant:62:93:125
identify-life-stages-1:6:9:13
identify-life-stages-2:4:6:9
inclined-plane-determine-angle:84:126:167
inclined-plane-friction-named-surfaces:692:1038:1385
inclined-plane-friction-unnamed-surfaces:80:120:161
lifespan-longest-lived:62:93:124
lifespan-longest-lived-then-shortest-lived:62:93:124
lifespan-shortest-lived:62:93:124
measure-melting-point-known-substance:218:327:435
measure-melting-point-unknown-substance:150:225:299
melt:14:21:29
mendelian-genetics-known-plant:60:90:119
mendelian-genetics-unknown-plant:240:360:479
power-component:10:15:19
power-component-renewable-vs-nonrenewable-energy:10:15:19
test-conductivity:450:675:899
test-conductivity-of-unknown-substances:300:450:599
use-thermometer:270:405:539
"""
#: task:variations of the 90 test episodes (the output of the rule in TEST_EPISODES's comment).
_TEST_TABLE = """
chemistry-mix:24,25,26,29
chemistry-mix-paint-secondary-color:27,28,29,30,31,32
chemistry-mix-paint-tertiary-color:27,30,31,32,33,34
find-animal:225,226,227,228,229,230
find-living-thing:225,228,229,230,232,233
find-non-living-thing:225,226,227,228,229,230
find-plant:225,226,227,228,229,230
identify-life-stages-2:6,7,8,9
lifespan-longest-lived:93,94,95,96,97,98
lifespan-longest-lived-then-shortest-lived:93,94,95,96,97,98
lifespan-shortest-lived:93,94,95,96,97,98
measure-melting-point-known-substance:328
power-component:15,16,17,18,19
power-component-renewable-vs-nonrenewable-energy:15,16,17,18,19
test-conductivity:675,676,677,678,679,680
test-conductivity-of-unknown-substances:450,452,453,454,455,456
use-thermometer:405,406,407,408,409
"""


def _parse_tables() -> None:
    for line in _VARIATION_TABLE.split():
        task, n_train, first, last = line.split(":")
        TASK_VARIATIONS[task] = (int(n_train), int(first), int(last))
    episodes = []
    for line in _TEST_TABLE.split():
        task, vars_ = line.split(":")
        episodes.extend((task, int(v)) for v in vars_.split(","))
    globals()["TEST_EPISODES"] = tuple(episodes)


_parse_tables()


def simplifications_for(task: str, simplifications: tuple[str, ...] = SIMPLIFICATIONS) -> str:
    """The simplification string for ``task`` (without ``noElectricalAction`` for electrical tasks)."""
    electrical = any(m in task for m in ELECTRICAL_MARKERS)
    return ",".join(s for s in simplifications if not (electrical and s == "noElectricalAction"))


def format_task_id(task: str, variation: int) -> str:
    """``("boil", 12)`` -> ``"boil@12"``."""
    return f"{task}@{variation}"
