"""WebShop: catalogue, search safety, page formats, reward, progress, snapshots and the oracle."""

from __future__ import annotations

import pickle
import sqlite3
from collections import Counter

import gymnasium as gym
import pytest
from rapidfuzz import fuzz

import agentrm_gym  # noqa: F401  (registers the ids)
from agentrm_gym.core import restore, snapshot
from agentrm_gym.envs.webshop import WebShopEnv
from agentrm_gym.envs.webshop.catalogue import (
    MAX_RESULTS,
    Catalogue,
    build_catalogue,
    ensure_catalogue,
    fts_query,
    generate_products,
)
from agentrm_gym.envs.webshop.goals import TEST_SIZE, search_text
from agentrm_gym.envs.webshop.pages import BUY_NOW, SEP
from agentrm_gym.envs.webshop.reward import EXACT_MATCH_OPTIONS, purchase_reward, type_reward
from agentrm_gym.envs.webshop.vocab import CATEGORIES, PRODUCT_TYPES

INJECTIONS = [
    "'; DROP TABLE products; --",
    '"; DELETE FROM products_fts; --',
    '"',
    "*",
    "NEAR(shampoo lipstick, 2)",
    "title:shampoo",
    "(shampoo OR",
    "shampoo AND OR NOT",
    "^lipstick",
    "shampoo\" OR 1=1 --",
    "products_fts MATCH 'x'",
    "\\x00\\ ; ATTACH DATABASE '/tmp/x.db' AS x",
]


@pytest.fixture(scope="module")
def env():
    e = WebShopEnv(split="test")
    yield e
    e.close()


def _clicks(env: WebShopEnv) -> list[str]:
    return env.admissible_actions()


# ---------------------------------------------------------------------- catalogue
def test_catalogue_size_categories_and_fields(env):
    cat = env.catalogue
    assert len(cat) >= 10_000
    categories = Counter(cat.product_at(i).category for i in range(0, 10_000, 7))
    assert len(categories) >= 5 and set(categories) <= set(CATEGORIES)
    p = cat.product_at(123)
    assert p.asin.startswith("B0") and len(p.asin) == 10
    assert p.title and p.price > 0 and " › " in p.product_category and p.product_type
    assert len(p.attributes) >= 3 and p.options and p.description and p.bullets
    assert cat.product(p.asin.lower()) == p
    assert cat.meta()["num_products"] == "10000"


def test_generation_is_seeded_and_reproducible():
    a, b = generate_products(300, seed=5), generate_products(300, seed=5)
    assert a == b
    assert generate_products(300, seed=6) != a
    assert len({p.asin for p in a}) == 300


def test_vocabulary_has_no_fuzzy_collisions():
    """WebShop matches attributes and options fuzzily, so a type's phrases must not match each other."""
    for ptype in PRODUCT_TYPES:
        attrs = ptype.attributes
        for i, a in enumerate(attrs):
            for b in attrs[i + 1:]:
                assert fuzz.token_set_ratio(a, b) <= 85, (ptype.name, a, b)
        all_values = [v for values in ptype.options.values() for v in values]
        assert len(all_values) == len(set(all_values)), ptype.name
        for name, values in ptype.options.items():
            if name in EXACT_MATCH_OPTIONS:
                continue
            for i, a in enumerate(values):
                for b in values[i + 1:]:
                    assert fuzz.token_set_ratio(a, b) <= 85, (ptype.name, name, a, b)


