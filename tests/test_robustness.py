"""Reliability: a resumed run is the run it resumes, the tiny RM tokenizer is deterministic, damaged files
give errors naming them (or are rebuilt), the RM cache is bounded, server guards (size, key, exposure)."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentrm_gym.train.common import begin_stage  # noqa: E402
from agentrm_gym.train.config import CorruptRunFile, preset  # noqa: E402
from agentrm_gym.train.explore import run_explore  # noqa: E402
from agentrm_gym.train.pipeline import run_pipeline  # noqa: E402

pytestmark = pytest.mark.timeout(600)


def smoke_cfg():
    # no sampled groups: the trees and rollouts are what the resume tests compare
    return preset("smoke").replace(explore_groups=0, threads=1)


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke run through expert, sft and explore, uninterrupted (the reference)."""
    out = tmp_path_factory.mktemp("robust") / "run"
    run_pipeline(smoke_cfg(), out, ["expert", "sft"])
    run_explore(smoke_cfg(), out)
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ------------------------------------------------------------------ 1. resume is the run it resumes
def test_expert_resume_plays_the_uninterrupted_episodes(tmp_path: Path, explored: Path) -> None:
    reference = _lines(explored / "expert" / "trajectories.jsonl")
    assert len(reference) == 12
    for kept in (1, 3, 7):  # killed after `kept` episodes (noise was seeded by to-do position before)
        run = tmp_path / f"k{kept}"
        (run / "expert").mkdir(parents=True)
        shutil.copy(explored / "config.json", run / "config.json")
        (run / "expert" / "trajectories.jsonl").write_text("\n".join(reference[:kept]) + "\n", encoding="utf-8")
        run_pipeline(smoke_cfg(), run, ["expert"])
        resumed = _lines(run / "expert" / "trajectories.jsonl")
        assert [json.loads(r)["steps"] for r in resumed] == [json.loads(r)["steps"] for r in reference], kept


@pytest.mark.parametrize("kill", ["last_index_line", "all_index_lines", "torn_index_line"])
def test_explore_resume_after_a_kill_between_rollouts_and_index(tmp_path: Path, explored: Path, kill: str) -> None:
    reference = (explored / "explore" / "rollouts.jsonl").read_text(encoding="utf-8")
    index = (explored / "explore" / "index.jsonl").read_text(encoding="utf-8")
    assert index.count("\n") == 2 and reference.count("\n") >= 2
    run = tmp_path / "run"
    shutil.copytree(explored, run)
    (run / "explore" / "done.json").unlink()
    lines = index.splitlines(keepends=True)
    cut = {"last_index_line": "".join(lines[:-1]), "all_index_lines": "",
           "torn_index_line": index[: len(index) - 15]}[kill]  # the rollouts were appended, the index was not
    (run / "explore" / "index.jsonl").write_text(cut, encoding="utf-8")
    summary = run_explore(smoke_cfg(), run)
    assert summary["trees"] == 2
    assert (run / "explore" / "rollouts.jsonl").read_text(encoding="utf-8") == reference  # no duplicates
    got = [json.loads(x) for x in _lines(run / "explore" / "index.jsonl")]
    want = [json.loads(x) for x in index.splitlines()]
    drop = ("cost",)  # wall times differ
    assert [{k: v for k, v in r.items() if k not in drop} for r in got] == \
        [{k: v for k, v in r.items() if k not in drop} for r in want]


def test_drop_uncommitted_keeps_committed_lines_byte_for_byte(tmp_path: Path) -> None:
    from agentrm_gym.train.explore import drop_uncommitted

    path = tmp_path / "rollouts.jsonl"
    rows = [{"task": "Maze", "task_id": "a", "x": 1.1}, {"task": "Maze", "task_id": 7, "x": "é"},
            {"task": "Maze", "task_id": "b", "x": 3}]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    assert drop_uncommitted(path, {("Maze", "a"), ("Maze", "7")}) == 1
    assert path.read_text(encoding="utf-8") == "".join(text.splitlines(keepends=True)[:2])
    assert drop_uncommitted(path, {("Maze", "a"), ("Maze", "7")}) == 0
    assert drop_uncommitted(tmp_path / "none.jsonl", set()) == 0


