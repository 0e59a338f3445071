"""The Jericho env: a Z-machine (``jericho.FrotzEnv``) plays the story; TextWorld's game logic tracks it.

Design. Jericho runs the compiled ``.z8`` story: it produces every observation and its
``get_state``/``set_state`` give exact, sub-millisecond snapshots. Jericho cannot list admissible
commands or read the score of TextWorld games (they are not in its supported-game table), so the env
also runs TextWorld's own state tracker beside it, as TextWorld's ``TWInform7`` wrapper does: at reset
the story is put in ``tw-trace-actions`` mode, after which Inform 7 prints a tag such as
``[taking the lampshade - succeeded]`` for each action that succeeds; the env strips those tags from the
observation and feeds them to a ``textworld.generator.game.GameProgression`` (built from the game's
``.json``), which keeps the world's facts and the quests' remaining winning policy. From it come the
admissible commands, the progress rate, success, and the oracle. A snapshot is Jericho's native state
plus a copy of the tracker (its action history is what gets pickled; see :class:`_TrackerState`).

A user's own story file (``story_file=...``, e.g. a game of the Jericho suite) is played by Jericho
alone, with the ``goal`` and ``subgoals`` the user gives.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask
from agentrm_gym.envs.jericho import games
from agentrm_gym.perturbation import Perturbation

NOT_A_VERB = "That's not a verb I recognise."
MAX_COMMAND_LENGTH = 200
#: Verbs the env never sends, as the first word of any clause of a command: they would restart,
#: save/restore, undo or quit the story behind the env's back (while the env's tracker and progress stay
#: where they were), write transcript/recording/save files into the current directory, or replay hidden
#: parser state. Commands starting with ``tw-`` (TextWorld's debug switches) are refused the same way.
META_VERBS = frozenset({
    "quit", "q", "restart", "restore", "save", "undo", "again", "g", "oops", "o", "script", "unscript",
    "transcript", "noscript", "notranscript", "record", "recording", "replay", "playback", "unrecord",
})
#: What the Inform and Infocom parsers read as the end of one command and the start of the next
#: (``look. restart``, ``look, quit``, ``look then save``); ``;``, ``!`` and ``?`` are split on too, to be safe.
_CLAUSE_SPLIT = re.compile(r"[.,;!?]|\bthen\b")
#: Responses of the Inform and Infocom parsers that mean a command was not understood or not applicable.
PARSER_FAILURES = (
    "not a verb i recognise", "not a verb i recognize", "i don't know the word", "you can't see any such thing",
    "i didn't understand", "i beg your pardon", "i only understood you as far as", "you can't use multiple",
    "there are none at all available", "you have to be more specific", "that's not something you can",
    "i don't understand", "you can't see that", "what do you want to", "you seem to want to talk",
    "there was no verb in that sentence", "i don't recognize", "that sentence isn't one i recognize",
)
_TAG = re.compile(r"\[[^\]\n]*\]\n?")
_BANNER_LINE = re.compile(r"^[\s$|\\/_<>]*$")
#: The Z-machine prompt line, which carries the status bar ("-= Kitchen =-0/1") after it.
_PROMPT_LINE = re.compile(r"\n?>[^\n]*$")
#: ``perturbation >= 1``: TextWorld's command grammar renamed (translated before the story reads it).
PERTURBATION = Perturbation(
    [("go {direction}", "walk {direction}"), ("take {obj} from {container}", "from {container} grab {obj}"),
     ("take {obj}", "grab {obj}"), ("drop {obj}", "discard {obj}"), ("put {obj} on {support}", "place {obj} onto {support}"),
     ("insert {obj} into {container}", "place {obj} inside {container}"), ("open {obj}", "pull open {obj}"),
     ("close {obj}", "push shut {obj}"), ("unlock {obj} with {key}", "unfasten {obj} using {key}"),
     ("lock {obj} with {key}", "fasten {obj} using {key}"), ("examine {obj}", "inspect {obj}"), ("look", "look around"),
     ("inventory", "check inventory"), ("eat {obj}", "consume {obj}"), ("drink {obj}", "sip {obj}"),
     ("slice {obj} with {tool}", "carve {obj} using {tool}"), ("dice {obj} with {tool}", "cube {obj} using {tool}"),
     ("chop {obj} with {tool}", "mince {obj} using {tool}"), ("cook {obj} with {heat}", "roast {obj} using {heat}"),
     ("prepare meal", "make the meal")],
    instruction_phrases=[(r"(?<=Useful commands: )(?P<commands>.*?)(?=, and for cooking games)", ""),
                         (r"slice/dice/chop X with knife, cook X with stove/oven/BBQ, prepare meal",
                          "carve/cube/mince X using knife, roast X using stove/oven/BBQ, make the meal")],
    goal_rules=[(r"You are hungry! Let's cook a delicious meal\. Check the cookbook in the kitchen for the recipe\. "
                 r"Once done, enjoy your meal!", "You feel hungry, so it is time to cook a tasty meal. The recipe is "
                 "in the cookbook in the kitchen. When the meal is ready, eat it!"),
                (r"Here is your task for today\.", "This is what you need to do today."),
                (r"\bFirst off, |\bFirst, |\bFirst thing I need you to do is to ", "To begin, ")],
    goal_frame="Your objective: {goal}",
)


def _normalise(command: str) -> str:
    return re.sub(r"\s+", " ", command.strip().lower()).rstrip(".").strip()


def _clauses(command: str) -> list[str]:
    """The commands a chained command line holds, as the interpreter splits it (empty clauses dropped)."""
    return [c.strip() for c in _CLAUSE_SPLIT.split(command) if c.strip()]


def _alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _clean_intro(text: str) -> str:
    """Drop TextWorld's ASCII-art banner from the first observation."""
    lines = text.split("\n")
    while lines and _BANNER_LINE.match(lines[0]):
        lines.pop(0)
    return "\n".join(lines).strip()


