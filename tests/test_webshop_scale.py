"""WebShop at scale: the bulk catalogue (vectorised build, compact layout) and its top-k search.

A 50k-product catalogue (a few seconds to build) stands in for WebShop's 1.18M: the code paths are the
same above 10,000 products. Nothing here depends on machine speed.
"""

from __future__ import annotations

import hashlib
import sqlite3

import gymnasium as gym
import numpy as np
import pytest

import agentrm_gym  # noqa: F401  (registers the ids)
from agentrm_gym.envs.webshop import WebShopEnv
from agentrm_gym.envs.webshop.bulk import BULK_THRESHOLD, decode_product, generate_draws
from agentrm_gym.envs.webshop.catalogue import (
    BM25_WEIGHTS,
    DEFAULT_NUM_PRODUCTS,
    MAX_NUM_PRODUCTS,
    MAX_RESULTS,
    catalogue_path,
    ensure_catalogue,
    fts_query,
    generate_products,
    is_bulk,
    query_terms,
)
from agentrm_gym.envs.webshop.goals import search_text
from agentrm_gym.envs.webshop.reward import best_options, purchase_reward
from agentrm_gym.envs.webshop.topk import TopKSearch
from agentrm_gym.envs.webshop.vocab import AUDIENCES, PRODUCT_TYPES

SIZE = 50_000
#: sha256 of the default catalogue's products (10,000, seed 0) as the generator wrote them before bulk
#: catalogues existed: the default must stay byte for byte the same.
DEFAULT_DIGEST = "cadd765d447868878db4d69c9d5f0908fd38c3ef51349bcce8d977b2ca8ae33b"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTRM_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def env(cache):
    e = WebShopEnv(split="test", num_products=SIZE)
    yield e
    e.close()


def _goals(env: WebShopEnv, step: int = 10):
    return [env.goals.goal(t) for t in env.task_ids("test")[::step]]


# ---------------------------------------------------------------------- the size kwarg
@pytest.mark.parametrize("bad", [0, 399, MAX_NUM_PRODUCTS + 1, 1.5, "10000", True, None])
def test_num_products_is_validated_with_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"num_products must be an integer from 400 to 2,000,000.*got"):
        WebShopEnv(num_products=bad)
    with pytest.raises(ValueError, match="num_products"):
        gym.make("agentrm/WebShop-v0", num_products=bad)


def test_default_size_is_unchanged():
    assert DEFAULT_NUM_PRODUCTS == BULK_THRESHOLD == 10_000 and not is_bulk(DEFAULT_NUM_PRODUCTS)
    assert catalogue_path().name == "catalogue-v3-seed0-n10000.sqlite"
    h = hashlib.sha256()
    for p in generate_products(DEFAULT_NUM_PRODUCTS, 0):
        h.update(repr(tuple(p.__dict__.values())).encode())
    assert h.hexdigest() == DEFAULT_DIGEST
    default = WebShopEnv(split="test")
    try:
        assert default.catalogue.layout == "rows"
        hits = default.catalogue.search("paraben free lipstick")
        assert hits == default.catalogue.search_exhaustive("paraben free lipstick")  # exhaustive, as before
    finally:
        default.close()


