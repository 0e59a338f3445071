"""Large WebShop catalogues: a vectorised generator and a compact SQLite layout with a forward index.

Catalogues above :data:`BULK_THRESHOLD` products (WebShop's own has 1.18M) are built here; the default
10,000 and anything smaller keep the row-by-row generator of :mod:`.catalogue`, byte for byte.

* **Generation** draws every field column-wise with numpy (type, brand, descriptor, audience, an ordered
  sample of 3-5 attributes, a subset of 2-5 values per option group, price, rating, reviews), in the same
  distributions as the row generator, and the same brand names (the first draws of the seed's RNG).
* **Storage** keeps the draws, not the text: a product row is its asin, price in cents, rating x 10 and a
  21-byte ``draws`` blob; :func:`decode_product` composes the product on read with
  :func:`~.catalogue.compose_product`, the code the row generator uses, so the text is the same kind.
  The FTS5 table is the row layout's (same columns, tokenizer, BM25 weights), so the exhaustive search
  runs on either layout.
* **Search order**: products are stored by ascending document length (token count over the indexed
  columns; ties keep the draw order), so every FTS5 posting list lists its shortest documents first, the
  best BM25 scorers for the same term frequencies. Test goals, every ``stride``-th product, therefore
  cover the length range evenly.
* **Forward index**: each row also keeps its indexed tokens as uint16 codes (``term id << 2 | column``),
  and the ``terms`` table each term's id and document frequency; :mod:`.topk` scores candidates from them
  exactly as FTS5's ``bm25()`` would, without an FTS5 pass over every match.

Disk: 278 MiB at 1.18M products, 247 bytes a product (the FTS5 index 49%, the product rows with their
forward index 43%, the asin index 8%), against 1.16 KB a product in the row layout (111 MiB at 100k).
The build is ``journal_mode=OFF`` / ``synchronous=OFF`` into a temporary file renamed at the end, every
table filled by ``executemany`` in one transaction, FTS5's automerge off and one ``optimize`` at the end,
the asin index created after the insert: 26 s of CPU for 1.18M products (64 s wall on a shared 2-core
machine at load 7), ~1.1 GiB of memory at its peak. ``benchmarks/webshop_scale.py`` measures it.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import struct
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from agentrm_gym.envs.webshop.vocab import AUDIENCES, CATEGORIES, PRODUCT_TYPES, REVIEW_LINES

if TYPE_CHECKING:
    from agentrm_gym.envs.webshop.catalogue import Product

#: Catalogues with more products than this are bulk-built (this module); the default size is not.
BULK_THRESHOLD = 10_000
#: Bump when the bulk generator or layout changes (it names the cache file).
BULK_VERSION = 1
#: Column codes in the forward index, in the FTS5 table's column order.
TITLE, PRODUCT_TYPE, ATTRIBUTES, OPTIONS = range(4)
#: Term ids must fit the 14 bits the forward index gives them.
MAX_TERMS = 1 << 14
_NO = 255  # padding in the draws blob
_DRAWS = struct.Struct("<15B3H")  # type brand descriptor audience shown opening guarantee a0-a4 r0-r2, 3 masks
_ASIN_ALPHABET = np.frombuffer(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", dtype=np.uint8)
_BATCH = 50_000

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    asin TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    rating10 INTEGER,
    draws BLOB NOT NULL,
    terms BLOB NOT NULL
);
CREATE TABLE terms (term TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE, df INTEGER NOT NULL) WITHOUT ROWID;
CREATE VIRTUAL TABLE products_fts USING fts5(
    title, product_type, attributes, options, content='', tokenize='unicode61'
);
CREATE VIRTUAL TABLE products_vocab USING fts5vocab(products_fts, 'row');
"""


def tokens(text: str) -> list[str]:
    """FTS5 ``unicode61`` tokens of ASCII text (lower-cased runs of letters and digits)."""
    return re.findall(r"[a-z0-9]+", text.lower())


@cache
def brand_names(seed: int) -> dict[str, list[str]]:
    """The 60 brands per category, the row generator's (the first draws of the seed's RNG)."""
    from agentrm_gym.envs.webshop.catalogue import _brands

    rng = random.Random(f"webshop-catalogue-{seed}")
    return {cat: _brands(rng, 60) for cat in sorted(CATEGORIES)}