def _clean(text: str) -> str:
    """The story's answer without the trailing prompt/status line and surrounding blank lines."""
    return _PROMPT_LINE.sub("", text.rstrip()).strip()


def _strip_tags(text: str) -> tuple[list[str], str]:
    """The Inform 7 action tags that succeeded (TextWorld's convention) and the text without any tags."""
    events = []
    for tag in _TAG.findall(text):
        name = tag.strip()[1:-1]
        if " - succeeded" in name:
            name = name[: name.index(" - succeeded")]
            if "(" not in name and ")" not in name:  # a sub-rule, not an action
                events.append(name)
    return events, _TAG.sub("", text)


class _TrackerState:
    """A TextWorld ``GameProgression`` inside a snapshot.

    The tracker object is shared copy-on-write with the env (the env copies it before its next update),
    so snapshot and restore cost no copy. Pickling keeps only the game file and the applied actions
    (serialised); the tracker is rebuilt from them on first use after unpickling.
    """

    def __init__(self, game_file: str, progression: Any, history: list[dict]):
        self.game_file = game_file
        self._progression = progression
        self.history = list(history)

    def __deepcopy__(self, memo: dict) -> _TrackerState:
        return self  # immutable by convention: the env copies the tracker before mutating it

    def __getstate__(self) -> dict:
        return {"game_file": self.game_file, "history": self.history}

    def __setstate__(self, state: dict) -> None:
        self.game_file = state["game_file"]
        self.history = state["history"]
        self._progression = None

    def progression(self, game: Any) -> Any:
        """The tracker (rebuilt by replaying the actions if this state was unpickled); shared, never mutate."""
        if self._progression is None:
            from textworld.generator.game import GameProgression
            from textworld.logic import Action

            progression = GameProgression(game, track_quests=True)
            for action in self.history:
                progression.update(Action.deserialize(action))
            self._progression = progression
        return self._progression