# ------------------------------------------------------------------ 2. the tiny RM's tokenizer
_VOCAB_SCRIPT = """
import json, random, sys
from agentrm_gym.rm.backbones import _wordpiece_tokenizer
rng = random.Random(0)
words = ["click", "search", "buy", "red", "shoe", "size", "go", "north", "take", "key", "open", "door", "aa", "bb"]
texts = [" ".join(rng.choice(words) + rng.choice(["", "s", "ed", "x1", "zz"]) for _ in range(rng.randint(3, 20)))
         for _ in range(200)]
if sys.argv[1] == "shuffled":
    rng.shuffle(texts)
print(json.dumps(sorted(_wordpiece_tokenizer(texts, 300).get_vocab().items())))
"""


def test_wordpiece_tokenizer_is_the_same_in_every_process() -> None:
    # the Rust trainer broke ties by ids in a randomly seeded hash map's order: vocabularies differed per process
    vocabs = [subprocess.run([sys.executable, "-c", _VOCAB_SCRIPT, order], capture_output=True, text=True,
                             check=True).stdout for order in ("given", "given", "shuffled")]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    vocab = dict(json.loads(vocabs[0]))
    assert [t for t, i in sorted(vocab.items(), key=lambda kv: kv[1])][:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                               "[MASK]"]
    assert "click" in vocab and any(t.startswith("##") for t in vocab)


def test_wordpiece_vocab_merges_and_tokenizes() -> None:
    from collections import Counter

    from agentrm_gym.rm.backbones import tiny_value_backbone, wordpiece_vocab

    vocab = wordpiece_vocab(Counter({"abab": 5, "ab": 3, "ba": 1}), 20, ["[UNK]"])
    assert vocab[:5] == ["[UNK]", "##a", "##b", "a", "b"] and "ab" in vocab and "abab" in vocab
    assert wordpiece_vocab(Counter({"abab": 5, "ab": 3, "ba": 1}), 20, ["[UNK]"]) == vocab
    assert len(wordpiece_vocab(Counter({"abcdefgh": 2}), 12)) == 12  # stops at the size
    texts = ["Go north to the door.", "take key", "open the door"] * 3
    _, tok_a = tiny_value_backbone(texts, hidden_size=8, num_layers=1, num_heads=1, vocab_size=100)
    _, tok_b = tiny_value_backbone(list(reversed(texts)), hidden_size=8, num_layers=1, num_heads=1, vocab_size=100)
    assert tok_a.get_vocab() == tok_b.get_vocab()
    enc = tok_a("go north")["input_ids"]
    assert enc[0] == tok_a.cls_token_id and enc[-1] == tok_a.sep_token_id and tok_a.unk_token_id not in enc
    assert tok_a.decode(enc, skip_special_tokens=True) == "go north"


# ------------------------------------------------------------------ 3. damaged files
@pytest.mark.parametrize("damage", ["", '{"wall_seconds": 1', "[1, 2]", "\xff"])
def test_damaged_done_json_names_the_file(tmp_path: Path, damage: str) -> None:
    (tmp_path / "expert").mkdir()
    (tmp_path / "expert" / "done.json").write_text(damage, encoding="latin-1")
    with pytest.raises(CorruptRunFile, match=r"expert/done\.json.*delete the stage directory") as info:
        begin_stage(tmp_path, "expert")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("damage", ['{"name": "smo', "", "[]", '{"not_a_field": 1}'])
def test_damaged_config_json_names_the_file(tmp_path: Path, damage: str) -> None:
    from agentrm_gym.train.config import load_config

    (tmp_path / "config.json").write_text(damage, encoding="utf-8")
    with pytest.raises(CorruptRunFile, match=r"config\.json.*delete the run directory"):
        run_pipeline(smoke_cfg(), tmp_path, ["expert"])
    assert not (tmp_path / "expert").exists()
    (tmp_path / "config.json").write_text(json.dumps(smoke_cfg().to_dict()), encoding="utf-8")
    assert load_config(tmp_path / "config.json") == smoke_cfg()


