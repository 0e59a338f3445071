"""The cache of generated ALFWorld game files (``agentrm_gym.files.cache_dir("alfworld")``).

The test split is written in one go on first use (with a progress bar); train games are written one
by one when first played. Files are written to a temp name then renamed, so concurrent builders are safe.
Each game sits in a json_2.1.1-style folder ``<split>/<index>/game.tw-pddl``.
"""

from __future__ import annotations

from pathlib import Path

from agentrm_gym.files import cache_dir

CACHE_VERSION = "v1"


def root() -> Path:
    """The folder of the generated games."""
    return cache_dir("alfworld", CACHE_VERSION)


def _write(split: str, index: int, path: Path) -> None:
    from agentrm_gym.envs.alfworld.pddl_problem import game_json, write_game
    from agentrm_gym.envs.alfworld.scenes import scene_for

    write_game(path, game_json(scene_for(split, index), name=f"{split}_{index}"))


def build_test_split() -> Path:
    """Write every test game that is missing (fast: no translation); returns the split folder."""
    from tqdm.auto import tqdm

    from agentrm_gym.envs.alfworld.scenes import TEST_TYPE_COUNTS

    folder = root() / "test"
    n = sum(TEST_TYPE_COUNTS.values())
    missing = [i for i in range(n) if not (folder / f"{i:03d}" / "game.tw-pddl").exists()]
    for i in tqdm(missing, desc="ALFWorld: generating test games", disable=len(missing) < 10):
        _write("test", i, folder / f"{i:03d}" / "game.tw-pddl")
    return folder


def game_file(split: str, index: int) -> Path:
    """The game file of a generated task, built on first use."""
    if split == "test":
        path = root() / "test" / f"{index:03d}" / "game.tw-pddl"
        if not path.exists():
            build_test_split()
        return path
    path = root() / "train" / f"{index:04d}" / "game.tw-pddl"
    if not path.exists():
        _write(split, index, path)
    return path