def test_build_is_atomic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRM_CACHE", str(tmp_path))
    path = ensure_catalogue(500, seed=3, progress=False)
    assert path.exists() and path.parent == tmp_path / "webshop"
    assert [f.name for f in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    mtime = path.stat().st_mtime_ns
    assert ensure_catalogue(500, seed=3, progress=False) == path and path.stat().st_mtime_ns == mtime
    other = tmp_path / "again.sqlite"
    build_catalogue(other, 500, seed=3, progress=False)
    a, b = Catalogue(path), Catalogue(other)
    assert [a.product_at(i) for i in range(0, 500, 50)] == [b.product_at(i) for i in range(0, 500, 50)]
    a.close()
    b.close()


def test_catalogue_connection_is_read_only(env):
    with pytest.raises(sqlite3.Error):
        env.catalogue._conn.execute("DELETE FROM products")
    other = WebShopEnv(split="test")
    try:
        assert other.catalogue is not env.catalogue and other.catalogue._conn is not env.catalogue._conn
    finally:
        other.close()


# ---------------------------------------------------------------------- search
def test_fts_query_quotes_every_token():
    assert fts_query("long lasting, NEAR(a b) title:x *") == '"long" OR "lasting" OR "near" OR "b" OR "title" OR "x"'
    assert fts_query("i need a") is None
    assert fts_query("'; DROP TABLE products; --") == '"drop" OR "table" OR "products"'
    assert fts_query("*()^\"") is None


def test_search_ranks_relevant_products(env):
    hits = env.catalogue.search("paraben free lipstick")
    assert len(hits) == MAX_RESULTS
    top = [env.catalogue.product(a) for a in hits[:10]]
    assert all(p.product_type == "lipstick" for p in top)
    assert env.catalogue.search("") == [] and env.catalogue.search("zzzqqq") == []


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_attempts_never_raise_and_leave_db_intact(env, text):
    count = len(env.catalogue)
    tables = env.catalogue._conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    env.reset(options={"task_id": "test-0"})
    obs, reward, term, trunc, info = env.step(f"search[{text}]")
    assert info["action_valid"] is True and not term
    assert obs.startswith("Back to Search [SEP] Page 1 (Total results: ")
    env.catalogue.search(text)
    assert len(env.catalogue) == count
    assert env.catalogue._conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall() == tables
    fresh = Catalogue(env.catalogue.path)
    assert len(fresh) == count and fresh.search("shampoo")
    fresh.close()


# ---------------------------------------------------------------------- pages and actions
def test_page_formats_and_navigation(env):
    obs, info = env.reset(options={"task_id": "test-3"})
    goal = env.goal_spec
    assert obs == f"WebShop [SEP] Instruction: [SEP] {goal.instruction} [SEP] Search"
    assert info["admissible_actions"] == [f"search[{search_text(goal.instruction)}]"]

    obs, *_, info = env.step(f"search[{goal.keywords}]")
    parts = obs.split(SEP)
    assert parts[:3] == ["Back to Search", "Page 1 (Total results: 50)", "Next >"]
    items = parts[3:]
    assert len(items) == 30 and all(items[i].startswith("B0") for i in range(0, 30, 3))
    assert all(items[i].startswith("$") for i in range(2, 30, 3))
    assert info["admissible_actions"][:2] == ["click[Back to Search]", "click[Next >]"]

    obs, *_, info = env.step("click[next >]")  # case-insensitive
    assert info["action_valid"] and obs.split(SEP)[:4] == ["Back to Search", "Page 2 (Total results: 50)",
                                                           "< Prev", "Next >"]
    obs, *_ = env.step("click[< Prev]")
    assert obs.split(SEP)[1] == "Page 1 (Total results: 50)"

    asin = items[0]
    product = env.catalogue.product(asin)
    obs, *_, info = env.step(f"click[{asin.lower()}]")
    parts = obs.split(SEP)
    assert parts[:2] == ["Back to Search", "< Prev"]
    assert parts[-4:] == ["Description", "Features", "Reviews", "Buy Now"]
    assert product.title in parts and f"Price: ${product.price:.2f}" in parts
    assert any(p.startswith("Rating: ") for p in parts)
    for name, values in product.options.items():
        i = parts.index(name)
        assert parts[i + 1: i + 1 + len(values)] == list(values)
        assert all(f"click[{v}]" in info["admissible_actions"] for v in values)

    obs, *_ = env.step("click[Description]")
    assert obs == f"Back to Search [SEP] < Prev [SEP] {product.description}"
    obs, *_ = env.step("click[< Prev]")
    obs, *_ = env.step("click[Features]")
    assert obs.split(SEP)[2:] == list(product.bullets)
    obs, *_ = env.step("click[< Prev]")
    assert obs.split(SEP)[-1] == "Buy Now"
    obs, *_ = env.step("click[< Prev]")
    assert obs.split(SEP)[1] == "Page 1 (Total results: 50)"
    obs, *_, info = env.step("click[Back to Search]")
    assert obs.startswith("WebShop [SEP] Instruction:")


def test_invalid_actions_are_explained(env):
    env.reset(options={"task_id": "test-4"})
    obs, r, term, _, info = env.step("click[Buy Now]")
    assert obs.startswith("Invalid action!") and info["action_valid"] is False and not term
    obs, *_, info = env.step("search[]")
    assert obs.startswith("Invalid action!") and "keywords" in obs and not info["action_valid"]
    obs, *_, info = env.step("buy the perfume")
    assert obs.startswith("Invalid action!") and "search[" in obs and not info["action_valid"]
    env.step("search[shampoo]")
    obs, *_, info = env.step("search[lipstick]")
    assert "only available on the search page" in obs and not info["action_valid"]
    assert "click[Back to Search]" in obs
    obs, *_, info = env.step("click[Description]")
    assert "'Description' is not clickable" in obs and not info["action_valid"]
    obs, *_, info = env.step("SEARCH[x]")
    assert not info["action_valid"]


# ---------------------------------------------------------------------- reward and progress
def test_reward_matches_webshop_formula(env):
    env.reset(options={"task_id": "test-10"})
    goal = env.goal_spec
    target = env.catalogue.product(goal.asin)
    n = len(goal.attributes) + len(goal.options) + 1
    assert type_reward(target, goal) == 1.0
    assert purchase_reward(target, goal, goal.options) == 1.0
    assert purchase_reward(target, goal, {}) == pytest.approx((len(goal.attributes) + 1) / n)
    wrong = {name: next(v for v in values if v != goal.options[name])
             for name, values in target.options.items() if len(values) > 1}
    expected = (len(goal.attributes) + len(goal.options) - len(wrong) + 1) / n
    mixed = {**goal.options, **wrong}
    # an unchosen value can still match through the title/description substring rule, as in WebShop
    assert purchase_reward(target, goal, mixed) >= expected - 1e-9
    other_type = next(
        env.catalogue.product_at(i) for i in range(1000)
        if env.catalogue.product_at(i).category != target.category
    )
    assert type_reward(other_type, goal) == 0.0 and purchase_reward(other_type, goal, {}) == 0.0


def test_price_cap_counts(env):
    import dataclasses

    env.reset(options={"task_id": "test-11"})
    goal = env.goal_spec
    target = env.catalogue.product(goal.asin)
    assert target.price <= goal.price_upper
    capped = dataclasses.replace(goal, price_upper=target.price - 0.01)
    n = len(goal.attributes) + len(goal.options) + 1
    assert purchase_reward(target, capped, goal.options) == pytest.approx((n - 1) / n)


def test_progress_components_and_wrong_purchase(env):
    obs, info = env.reset(options={"task_id": "test-12"})
    goal = env.goal_spec
    assert info["progress"] == 0.0
    obs, r1, *_, info = env.step(f"search[{goal.keywords}]")
    assert 0 < info["progress"] <= 1 / 3 and r1 == info["progress"]
    # open a product of another type and buy it without options: terminal, not a success
    env.step("click[Back to Search]")
    env.step("search[bluetooth speaker]" if goal.product_type != "bluetooth speaker" else "search[yoga mat]")
    first = env.admissible_actions()[2]
    env.step(first)
    obs, r, term, trunc, info = env.step(f"click[{BUY_NOW}]")
    assert term and not info["success"] and obs.startswith("Thank you for shopping with us!")
    assert info["admissible_actions"] is None
    obs, r, term, *_, info = env.step("click[Buy Now]")
    assert term and info["action_valid"] is False and r == 0.0


def test_oracle_buys_with_options_and_scores_one(env):
    obs, info = env.reset(options={"task_id": "test-20"})
    actions = []
    term = False
    while not term:
        a = env.expert_action()
        actions.append(a)
        obs, r, term, trunc, info = env.step(a)
    assert actions[0] == f"search[{env.goal_spec.keywords}]" and actions[-1] == "click[Buy Now]"
    assert info["success"] and info["progress"] == 1.0 and len(actions) <= 10
    assert "Your score (min 0.0, max 1.0) [SEP] 1.00" in obs


def test_oracle_on_train_goals():
    env = gym.make("agentrm/WebShop-v0", split="train")
    try:
        base = env.unwrapped
        wins = 0
        for task_id in base.task_ids("train")[:60]:
            obs, info = env.reset(options={"task_id": task_id})
            term = trunc = False
            while not (term or trunc):
                obs, _, term, trunc, info = env.step(base.expert_action())
            wins += info["success"]
        assert wins == 60
    finally:
        env.close()


# ---------------------------------------------------------------------- splits and snapshots
def test_splits_are_fixed_and_disjoint(env):
    test_ids = env.task_ids("test")
    assert len(test_ids) == TEST_SIZE and test_ids[17] == "test-17"
    train_ids = env.task_ids("train")
    assert len(train_ids) >= 1000 and train_ids[1234] == "train-1234"
    test_targets = {env.goals.goal(t).asin for t in test_ids}
    train_targets = {env.goals.goal(t).asin for t in train_ids[:600]}
    assert not test_targets & train_targets
    g = env.goals.goal("test-17")
    assert g.instruction == WebShopEnv(split="test").goals.goal("test-17").instruction
    assert g.price_upper >= 1_000_000 or g.instruction.endswith(f", and price lower than {g.price_upper:.2f} dollars")
    for bad in ("test-200", "train-x", "nope"):
        with pytest.raises(KeyError):
            env.reset(options={"task_id": bad})


def test_native_snapshot_is_exact_across_tasks(env):
    env.reset(options={"task_id": "test-30"})
    for _ in range(3):
        env.step(env.expert_action())
    state = pickle.loads(pickle.dumps(snapshot(env)))
    assert state.native is not None and state.native["kind"] == "item"
    tail = []
    for a in ["click[Features]", "click[< Prev]", env.expert_action() or "", "click[Buy Now]"]:
        tail.append((a, env.step(a)))
    env.reset(options={"task_id": "test-31"})
    env.step("search[honey]")
    restore(env, state)
    assert env.task_id == "test-30" and env.goal_spec.task_id == "test-30"
    again = [(a, env.step(a)) for a, _ in tail]
    assert again == tail
