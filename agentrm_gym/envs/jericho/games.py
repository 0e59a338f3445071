"""The Jericho task's default games: TextWorld challenge games compiled to Z-machine (.z8) files.

Each game is a pure function of its id: ``test-<i>`` and ``train-<i>`` pick a TextWorld challenge
(treasure hunter, coin collector, simple, cooking) and a small difficulty by cycling through
:data:`TEST_RECIPES` / :data:`TRAIN_RECIPES`, and a seed derived from the id. A game whose walkthrough
is longer than :data:`MAX_WALKTHROUGH` steps is regenerated with the next seed, so every default game
is solvable well within the task's 30 steps.

Games are compiled with TextWorld's bundled Inform 7 toolchain (offline, a few seconds each) into
``cache_dir("jericho", "games")`` as ``<id>.z8`` + ``<id>.json`` (TextWorld's game description, used
for goals, admissible commands and progress). A build writes into a temporary folder and renames the
files into place under a file lock, so concurrent processes never see half-written games.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrm_gym.files import cache_dir

#: Longest walkthrough a default game may have (the task allows 30 steps).
MAX_WALKTHROUGH = 24
#: Bumped when the recipes change, so stale caches are not reused.
GAMES_VERSION = 1


@dataclass(frozen=True)
class GameRecipe:
    """A TextWorld challenge and its settings (as ``tw-make <challenge>`` takes them)."""

    challenge: str
    settings: tuple[tuple[str, Any], ...]

    def describe(self) -> str:
        return self.challenge + "(" + ", ".join(f"{k}={v}" for k, v in self.settings) + ")"


def _recipe(challenge: str, **settings: Any) -> GameRecipe:
    return GameRecipe(challenge, tuple(sorted(settings.items())))


#: Test games cycle through these (20 games: each recipe 2-3 times with different seeds).
TEST_RECIPES: tuple[GameRecipe, ...] = (
    _recipe("tw-treasure_hunter", level=3),
    _recipe("tw-coin_collector", level=5),
    _recipe("tw-simple", rewards="dense", goal="detailed", test=True),
    _recipe("tw-cooking", recipe=1, take=1, go=1, open=True, split="test", recipe_seed=0),
    _recipe("tw-treasure_hunter", level=14),
    _recipe("tw-coin_collector", level=108),
    _recipe("tw-simple", rewards="balanced", goal="brief", test=True),
    _recipe("tw-cooking", recipe=2, take=1, go=6, open=True, cut=True, split="test", recipe_seed=0),
)

#: Train games cycle through these (a wider range of difficulties).
TRAIN_RECIPES: tuple[GameRecipe, ...] = (
    _recipe("tw-treasure_hunter", level=1),
    _recipe("tw-coin_collector", level=3),
    _recipe("tw-simple", rewards="dense", goal="detailed", test=False),
    _recipe("tw-cooking", recipe=1, take=1, go=1, open=True, split="train", recipe_seed=0),
    _recipe("tw-treasure_hunter", level=6),
    _recipe("tw-coin_collector", level=7),
    _recipe("tw-simple", rewards="balanced", goal="detailed", test=False),
    _recipe("tw-cooking", recipe=1, take=1, go=6, open=True, cook=True, split="train", recipe_seed=0),
    _recipe("tw-treasure_hunter", level=12),
    _recipe("tw-coin_collector", level=105),
    _recipe("tw-simple", rewards="sparse", goal="brief", test=False),
    _recipe("tw-cooking", recipe=2, take=2, go=1, open=True, cut=True, split="train", recipe_seed=0),
    _recipe("tw-treasure_hunter", level=16),
    _recipe("tw-coin_collector", level=10),
    _recipe("tw-cooking", recipe=1, take=1, go=6, open=True, cook=True, cut=True, split="train", recipe_seed=0),
)

NUM_TEST = 20


def parse_game_id(game_id: str) -> tuple[str, int] | None:
    """``"test-3"`` -> ``("test", 3)``; ``None`` for anything else."""
    split, sep, index = game_id.partition("-")
    if sep and split in ("train", "test") and index.isdigit() and str(int(index)) == index:
        return split, int(index)
    return None


def recipe_for(game_id: str) -> GameRecipe:
    """The challenge and settings of a default game id."""
    parsed = parse_game_id(game_id)
    if parsed is None:
        raise ValueError(f"not a default game id: {game_id!r}")
    split, index = parsed
    recipes = TEST_RECIPES if split == "test" else TRAIN_RECIPES
    return recipes[index % len(recipes)]


def base_seed(game_id: str) -> int:
    """A stable seed per game id (train and test seeds never collide: the id is hashed)."""
    digest = hashlib.sha256(f"agentrm-jericho-v{GAMES_VERSION}:{game_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


def games_dir() -> Path:
    """Where the compiled default games live."""
    return cache_dir("jericho", f"games-v{GAMES_VERSION}")


def game_path(game_id: str) -> Path:
    """The ``.z8`` path of a default game (it may not be built yet)."""
    return games_dir() / f"{game_id}.z8"


def is_built(game_id: str) -> bool:
    path = game_path(game_id)
    return path.exists() and path.with_suffix(".json").exists()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _make_game(recipe: GameRecipe, seed: int) -> Any:
    from textworld.challenges import CHALLENGES
    from textworld.generator.game import GameOptions

    options = GameOptions()
    options.seeds = seed
    _, make, _ = CHALLENGES[recipe.challenge]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(dict(recipe.settings), options)


def build_game(game_id: str) -> Path:
    """Generate and compile one default game (if not cached); returns its ``.z8`` path."""
    target = game_path(game_id)
    if is_built(game_id):
        return target
    recipe = recipe_for(game_id)
    with _locked(games_dir() / f".{game_id}.lock"):
        if is_built(game_id):  # another process built it while we waited
            return target
        from textworld.generator import compile_game
        from textworld.generator.game import GameOptions

        seed = base_seed(game_id)
        for attempt in range(50):
            game = _make_game(recipe, seed + attempt)
            walkthrough = game.metadata.get("walkthrough") or []
            if 0 < len(walkthrough) <= MAX_WALKTHROUGH:
                break
        else:
            raise RuntimeError(f"Jericho: no game of {recipe.describe()} with a walkthrough of "
                               f"<= {MAX_WALKTHROUGH} steps in 50 seeds")
        game.metadata["agentrm_id"] = game_id
        game.metadata["agentrm_recipe"] = recipe.describe()
        tmp = Path(tempfile.mkdtemp(dir=games_dir(), prefix=f".{game_id}-"))
        try:
            options = GameOptions()
            options.path = str(tmp / f"{game_id}.z8")
            options.force_recompile = True
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiled = Path(compile_game(game, options))
            os.replace(compiled.with_suffix(".json"), target.with_suffix(".json"))
            os.replace(compiled, target)  # the .z8 last: its presence (with the .json) marks a finished build
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_games(game_ids: list[str], desc: str = "Generating Jericho games") -> list[Path]:
    """Build every missing game of ``game_ids`` (with a progress bar); returns their paths."""
    missing = [g for g in game_ids if not is_built(g)]
    if missing:
        from tqdm.auto import tqdm

        for game_id in tqdm(missing, desc=desc, unit="game"):
            build_game(game_id)
    return [game_path(g) for g in game_ids]
