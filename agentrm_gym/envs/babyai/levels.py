"""The BabyAI levels AgentBoard plays: its level numbering, the test levels and seeds, minigrid's ids.

AgentBoard names minigrid's BabyAI levels by number (:data:`ALL_LEVELS`) and tests on 28 of them with
four seeds each; the train split uses the same levels with seeds far from the test seeds.
:func:`minigrid_id` maps a level name to the id minigrid registered it under.
"""

from __future__ import annotations

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI ids)

from agentrm_gym.core import UnknownTask

#: AgentBoard's ``all_levels`` numbering of the BabyAI levels it plays.
ALL_LEVELS: dict[int, str] = {
    1: "GoToRedBallGrey", 2: "GoToRedBall", 3: "GoToRedBallNoDists", 4: "GoToObjS6", 5: "GoToLocalS8N7",
    6: "GoToObjMazeS7", 7: "GoToImpUnlock", 8: "GoToSeqS5R2", 9: "GoToRedBlueBall", 10: "GoToDoor",
    11: "GoToObjDoor", 12: "Open", 13: "OpenRedDoor", 14: "OpenDoorLoc", 15: "OpenRedBlueDoorsDebug",
    16: "OpenDoorsOrderN4Debug", 17: "Pickup", 18: "UnblockPickup", 19: "PickupLoc", 20: "PickupDistDebug",
    21: "PickupAbove", 22: "PutNextLocalS6N4", 23: "PutNextS7N4Carrying", 24: "Unlock", 25: "UnlockLocalDist",
    26: "KeyInBox", 27: "UnlockPickupDist", 28: "BlockedUnlockPickup", 29: "UnlockToUnlock",
    30: "ActionObjDoor", 31: "FindObjS7", 32: "KeyCorridorS6R3", 33: "OneRoomS20", 34: "MoveTwoAcrossS8N9",
    35: "SynthS5R2", 36: "SynthLoc", 37: "SynthSeq", 38: "MiniBossLevel", 39: "BossLevel",
    40: "BossLevelNoUnlock",
}
#: AgentBoard's BabyAI test levels (arXiv 2401.13178) and seeds: 28 x 4 = 112 episodes.
TEST_LEVEL_IDS = (*range(1, 22), 24, 25, 27, 28, 29, 31, 32)
TEST_SEEDS = (1234, 1235, 1236, 1237)
#: Train seeds start here, far from the test seeds.
TRAIN_SEED_BASE = 100_000


def minigrid_id(level: str) -> str:
    """The registered minigrid id of an AgentBoard level name (minigrid 3 bumped a few ids to ``-v1``)."""
    for version in ("v0", "v1"):
        env_id = f"BabyAI-{level}-{version}"
        if env_id in gym.registry:
            return env_id
    raise UnknownTask(f"BabyAI: minigrid has no level {level!r}")