def test_truncated_policy_weights_name_the_file(tmp_path: Path) -> None:
    from agentrm_gym.agents.hf import PolicyLoadError, load_model
    from agentrm_gym.agents.tiny import build_tiny_policy

    pol = build_tiny_policy(tmp_path / "pol", episodes=2, vocab_size=300)
    weights = pol / "model.safetensors"
    data = weights.read_bytes()
    for damaged in (data[: len(data) // 2], b"", data[:7]):
        weights.write_bytes(damaged)
        with pytest.raises(PolicyLoadError, match=r"model\.safetensors: cannot load the policy weights"):
            load_model(str(pol), "cpu")
    weights.write_bytes(data)
    config = (pol / "config.json").read_text(encoding="utf-8")
    (pol / "config.json").write_text(config[:30], encoding="utf-8")
    with pytest.raises(PolicyLoadError, match=r"config\.json"):
        load_model(str(pol), "cpu")
    (pol / "config.json").write_text(config, encoding="utf-8")
    model, _ = load_model(str(pol), "cpu")
    assert model is not None


def _corrupt(path: Path, how: str, orig: bytes) -> None:
    if how == "truncated":
        path.write_bytes(orig[: len(orig) // 2])
    elif how == "pages":
        mid = bytearray(orig)
        mid[len(orig) // 2: len(orig) // 2 + 8192] = random.Random(0).randbytes(8192)
        path.write_bytes(bytes(mid))
    elif how == "garbage":
        path.write_bytes(b"not a database" * 100)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "other_build":  # a valid SQLite file of another catalogue (wrong meta)
        conn = sqlite3.connect(path.with_suffix(".tmp"))
        conn.executescript("CREATE TABLE meta(key TEXT, value TEXT); INSERT INTO meta VALUES ('version', '1');")
        conn.commit()
        conn.close()
        path.with_suffix(".tmp").replace(path)


@pytest.mark.parametrize("how", ["truncated", "pages", "garbage", "empty", "other_build"])
def test_damaged_webshop_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    from agentrm_gym.envs.webshop import catalogue as cat

    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path))
    path = cat.ensure_catalogue(300, seed=5, progress=False)
    orig = path.read_bytes()
    _corrupt(path, how, orig)
    assert cat.catalogue_problem(path, 300, 5) is not None
    with pytest.warns(UserWarning, match="damaged.*rebuilding"):
        again = cat.ensure_catalogue(300, seed=5, progress=False)
    assert again == path and cat.catalogue_problem(path, 300, 5) is None
    c = cat.Catalogue(path)
    try:
        assert len(c) == 300 and c.search("shampoo") is not None
        assert all(c.product_at(i) is not None for i in range(300))
    finally:
        c.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sound file is used as it is, checked once
        assert cat.ensure_catalogue(300, seed=5, progress=False) == path


def test_damaged_catalogue_opened_directly_names_the_file(tmp_path: Path) -> None:
    from agentrm_gym.envs.webshop.catalogue import Catalogue, CatalogueError

    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(CatalogueError, match=r"c\.sqlite: not a readable WebShop catalogue"):
        Catalogue(bad)


def test_extract_records_pairs_and_rm_stage_refuses_a_cut_file(tmp_path: Path, explored: Path) -> None:
    from agentrm_gym.train.extract import verify_pairs
    from agentrm_gym.train.rm_stage import run_train_rm

    run = tmp_path / "run"
    shutil.copytree(explored, run)
    cfg = smoke_cfg()
    run_pipeline(cfg, run, ["extract"])
    done = json.loads((run / "extract" / "done.json").read_text(encoding="utf-8"))
    pairs = run / "extract" / "pairs.jsonl"
    text = pairs.read_text(encoding="utf-8")
    assert done["pairs"] == text.count("\n") >= 3 and len(done["pairs_sha256"]) == 64
    assert verify_pairs(run) == done["pairs"]
    lines = text.splitlines(keepends=True)
    for damaged in (text[: len(text) - 40], "".join(lines[:-1]), text.replace('"value": ', '"value":  ', 1)):
        pairs.write_text(damaged, encoding="utf-8")
        with pytest.raises(CorruptRunFile, match=r"extract/pairs\.jsonl.*delete .*extract to redo"):
            run_train_rm(cfg, run)
        assert not (run / "rm" / "done.json").exists()
    # a run from before the sha256: the count still catches lost lines, a cut record is caught by parsing
    del done["pairs_sha256"]
    (run / "extract" / "done.json").write_text(json.dumps(done), encoding="utf-8")
    pairs.write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(CorruptRunFile, match=f"{len(lines) - 1} pairs where the extract stage wrote {len(lines)}"):
        verify_pairs(run)
    pairs.write_text(text[: len(text) - 40], encoding="utf-8")
    with pytest.raises(CorruptRunFile, match="cut short"):
        verify_pairs(run)
    pairs.write_text(text, encoding="utf-8")
    assert verify_pairs(run) == len(lines)


@pytest.fixture(scope="module")
def rm_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved RM of every kind, tiny."""
    from transformers import BertConfig, BertModel

    from agentrm_gym.rm.backbones import tiny_causal_lm, tiny_value_backbone
    from agentrm_gym.rm.implicit import ImplicitRewardModel
    from agentrm_gym.rm.judge import JudgeRewardModel
    from agentrm_gym.rm.pooled import PooledValueRewardModel
    from agentrm_gym.rm.value import ValueRewardModel

    base = tmp_path_factory.mktemp("rms")
    texts = ["go north to the door Yes", "take the key No", "click buy now Candidate 1 2 3"] * 5
    small = {"hidden_size": 16, "num_layers": 1, "num_heads": 2}
    model, tok = tiny_value_backbone(texts, vocab_size=200, **small)
    lm, lm_tok = tiny_causal_lm(texts, vocab_size=300, **small)
    ref, _ = tiny_causal_lm(texts, vocab_size=300, **small)
    enc = BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32))
    return {"value": ValueRewardModel(model, tok).save(base / "value"),
            "judge": JudgeRewardModel(lm, lm_tok).save(base / "judge"),
            "implicit": ImplicitRewardModel(lm, ref, lm_tok).save(base / "implicit"),
            "pooled_value": PooledValueRewardModel(enc, tok, np.zeros(16), 0.0).save(base / "pooled")}


KINDS = ["value", "judge", "implicit", "pooled_value"]


@pytest.mark.parametrize("real", KINDS)
def test_rm_card_kind_must_match_the_files(tmp_path: Path, rm_dirs: dict[str, Path], real: str) -> None:
    from agentrm_gym.rm import load_reward_model
    from agentrm_gym.rm.card import RMLoadError, layout_kind

    assert layout_kind(rm_dirs[real])[0] == real
    assert load_reward_model(rm_dirs[real]).kind == real
    for i, fake in enumerate(k for k in KINDS if k != real):
        swapped = tmp_path / f"m{i}"
        shutil.copytree(rm_dirs[real], swapped)
        card = json.loads((swapped / "agentrm_rm.json").read_text(encoding="utf-8"))
        (swapped / "agentrm_rm.json").write_text(json.dumps({**card, "kind": fake}), encoding="utf-8")
        with pytest.raises(RMLoadError, match=rf"agentrm_rm\.json: the card says kind '{fake}', but the directory "
                                              rf"holds a '{real}' reward model"):
            load_reward_model(swapped)


# ------------------------------------------------------------------ 4. RM cache, state validation, guards
def test_rm_cache_is_keyed_by_a_digest_and_bounded() -> None:
    from agentrm_gym.rm import FunctionRewardModel
    from agentrm_gym.rm.base import CACHE_ENTRY_BYTES, text_key
    from agentrm_gym.trajectory import AgentState

    class TextLength(FunctionRewardModel):
        def _score_texts(self, batch):
            self.stats.forward_calls += 1
            return np.array([len(t) for t in batch], dtype=float)

    rm = TextLength(lambda s: 0.0, cache_size=50)
    texts = ["t" * 100_000 + str(i) for i in range(200)]
    np.testing.assert_allclose(rm.score_texts(texts), [len(t) for t in texts])
    assert len(rm._cache) == 50 and all(isinstance(k, bytes) and len(k) == 16 for k in rm._cache)
    assert rm.cache_bytes() == 50 * CACHE_ENTRY_BYTES
    assert text_key(texts[-1]) in rm._cache and text_key(texts[0]) not in rm._cache  # LRU: the newest stay
    calls = rm.stats.forward_calls
    rm.score_texts(texts[-10:] + texts[-10:])
    assert rm.stats.forward_calls == calls and rm.stats.cache_hits >= 20
    assert text_key("\ud800") != text_key("\ud801")  # lone surrogates hash, they do not crash the cache
    fn = FunctionRewardModel(lambda s: len(s.steps))
    s0 = AgentState("Maze", "g", "o")
    assert list(fn.score([s0, s0])) == [0.0, 0.0] and fn.stats.cache_hits == 1


@pytest.mark.parametrize(("step", "message"), [
    ({"action": 5}, "steps[0].action must be a string, got int 5"),
    ({"action": "a", "observation": None}, "steps[0].observation must be a string"),
    ({"action": "a", "reward": "x"}, "steps[0].reward must be a number"),
    ({"action": "a", "progress": True}, "steps[0].progress must be a number"),
    ({"action": "a", "action_valid": 1}, "steps[0].action_valid must be true or false"),
])
def test_state_from_dict_checks_step_types(step: dict, message: str) -> None:
    from agentrm_gym.trajectory import state_from_dict

    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        state_from_dict({"task": "Maze", "goal": "g", "steps": [step]})
    ok = state_from_dict({"task": "Maze", "goal": "g", "steps": [{"action": "a", "reward": 1, "progress": 0.5}]})
    assert ok.steps[0].reward == 1 and ok.steps[0].observation == ""


def test_exposure_warning_and_loopback() -> None:
    from agentrm_gym.serve.guard import ExposedServerWarning, is_loopback, text_problem, warn_if_exposed

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.2", "example.org"))
    with pytest.warns(ExposedServerWarning, match="0.0.0.0, beyond loopback, without an API key"):
        assert warn_if_exposed("0.0.0.0", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_exposed("0.0.0.0", "key") and not warn_if_exposed("127.0.0.1", None)
    assert text_problem("ok \U0001F600") is None and "lone surrogate" in text_problem("a\udc00")


def test_request_guard_size_limit_and_api_key() -> None:
    pytest.importorskip("fastapi")
    import httpx

    from agentrm_gym.serve.guard import RequestGuard

    async def echo(scope, receive, send):
        body, more = b"", True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    app = RequestGuard(echo, max_request_bytes=100, api_key="k")
    auth = {"Authorization": "Bearer k"}
    import asyncio

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.post("/x", content=b"a" * 100, headers=auth)).text == "100"
            big = await c.post("/x", content=b"a" * 101, headers=auth)
            assert big.status_code == 413 and "larger than 100 bytes" in big.json()["detail"]

            async def chunks():
                for _ in range(5):
                    yield b"a" * 30

            streamed = await c.post("/x", content=chunks(), headers=auth)  # no Content-Length
            assert streamed.status_code == 413
            assert (await c.post("/x", content=b"a")).status_code == 401
            wrong = await c.post("/x", content=b"a", headers={"Authorization": "Bearer kk"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
            assert (await c.get("/health")).status_code == 200  # liveness stays open
            assert (await c.post("/health")).status_code == 401

    asyncio.run(go())