# ---------------------------------------------------------------------- the bulk catalogue
def test_bulk_catalogue_is_built_once_and_cached(env):
    path = catalogue_path(SIZE, 0)
    assert env.catalogue.path == path and path.name == "catalogue-bulk-v1-seed0-n50000.sqlite"
    assert [f.name for f in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    mtime = path.stat().st_mtime_ns
    assert ensure_catalogue(SIZE, 0, progress=False) == path and path.stat().st_mtime_ns == mtime
    meta = env.catalogue.meta()
    assert meta["layout"] == "bulk" and meta["num_products"] == str(SIZE) and len(env.catalogue) == SIZE
    with pytest.raises(sqlite3.Error):
        env.catalogue._conn.execute("DELETE FROM products")


def test_bulk_generation_is_seeded():
    a, b, c = generate_draws(2_000, 1), generate_draws(2_000, 1), generate_draws(2_000, 2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["asin"], c["asin"])
    assert len(set(a["asin"].tolist())) == 2_000
    assert set(a["type"].tolist()) == set(range(len(PRODUCT_TYPES)))


def test_bulk_products_are_well_formed(env):
    cat = env.catalogue
    seen_types = set()
    for i in range(0, SIZE, 997):
        p = cat.product_at(i)
        ptype = next(t for t in PRODUCT_TYPES if t.name == p.product_type)
        seen_types.add(ptype.name)
        assert p.asin.startswith("B0") and len(p.asin) == 10 and cat.product(p.asin.lower()) == p
        assert 3 <= len(p.attributes) <= 5 and set(p.attributes) <= set(ptype.attributes)
        assert p.options.keys() == ptype.options.keys()
        for name, values in p.options.items():
            pool = ptype.options[name]
            assert min(2, len(pool)) <= len(values) <= min(5, len(pool))
            assert list(values) == [v for v in pool if v in values]  # the pool's order
        assert ptype.price[0] <= p.price <= ptype.price[1]
        assert p.title.split(" ")[0] in cat._brands[ptype.category]
        assert any(a.title() in p.title for a in AUDIENCES[ptype.category])
        assert p.description.startswith("The ") and p.bullets and (p.rating is None or 3.0 <= p.rating <= 5.0)
    assert len(seen_types) >= 30
    row = cat._conn.execute("SELECT id, asin, price_cents, rating10, draws FROM products WHERE id = 1").fetchone()
    assert decode_product(row, cat._brands) == cat.product_at(0)


def test_products_are_stored_shortest_document_first(env):
    lengths = [len(b) // 2 for (b,) in env.catalogue._conn.execute("SELECT terms FROM products ORDER BY id")]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]


# ---------------------------------------------------------------------- the forward index and the scorer
def test_forward_index_agrees_with_fts5(env):
    conn = env.catalogue._conn
    fts_df = dict(conn.execute("SELECT term, doc FROM products_vocab"))
    assert fts_df == env.catalogue._topk.doc_freq


@pytest.mark.parametrize("text", ["long lasting eau de parfum 6.76 fl oz vanilla", "shampoo",
                                  "i need a gluten free protein bar in salted caramel flavor", "usb c"])
def test_scores_are_fts5_bm25_bit_for_bit(env, text):
    cat, topk = env.catalogue, env.catalogue._topk
    weights = ", ".join(str(w) for w in BM25_WEIGHTS)
    rows = cat._conn.execute(
        f"SELECT rowid, bm25(products_fts, {weights}) FROM products_fts WHERE products_fts MATCH ? LIMIT 300",
        (fts_query(text, cat._doc_freq, cat._max_postings),)).fetchall()
    ids, scores, *_ = topk.score(topk.fetch([r[0] for r in rows]), query_terms(text, cat._doc_freq, cat._max_postings))
    assert dict(zip(ids.tolist(), scores.tolist(), strict=True)) == dict(rows)


def test_topk_is_exhaustive_when_every_match_is_a_candidate(env):
    cat = env.catalogue
    meta = cat.meta()
    everything = TopKSearch(cat._conn, SIZE, int(meta["total_tokens"]), BM25_WEIGHTS, per_term=SIZE)
    for goal in _goals(env, 40):
        for text in (goal.keywords, search_text(goal.instruction)):
            ids = everything.search(query_terms(text, cat._doc_freq, cat._max_postings), MAX_RESULTS)
            assert [cat.product_at(i - 1).asin for i in ids] == cat.search_exhaustive(text)


def test_topk_matches_exhaustive_on_goal_searches(env):
    cat = env.catalogue
    overlaps = []
    for goal in _goals(env, 5):
        for text in (goal.keywords, search_text(goal.instruction)):
            ours, exhaustive = cat.search(text), cat.search_exhaustive(text)
            assert len(ours) == len(exhaustive) == MAX_RESULTS
            overlaps.append(len(set(ours) & set(exhaustive)) / MAX_RESULTS)
    assert np.mean(overlaps) >= 0.95, np.mean(overlaps)
    assert cat.search("") == [] and cat.search("zzzqqq") == [] and cat.search('"; DROP TABLE products; --') == []


# ---------------------------------------------------------------------- goals and episodes
def test_goal_products_are_findable(env):
    cat = env.catalogue
    for goal in _goals(env, 5):
        target = cat.product(goal.asin)
        assert goal.asin in cat.search(target.title)[:10]  # its own title finds it
        hits = cat.search(goal.keywords)[:10]  # and the goal's terms find a product that fully matches
        assert any(purchase_reward(cat.product(a), goal, best_options(cat.product(a), goal)) >= 1 - 1e-9
                   for a in hits), goal.task_id


def test_expert_episodes_succeed_at_scale(env):
    for task_id in env.task_ids("test")[::10]:
        env.reset(options={"task_id": task_id})
        term, info, steps = False, {}, 0
        while not term and steps < 10:
            _, _, term, _, info = env.step(env.expert_action() or "")
            steps += 1
        assert info["success"], task_id
