"""RM specs: ``make_reward_model`` on an RM directory, a run directory, a URL, ``python:module:attr``, objects
and callables; bad specs; an RM kind of one's own (``register_rm_kind`` and the entry point); ``agentrm eval
--rm`` with a ``python:`` spec and a URL; the train-rm stage's trainer table."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agentrm_gym.cli import app
from agentrm_gym.rm import (
    CARD_NAME,
    RM_KINDS,
    FunctionRewardModel,
    RMLoadError,
    load_reward_model,
    make_reward_model,
    register_rm_kind,
)
from agentrm_gym.rm.loading import ENTRY_POINT_GROUP
from agentrm_gym.rm.spec import rm_identity
from agentrm_gym.trajectory import AgentState, Step

pytestmark = pytest.mark.timeout(120)

PLUGIN = "agentrm_test_rm_plugin"  # a module written to a temporary directory on sys.path

PLUGIN_SOURCE = '''
import numpy as np

from agentrm_gym.rm import FunctionRewardModel, RewardModel
from agentrm_gym.rm.card import write_card


def fewer_steps(state):
    return -float(len(state.steps))


READY = FunctionRewardModel(fewer_steps)


def make_ready():
    return READY


class LengthRM(RewardModel):
    """An RM kind of a user's own: the RM text's length times ``scale``."""

    kind = "test_length"

    def __init__(self, scale=1.0, fmt=None, batch_size=32):
        super().__init__(fmt=fmt, batch_size=batch_size)
        self.scale = scale

    def _score_texts(self, texts):
        self.stats.forward_calls += 1
        return np.array([self.scale * len(t) for t in texts], dtype=float)

    def card(self):
        return {**super().card(), "scale": self.scale}

    def save(self, path):
        return write_card(path, self.card()).parent

    @classmethod
    def load(cls, path, card, fmt, meta, **overrides):
        return cls(scale=meta["scale"], fmt=fmt, **overrides)


class EntryPointRM(LengthRM):
    kind = "test_entry_point"


NOT_AN_RM = 42
'''


def states() -> list[AgentState]:
    s0 = AgentState("Maze", "Reach the goal at position 8, 6.", "Your current position is at position 5, 4.")
    s1 = s0.extend(Step("move down", "Your current position is at position 6, 4."))
    s2 = s1.extend(Step("move right", "Your current position is at position 6, 5.", thought="closer"))
    return [s0, s1, s2]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plugin module, importable by name, plus a distribution declaring an RM kind entry point."""
    root = tmp_path_factory.mktemp("plugin")
    (root / f"{PLUGIN}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist = root / "agentrm_test_rm_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: agentrm-test-rm-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntest_entry_point = {PLUGIN}:EntryPointRM\n")
    sys.path.insert(0, str(root))
    import importlib

    importlib.invalidate_caches()
    yield importlib.import_module(PLUGIN)
    sys.path.remove(str(root))
    sys.modules.pop(PLUGIN, None)
    for kind in ("test_length", "test_entry_point"):
        RM_KINDS.pop(kind, None)


@pytest.fixture(scope="module")
def value_rm_dir(tmp_path_factory):
    """A tiny from-scratch value RM saved with its card (no training: seconds)."""
    pytest.importorskip("torch", reason="reward models need the [llm] extra")
    pytest.importorskip("transformers", reason="reward models need the [llm] extra")
    from agentrm_gym.rm.backbones import tiny_value_backbone
    from agentrm_gym.rm.value import ValueRewardModel

    texts = [FunctionRewardModel(len).text(s) for s in states()]
    model, tok = tiny_value_backbone(texts, hidden_size=32, num_layers=1, num_heads=2, vocab_size=200)
    rm = ValueRewardModel(model, tok, max_length=64, backbone="tiny-bert")
    out = tmp_path_factory.mktemp("value_rm")
    rm.save(out)
    return rm, out


# ------------------------------------------------------------------ directories
def test_rm_directory_and_run_directory(value_rm_dir, tmp_path) -> None:
    rm, out = value_rm_dir
    expected = rm.score(states())
    for spec in (str(out), out):
        loaded = make_reward_model(spec, batch_size=2)
        assert loaded.kind == "value" and loaded.batch_size == 2
        np.testing.assert_allclose(loaded.score(states()), expected, atol=1e-6)
    run = tmp_path / "run"
    shutil.copytree(out, run / "rm")
    (run / "config.json").write_text("{}")
    np.testing.assert_allclose(make_reward_model(run).score(states()), expected, atol=1e-6)
    assert rm_identity(str(run)) == rm_identity(str(out))  # a run is keyed by the files of its rm/
    untrained = tmp_path / "untrained"
    (untrained / "rm").mkdir(parents=True)
    with pytest.raises(RMLoadError, match="not trained yet.*agentrm pipeline train-rm"):
        make_reward_model(untrained)


# ------------------------------------------------------------------ python: specs, objects, callables
def test_python_specs_objects_and_callables(plugin) -> None:
    ready = make_reward_model(f"python:{PLUGIN}:READY")
    assert ready is plugin.READY
    assert make_reward_model(f"python:{PLUGIN}:make_ready") is plugin.READY  # a zero-argument factory
    wrapped = make_reward_model(f"python:{PLUGIN}:fewer_steps")  # a function of a state
    assert isinstance(wrapped, FunctionRewardModel)
    np.testing.assert_allclose(wrapped.score(states()), [0.0, -1.0, -2.0])
    made = make_reward_model(f"python:{PLUGIN}:LengthRM", batch_size=2, timeout=5)  # a class; takes what fits
    assert isinstance(made, plugin.LengthRM) and made.batch_size == 2
    assert made.score(states())[0] == len(made.text(states()[0]))
    # the Python API: an object with .score as is, a plain callable wrapped
    assert make_reward_model(plugin.READY) is plugin.READY
    fn = make_reward_model(lambda s: len(s.goal))
    assert isinstance(fn, FunctionRewardModel) and fn.score(states()[:1])[0] == len(states()[0].goal)


def test_python_spec_finds_a_module_of_the_current_directory(tmp_path, monkeypatch) -> None:
    (tmp_path / "agentrm_test_cwd_rm.py").write_text("def value(state):\n    return 7.0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "agentrm_test_cwd_rm", raising=False)
    rm = make_reward_model("python:agentrm_test_cwd_rm:value")  # as the `agentrm` script run from there
    assert rm.score(states()[:1])[0] == 7.0 and sys.path[-1] == str(tmp_path)
    sys.modules.pop("agentrm_test_cwd_rm", None)


def test_url_spec_against_a_served_rm() -> None:
    pytest.importorskip("fastapi", reason="needs the [serve] extra")
    pytest.importorskip("httpx", reason="needs the [serve] extra")
    from agentrm_gym.rm.remote import RemoteRewardModel
    from agentrm_gym.serve.rm_server import RMServer

    local = FunctionRewardModel(lambda s: len(s.steps) + 0.5)
    with RMServer(local) as server:
        remote = make_reward_model(server.url, timeout=10)
        assert isinstance(remote, RemoteRewardModel)
        np.testing.assert_allclose(remote.score(states()), [0.5, 1.5, 2.5])
        remote.close()
    assert rm_identity(server.url) == server.url


@pytest.mark.parametrize(("spec", "needle"), [
    ("nowhere/at/all", "no such reward-model directory.*python:module:attr"),
    ("", "empty reward-model spec"),
    (f"python:{PLUGIN}", "python:module:attr"),
    ("python:agentrm_no_such_module_xyz:rm", "cannot import module 'agentrm_no_such_module_xyz'"),
    (f"python:{PLUGIN}:missing", f"'{PLUGIN}' has no attribute 'missing'"),
    (f"python:{PLUGIN}:NOT_AN_RM", "a int is not a reward model.*http"),
    (42, "a int is not a reward model"),
])
def test_bad_specs_say_what_is_accepted(plugin, spec, needle) -> None:
    with pytest.raises(RMLoadError, match=needle):
        make_reward_model(spec)


def test_a_file_or_a_directory_without_a_card(tmp_path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(RMLoadError, match="not a directory"):
        make_reward_model(tmp_path / "f.txt")
    with pytest.raises(RMLoadError, match=f"{CARD_NAME}: missing.*neither an RM directory nor a run"):
        make_reward_model(tmp_path)


# ------------------------------------------------------------------ an RM kind of one's own
def test_register_rm_kind_round_trip(plugin, tmp_path) -> None:
    rm = plugin.LengthRM(scale=0.5)
    out = tmp_path / "length_rm"
    rm.save(out)
    assert json.loads((out / CARD_NAME).read_text())["kind"] == "test_length"
    with pytest.raises(RMLoadError, match="unknown reward-model kind 'test_length'.*register_rm_kind"):
        load_reward_model(out)
    register_rm_kind("test_length", plugin.LengthRM)
    register_rm_kind("test_length", plugin.LengthRM)  # the same class again is no conflict
    with pytest.raises(ValueError, match="already registered"):
        register_rm_kind("test_length", f"{PLUGIN}:EntryPointRM")
    register_rm_kind("test_length", f"{PLUGIN}:LengthRM", replace=True)  # by name, imported on first load
    loaded = make_reward_model(out, batch_size=1)
    assert type(loaded) is plugin.LengthRM and loaded.scale == 0.5 and loaded.batch_size == 1
    np.testing.assert_allclose(loaded.score(states()), rm.score(states()))
    with pytest.raises(TypeError, match="load"):
        register_rm_kind("test_bad", object)
    with pytest.raises(ValueError, match="module:Class"):
        register_rm_kind("test_bad", "no_colon")


def test_rm_kind_from_an_entry_point(plugin, tmp_path) -> None:
    out = tmp_path / "ep_rm"
    plugin.EntryPointRM(scale=2.0).save(out)
    RM_KINDS.pop("test_entry_point", None)
    loaded = load_reward_model(out)  # found through the distribution's agentrm_gym.rm_kinds entry point
    assert type(loaded) is plugin.EntryPointRM and loaded.scale == 2.0


# ------------------------------------------------------------------ agentrm eval --rm SPEC
def _eval(tmp_path: Path, rm: str, name: str) -> dict:
    out = tmp_path / name
    r = CliRunner().invoke(app, ["eval", "--env", "Maze", "--policy", "noisy:0.5", "--method", "bon:2",
                                 "--rm", rm, "--episodes", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["episodes"] == 2 and res["scorer"] == rm
    return res


def test_eval_cli_takes_python_and_url_specs(plugin, tmp_path) -> None:
    _eval(tmp_path, f"python:{PLUGIN}:fewer_steps", "python")
    pytest.importorskip("fastapi", reason="needs the [serve] extra")
    pytest.importorskip("httpx", reason="needs the [serve] extra")
    from agentrm_gym.serve.rm_server import RMServer

    with RMServer(plugin.READY) as server:
        _eval(tmp_path, server.url, "url")
    assert plugin.READY.stats.states > 0  # the served RM scored the candidates


def test_eval_cli_bad_rm_is_one_clear_error(tmp_path) -> None:
    r = CliRunner().invoke(app, ["eval", "--env", "Maze", "--method", "bon:2", "--rm", "python:nope",
                                 "--episodes", "1", "--out", str(tmp_path / "run")])
    assert r.exit_code != 0 and "python:module:attr" in r.output


# ------------------------------------------------------------------ the train-rm stage's trainer table
def test_train_rm_stage_trainer_table() -> None:
    from agentrm_gym.train import rm_stage

    assert rm_stage.rm_trainer("pooled") is rm_stage.train_pooled
    assert rm_stage.rm_trainer("value") is rm_stage.train_value
    with pytest.raises(ValueError, match="rm_kind must be one of 'pooled', 'value'.*register_rm_trainer"):
        rm_stage.rm_trainer("mystery")
    try:
        rm_stage.register_rm_trainer("test_trainer", "agentrm_gym.train.rm_stage:train_value")
        assert rm_stage.rm_trainer("test_trainer") is rm_stage.train_value
        with pytest.raises(ValueError, match="already registered"):
            rm_stage.register_rm_trainer("test_trainer", rm_stage.train_pooled)
    finally:
        rm_stage.RM_TRAINERS.pop("test_trainer", None)


def test_the_fewer_repeats_heuristic_counts_repeats_and_loads_as_a_spec():
    from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel, repeated_actions
    from agentrm_gym.trajectory import AgentState, Step

    s0 = AgentState("Maze", "reach", "start")
    s1 = s0.extend(Step("move up", "o")).extend(Step("Move  up", "o")).extend(Step("move left", "o"))
    s2 = s1.extend(Step("move up", "o"))
    assert [repeated_actions(s) for s in (s0, s1, s2)] == [0, 1, 2]
    rm = make_reward_model("python:agentrm_gym.rm.heuristic:FewerRepeatsRewardModel")
    assert list(rm.score([s0, s1, s2])) == [0.0, -1.0, -2.0]
    assert list(FewerRepeatsRewardModel(0.05).score([s2])) == [-0.1]