class JerichoEnv(TextEnv):
    """You are playing a text-based adventure game; reach the goal by typing commands.

    ## Description
    Interactive fiction through Jericho's Z-machine (``jericho.FrotzEnv``). The default games are
    TextWorld challenge games (treasure hunter, coin collector, simple, cooking) compiled offline with
    TextWorld's bundled Inform 7 into ``.z8`` stories: 20 fixed test games (``test-0`` .. ``test-19``)
    and ``num_train`` train games (``train-<i>``), each deterministic per id (see
    :mod:`agentrm_gym.envs.jericho.games`). The test games are built (about 5 s each, once, cached on
    disk) when a test-split env is created; a train game is built the first time it is used. With
    ``story_file=`` the env plays any Z-machine story instead (a Jericho-suite ROM, or a game of your
    own) with the ``goal`` and ``subgoals`` given.

    ## Action Space
    Free text commands (``go north``, ``take lampshade``, ``open antique trunk``, ``unlock wooden door with
    old key``, ``examine cookbook``, ...). For the default games ``info["admissible_actions"]`` is
    TextWorld's list of admissible commands; a command is valid when it is admissible or when the story
    carries out an action for it (e.g. ``x lampshade``). Other text gets the story's own answer
    ("That's not a verb I recognise.", "You can't see any such thing.") with ``action_valid=False``;
    non-printable or over-long text, text with a backslash (dumb-frotz's own hot keys) and meta commands
    (save, restore, restart, quit, undo, script, record, replay, ...), also as a later clause of a chained
    command (``look. restart``, ``look, quit``, ``look then save``), are refused without reaching the story. For a ``story_file`` the admissible list is ``None`` (Jericho's
    action generator needs spaCy's English model, which is not available offline) and a command is
    invalid when the parser rejects it.

    ## Observation Space
    The story's text (TextWorld's banner and its debug tags removed).

    ## Rewards
    The increase of the progress rate. Default games: the fraction of the quest's winning policy
    (TextWorld's walkthrough, replanned by its tracker after a detour) already done:
    ``1 - len(remaining policy) / len(initial policy)``, 1 on winning. Story files: the fraction of
    ``subgoals`` (alphanumeric-normalised substrings) seen in the observations so far.

    ## Starting State
    The story's opening (its first room), in the state TextWorld compiled.

    ## Episode End
    Terminates when the quest is won (or all subgoals are seen), or when the story ends otherwise
    (e.g. a cooking game lost by burning the meal); truncated at 30 steps by ``max_episode_steps``.

    ## Info keys
    The TextEnv keys. ``expert_action()`` plays TextWorld's walkthrough while the agent follows it, and
    after a detour the first command of the tracker's replanned winning policy (``None`` when the game
    can no longer be won, and for story files).

    ## Arguments
    ``split`` ("train" or "test"), ``num_train`` (number of train games), ``story_file`` (path to a
    ``.z1``-``.z8`` story), ``goal`` (the instruction for a story file), ``subgoals`` (list of strings
    for a story file's progress), ``seed`` handling: Jericho's RNG is seeded with a fixed value per game.
    ``perturbation`` (0..4: renamed commands, e.g. ``walk north``, ``grab X``, and reworded objectives; see
    :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version (jericho 3.3, textworld 1.7).
    """

    task_name = "Jericho"
    invalid_action_message = NOT_A_VERB
    command_vocabulary = ("look", "inventory", "go north", "go south", "go east", "go west")

    def __init__(
        self,
        split: str = "train",
        render_mode: str | None = None,
        num_train: int = 200,
        story_file: str | Path | None = None,
        goal: str | None = None,
        subgoals: list[str] | tuple[str, ...] | None = None,
        perturbation: int = 0,
    ):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        from agentrm_gym.registry import require_extra

        require_extra("Jericho")
        if num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        self.num_train = num_train
        self.story_file = None if story_file is None else Path(story_file).expanduser().resolve()
        if self.story_file is not None and not self.story_file.is_file():
            raise FileNotFoundError(f"Jericho: story file {self.story_file} does not exist")
        if self.story_file is None and (goal is not None or subgoals is not None):
            raise ValueError("goal= and subgoals= apply to a story_file=; the default games bring their own")
        self.user_goal = goal
        self.subgoals = [str(s) for s in (subgoals or [])]
        self._subgoal_keys = [_alnum(s) for s in self.subgoals]
        self._frotz: Any = None
        self._frotz_file: Path | None = None
        # TextWorld tracking (default games)
        self._game: Any = None
        self._game_file = ""
        self._inform7: Any = None
        self._tracker: Any = None
        self._tracker_shared = False  # the tracker object is also held by a snapshot: copy before updating
        self._history: list[dict] = []
        self._initial_policy = 1
        self._walkthrough: list[str] = []
        self._on_walkthrough = True
        self._done_commands: list[str] = []
        self._won = False
        self._lost = False
        self._admissible: list[str] | None = None
        # story files
        self._matched: set[int] = set()
        if self.story_file is None and split == "test":
            games.ensure_games(self.task_ids("test"), desc="Generating the Jericho test games")

    # -------------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if self.story_file is not None:
            return [self.story_file.stem]
        count = games.NUM_TEST if split == "test" else self.num_train
        return [f"{split}-{i}" for i in range(count)]

    def _check_task(self, task_id: str) -> None:
        if task_id in self.task_ids("test") or task_id in self.task_ids("train"):
            return
        if self.story_file is not None:
            raise UnknownTask(f"Jericho: {task_id!r}; this env plays {self.story_file.name} (task id "
                              f"{self.story_file.stem!r})")
        raise UnknownTask(f"Jericho: {task_id!r}; ids are 'test-0'..'test-{games.NUM_TEST - 1}' and "
                          f"'train-0'..'train-{self.num_train - 1}'")

    # -------------------------------------------------------------- loading
    def _open_story(self, path: Path) -> None:
        import jericho

        if self._frotz is not None and self._frotz_file == path:
            return
        if self._frotz is not None:
            self._frotz.close()
            self._frotz = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._frotz = jericho.FrotzEnv(str(path), seed=12345)
        self._frotz_file = path

    def _load_task(self, task_id: str) -> tuple[str, str]:
        self._check_task(task_id)
        self._won = self._lost = False
        self._admissible = None
        self._done_commands = []
        self._on_walkthrough = True
        if self.story_file is not None:
            self._open_story(self.story_file)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obs, _ = self._frotz.reset()
            self._matched = set()
            self._match_subgoals(obs)
            goal = self.user_goal or "Play the game: explore, solve its puzzles and increase your score."
            return goal, _clean(obs) or "(The story printed nothing.)"
        return self._load_textworld_game(task_id)

    def _load_textworld_game(self, task_id: str) -> tuple[str, str]:
        from textworld.generator.game import Game, GameProgression
        from textworld.generator.inform7 import Inform7Game

        path = games.build_game(task_id)
        json_file = str(path.with_suffix(".json"))
        if self._game_file != json_file:
            self._game = Game.load(json_file)
            self._inform7 = Inform7Game(self._game)
            self._game_file = json_file
        self._open_story(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, _ = self._frotz.reset()
            self._frotz.step("tw-trace-actions")  # Inform 7 now tags each action that succeeds
        self._tracker = GameProgression(self._game, track_quests=True)
        self._tracker_shared = False
        self._history = []
        policy = self._tracker.winning_policy or []
        self._initial_policy = max(1, len(policy))
        self._walkthrough = [_normalise(c) for c in self._game.metadata.get("walkthrough") or []]
        _, obs = _strip_tags(obs)
        return self._game.objective.strip(), _clean_intro(_clean(obs))

    # -------------------------------------------------------------- dynamics
    def _acceptable(self, command: str) -> bool:
        """Whether a (normalised) command may be sent to the Z-machine at all."""
        if not command or len(command) > MAX_COMMAND_LENGTH:
            return False
        # Control characters and backslashes never reach the interpreter. Upstream frotz defect: Jericho's
        # dumb-frotz reads an input line that starts with a backslash as one of its own hot-key commands
        # (``\p``, ``\x``, ``\help``, ...) and, for an unknown one, loops forever printing "unknown command"
        # to stderr inside C code, where no Python signal or timeout can stop it. No story verb contains
        # a backslash, so any command with one (anywhere, also after a clause separator) is refused.
        if not command.isascii() or not command.isprintable() or "\\" in command:
            return False
        for clause in _clauses(command):
            first = clause.split()[0]
            if first in META_VERBS or first.startswith("tw-"):
                return False
        return True

    def _step(self, action: str) -> StepOutcome:
        command = _normalise(action)
        if not self._acceptable(command):
            return StepOutcome(NOT_A_VERB, valid=False)
        if self.story_file is not None:
            return self._step_story(command)
        admissible = set(self.admissible_actions() or [])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw, _, done, _ = self._frotz.step(command)
        events, text = _strip_tags(raw)
        acted = False
        for event in events:
            tw_action = self._inform7.detect_action(event, self._tracker.valid_actions)
            if tw_action is not None:
                if self._tracker_shared:
                    self._tracker = self._tracker.copy()
                    self._tracker_shared = False
                self._tracker.update(tw_action)
                self._history.append(tw_action.serialize())
                acted = True
        self._admissible = None
        valid = command in admissible or acted
        if valid:
            k = len(self._done_commands)
            self._on_walkthrough = self._on_walkthrough and k < len(self._walkthrough) and (
                self._walkthrough[k] == command)
            self._done_commands.append(command)
        self._won = self._tracker.completed or "*** The End ***" in text
        self._lost = self._tracker.failed or "*** You lost! ***" in text
        terminal = (self._lost or bool(done)) and not self._won
        return StepOutcome(_clean(text) or "Nothing happens.", valid=valid, terminal=terminal)

    def _step_story(self, command: str) -> StepOutcome:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text, _, done, _ = self._frotz.step(command)
            changed = self._frotz._world_changed()
        lowered = text.lower()
        valid = changed or not any(p in lowered for p in PARSER_FAILURES)
        self._match_subgoals(text)
        self._won = bool(self._frotz.victory()) or (bool(self.subgoals) and len(self._matched) == len(self.subgoals))
        self._lost = bool(self._frotz.game_over())
        return StepOutcome(_clean(text) or "Nothing happens.", valid=valid, terminal=bool(done) and not self._won)

    def _match_subgoals(self, text: str) -> None:
        key = _alnum(text)
        for i, sub in enumerate(self._subgoal_keys):
            if sub and sub in key:
                self._matched.add(i)

    def _progress(self) -> float:
        if self._won:
            return 1.0
        if self.story_file is not None:
            if self.subgoals:
                return len(self._matched) / len(self.subgoals)
            max_score = self._frotz.get_max_score() if self._frotz is not None else 0
            return self._frotz.get_score() / max_score if max_score else 0.0
        policy = self._tracker.winning_policy if self._tracker is not None else None
        if policy is None:
            return 0.0
        return 1.0 - len(policy) / self._initial_policy

    def _success(self) -> bool:
        return self._won

    def admissible_actions(self) -> list[str] | None:
        if self._task_id is None or self.story_file is not None or self._tracker is None:
            return None
        if self._admissible is None:
            commands = self._inform7.gen_commands_from_actions(self._tracker.valid_actions)
            self._admissible = sorted({_normalise(c) for c in commands})
        return list(self._admissible)

    def expert_action(self) -> str | None:
        if self._task_id is None or self._terminated or self.story_file is not None:
            return None
        k = len(self._done_commands)
        if self._on_walkthrough and k < len(self._walkthrough):
            return self._walkthrough[k]
        policy = self._tracker.winning_policy
        if not policy:
            return None
        return _normalise(self._inform7.gen_commands_from_actions(policy[:1])[0])

    def policy_commands(self) -> list[str] | None:
        """TextWorld's current winning policy as commands (default games; ``None`` if it cannot be won)."""
        if self._tracker is None or self._tracker.winning_policy is None:
            return None
        return [_normalise(c) for c in self._inform7.gen_commands_from_actions(self._tracker.winning_policy)]

    def perturbation_table(self) -> Perturbation:
        return PERTURBATION

    # -------------------------------------------------------------- snapshots: Jericho's native state
    def _get_state(self) -> Any:
        state: dict[str, Any] = {
            "frotz": self._frotz.get_state(),
            "won": self._won,
            "lost": self._lost,
            "done_commands": tuple(self._done_commands),
            "on_walkthrough": self._on_walkthrough,
        }
        if self.story_file is not None:
            state["matched"] = tuple(sorted(self._matched))
        else:
            state["tracker"] = _TrackerState(self._game_file, self._tracker, self._history)
            self._tracker_shared = True
        return state

    def _set_state(self, state: Any) -> None:
        self._frotz.set_state(state["frotz"])
        self._won, self._lost = state["won"], state["lost"]
        self._done_commands = list(state["done_commands"])
        self._on_walkthrough = state["on_walkthrough"]
        self._admissible = None
        if self.story_file is not None:
            self._matched = set(state["matched"])
        else:
            tracker: _TrackerState = state["tracker"]
            self._tracker = tracker.progression(self._game)
            self._tracker_shared = True
            self._history = list(tracker.history)

    def close(self) -> None:
        if self._frotz is not None:
            self._frotz.close()
            self._frotz = None
            self._frotz_file = None
        super().close()

    def instruction(self) -> str:
        return (
            "You are playing a text-based adventure game. Read each observation and type one command per "
            "turn to reach the goal. Useful commands: look, inventory, go north/south/east/west, "
            "examine X, take X, take X from Y, drop X, put X on Y, insert X into Y, open X, close X, "
            "unlock X with Y, lock X with Y, eat X, and for cooking games: slice/dice/chop X with knife, "
            "cook X with stove/oven/BBQ, prepare meal. Use \"check valid actions\" to list the commands "
            "that are admissible now."
        )