# ---------------------------------------------------------------------- generation
def _subset_masks(rng: np.random.Generator, pool: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row, a uniformly random subset of ``range(pool)`` of a size in ``[lo, hi]``, as a bitmask."""
    width = max(int(pool.max()), 1)
    keys = rng.random((len(pool), width))
    keys[np.arange(width)[None, :] >= pool[:, None]] = 2.0
    size = rng.integers(lo, hi + 1)
    threshold = np.sort(keys, axis=1)[np.arange(len(pool)), np.maximum(size - 1, 0)]
    chosen = (keys <= threshold[:, None]) & (size[:, None] > 0)
    return (chosen * (1 << np.arange(width))[None, :]).sum(axis=1).astype(np.uint16)


def _ordered_samples(rng: np.random.Generator, pool: np.ndarray, size: np.ndarray, width: int) -> np.ndarray:
    """Per row, ``size`` distinct indices of ``range(pool)`` in random order, padded with 255 to ``width``."""
    cols = max(int(pool.max()), width)
    keys = rng.random((len(pool), cols))
    keys[np.arange(cols)[None, :] >= pool[:, None]] = 2.0
    picks = np.argsort(keys, axis=1)[:, :width].astype(np.uint8)
    picks[np.arange(width)[None, :] >= size[:, None]] = _NO
    return picks


def generate_draws(num_products: int, seed: int) -> dict[str, np.ndarray]:
    """The draws of ``num_products`` products (one array per field, product order), from ``seed``."""
    rng = np.random.default_rng([seed, num_products, 0x5745_4253])
    n, types = num_products, PRODUCT_TYPES
    ptype = rng.integers(0, len(types), n)
    ptype[: len(types)] = np.arange(min(n, len(types)))  # every type at least once, as the row generator
    ptype = rng.permutation(ptype).astype(np.uint8)

    def per_type(values: list[int]) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)[ptype]

    n_attrs = per_type([len(t.attributes) for t in types])
    draws: dict[str, np.ndarray] = {"type": ptype}
    draws["brand"] = rng.integers(0, 60, n).astype(np.uint8)
    draws["attributes"] = _ordered_samples(rng, n_attrs, rng.integers(3, np.minimum(5, n_attrs) + 1), 5)
    masks = np.zeros((n, 3), dtype=np.uint16)
    for g in range(3):
        pool = per_type([len(list(t.options.values())[g]) if g < len(t.options) else 0 for t in types])
        masks[:, g] = _subset_masks(rng, pool, np.minimum(2, pool), np.minimum(5, pool))
    draws["options"] = masks
    draws["descriptor"] = (rng.random(n) * per_type([max(len(t.descriptors), 1) for t in types])).astype(np.uint8)
    draws["audience"] = (rng.random(n) * per_type([len(AUDIENCES[t.category]) for t in types])).astype(np.uint8)
    draws["shown"] = rng.integers(1, 3, n).astype(np.uint8)
    lo, hi = per_type([round(t.price[0] * 100) for t in types]), per_type([round(t.price[1] * 100) for t in types])
    draws["price_cents"] = rng.integers(lo, hi + 1)
    draws["opening"] = rng.integers(0, 3, n).astype(np.uint8)
    draws["guarantee"] = rng.integers(0, 3, n).astype(np.uint8)
    draws["rating10"] = np.where(rng.random(n) < 0.3, -1, rng.integers(30, 51, n))
    draws["reviews"] = _ordered_samples(rng, np.full(n, len(REVIEW_LINES)), rng.integers(0, 4, n), 3)
    draws["asin"] = _asins(rng, n)
    return draws


def _asins(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct asins ``B0`` + 8 characters, as an ``S10`` array."""
    space = len(_ASIN_ALPHABET) ** 8
    codes = rng.integers(0, space, n)
    while True:
        order = np.argsort(codes, kind="stable")
        dup = np.flatnonzero(codes[order][1:] == codes[order][:-1]) + 1
        if not dup.size:
            break
        codes[order[dup]] = rng.integers(0, space, dup.size)
    digits = (codes[:, None] // (len(_ASIN_ALPHABET) ** np.arange(7, -1, -1))[None, :]) % len(_ASIN_ALPHABET)
    chars = np.empty((n, 10), dtype=np.uint8)
    chars[:, 0], chars[:, 1] = ord("B"), ord("0")
    chars[:, 2:] = _ASIN_ALPHABET[digits]
    return chars.view("S10").ravel()


# ---------------------------------------------------------------------- documents
class _Documents:
    """The indexed text (FTS5 columns) and forward-index codes of products, from their draws.

    A document is five pieces: the title's head (brand, descriptor, type, audience), the attributes shown
    in the title, the product type, the attribute set and the option values. Each distinct piece is
    tokenized once (its FTS5 text, uint16 codes and token count); a product then costs a few list look-ups.
    The FTS5 text is not the displayed one (no title case, attributes in pool order): the table is
    contentless, only its tokens count, and they are the displayed title's.
    """

    def __init__(self, seed: int):
        self.brands = brand_names(seed)
        self.term_ids: dict[str, int] = {}
        self._phrases: dict[tuple[str, int], bytes] = {}

    def encode(self, phrases: list[str], column: int) -> bytes:
        out = []
        for phrase in phrases:
            hit = self._phrases.get((phrase, column))
            if hit is None:
                ids = [self.term_ids.setdefault(t, len(self.term_ids)) for t in tokens(phrase)]
                if len(self.term_ids) > MAX_TERMS:
                    raise ValueError(f"the bulk forward index holds at most {MAX_TERMS} terms")
                hit = self._phrases[(phrase, column)] = np.asarray([(i << 2) | column for i in ids], "<u2").tobytes()
            out.append(hit)
        return b"".join(out)

    def pieces(self, keys: np.ndarray, phrases_of) -> tuple[np.ndarray, list[str], list[bytes], np.ndarray]:
        """Dense ids of ``keys``, and per distinct key its text, codes and token count."""
        uniq, inverse = np.unique(keys, return_inverse=True)
        texts, codes = [], []
        for key in uniq.tolist():
            text, column, phrases = phrases_of(key)
            texts.append(text)
            codes.append(self.encode(phrases, column))
        return inverse, texts, codes, np.asarray([len(c) // 2 for c in codes], dtype=np.int64)

    def build(self, draws: dict[str, np.ndarray]) -> tuple[np.ndarray, list, list[bytes]]:
        """Per product: the token count, the four FTS5 column texts and the forward-index codes."""
        t = draws["type"].astype(np.int64)
        attrs = draws["attributes"].astype(np.int64)
        first = attrs[:, 0]
        second = np.where(draws["shown"] > 1, attrs[:, 1], _NO)
        attr_bits = ((attrs != _NO) << np.where(attrs == _NO, 0, attrs)).sum(axis=1)
        masks = draws["options"].astype(np.int64)
        types = PRODUCT_TYPES

        def head(key: int) -> tuple[str, int, list[str]]:
            ti, rest = divmod(key, 1 << 24)
            d, rest = divmod(rest, 1 << 16)
            a, b = divmod(rest, 1 << 8)
            pt = types[ti]
            words = [self.brands[pt.category][b], pt.descriptors[d] if pt.descriptors else "", pt.name,
                     AUDIENCES[pt.category][a]]
            return " ".join(w for w in words if w), TITLE, words

        def shown(key: int) -> tuple[str, int, list[str]]:
            ti, rest = divmod(key, 1 << 16)
            words = [types[ti].attributes[j] for j in divmod(rest, 1 << 8) if j != _NO]
            return " " + " ".join(words), TITLE, words

        def attributes(key: int) -> tuple[str, int, list[str]]:
            ti, bits = divmod(key, 1 << 16)
            words = [x for j, x in enumerate(types[ti].attributes) if bits >> j & 1]
            return " ; ".join(words), ATTRIBUTES, words

        def options(key: int) -> tuple[str, int, list[str]]:
            ti, bits = divmod(key, 1 << 48)
            words = [v for g, pool in enumerate(types[ti].options.values())
                     for j, v in enumerate(pool) if bits >> (16 * g + j) & 1]
            return " ; ".join(words), OPTIONS, words

        def name(key: int) -> tuple[str, int, list[str]]:
            return types[key].name, PRODUCT_TYPE, [types[key].name]

        parts = [
            self.pieces((t << 24) + (draws["descriptor"].astype(np.int64) << 16)
                        + (draws["audience"].astype(np.int64) << 8) + draws["brand"], head),
            self.pieces((t << 16) + (first << 8) + second, shown),
            self.pieces(t, name),
            self.pieces((t << 16) + attr_bits, attributes),
            self.pieces((t << 48) + masks[:, 0] + (masks[:, 1] << 16) + (masks[:, 2] << 32), options),
        ]
        lengths = sum(part[3][part[0]] for part in parts)
        (hi, ht, hc, _), (si, st, sc, _), (ti_, tt, tc, _), (ai, at, ac, _), (oi, ot, oc, _) = parts
        rows = zip(hi.tolist(), si.tolist(), ti_.tolist(), ai.tolist(), oi.tolist(), strict=True)
        texts, codes = [], []
        for h, s_, p, a, o in rows:
            texts.append((ht[h] + st[s_], tt[p], at[a], ot[o]))
            codes.append(hc[h] + sc[s_] + tc[p] + ac[a] + oc[o])
        return lengths, texts, codes


# ---------------------------------------------------------------------- build
def _batches(n: int) -> Iterator[range]:
    for start in range(0, n, _BATCH):
        yield range(start, min(n, start + _BATCH))


def write_bulk(conn: sqlite3.Connection, num_products: int, seed: int, progress: bool = True) -> dict[str, str]:
    """Generate the catalogue and write it into the empty database ``conn``; returns the meta entries
    written (the caller adds the build time and commits)."""
    draws = generate_draws(num_products, seed)
    docs = _Documents(seed)
    lengths, texts, codes = docs.build(draws)
    order = np.argsort(lengths, kind="stable")  # the search order: shortest first, ties in draw order
    draws = {k: v[order] for k, v in draws.items()}
    texts = [texts[i] for i in order.tolist()]
    codes = [codes[i] for i in order.tolist()]

    small = np.column_stack([draws[k] for k in ("type", "brand", "descriptor", "audience", "shown", "opening",
                                                "guarantee")] + [draws["attributes"], draws["reviews"]])
    packed = [_DRAWS.pack(*row, *m) for row, m in zip(small.tolist(), draws["options"].tolist(), strict=True)]
    asins = draws["asin"].astype("U10").tolist()
    prices, ratings = draws["price_cents"].tolist(), draws["rating10"].tolist()

    conn.execute("PRAGMA cache_size = -262144")  # 256 MiB of page cache while the index is built
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO products_fts(products_fts, rank) VALUES ('automerge', 0)")
    for batch in tqdm(list(_batches(num_products)), desc="WebShop SQLite", disable=not progress, unit="batch"):
        conn.executemany(
            "INSERT INTO products VALUES (?,?,?,?,?,?)",
            ((i + 1, asins[i], prices[i], None if ratings[i] < 0 else ratings[i], packed[i], codes[i])
             for i in batch),
        )
        conn.executemany(
            "INSERT INTO products_fts(rowid, title, product_type, attributes, options) VALUES (?,?,?,?,?)",
            ((i + 1, *texts[i]) for i in batch),
        )
    conn.execute("CREATE UNIQUE INDEX products_asin ON products(asin)")
    conn.execute("INSERT INTO products_fts(products_fts) VALUES ('optimize')")
    df = dict(conn.execute("SELECT term, doc FROM products_vocab").fetchall())
    if set(df) != set(docs.term_ids):  # the forward index must tokenize as FTS5 does
        diff = sorted(set(df) ^ set(docs.term_ids))[:10]
        raise ValueError(f"bulk catalogue: the forward index and FTS5 disagree on the terms {diff}")
    conn.executemany("INSERT INTO terms VALUES (?,?,?)", ((t, i, df[t]) for t, i in docs.term_ids.items()))
    return {
        "layout": "bulk", "bulk_version": str(BULK_VERSION), "total_tokens": str(int(lengths.sum())),
        "brands": json.dumps(docs.brands, sort_keys=True),
    }


# ---------------------------------------------------------------------- reading
PRODUCT_COLUMNS = "id, asin, price_cents, rating10, draws"


def decode_product(row: tuple, brands: dict[str, list[str]]) -> Product:
    """The :class:`~.catalogue.Product` of a bulk row (``PRODUCT_COLUMNS``)."""
    from agentrm_gym.envs.webshop.catalogue import GUARANTEES, OPENINGS, compose_product

    _, asin, price_cents, rating10, blob = row
    t, b, d, a, shown, opening, guarantee, *rest = _DRAWS.unpack(blob)
    attrs, reviews, masks = rest[:5], rest[5:8], rest[8:]
    ptype = PRODUCT_TYPES[t]
    attributes = tuple(ptype.attributes[j] for j in attrs if j != _NO)
    options = {name: tuple(v for j, v in enumerate(pool) if masks[g] >> j & 1)
               for g, (name, pool) in enumerate(ptype.options.items())}
    return compose_product(
        ptype, brands[ptype.category][b], asin, attributes, options,
        ptype.descriptors[d] if ptype.descriptors else "", AUDIENCES[ptype.category][a], shown,
        price_cents / 100, OPENINGS[opening], GUARANTEES[guarantee], None if rating10 is None else rating10 / 10,
        tuple(REVIEW_LINES[j] for j in reviews if j != _NO),
    )
