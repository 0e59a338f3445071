"""The WebShop product catalogue: a seeded generator and its SQLite/FTS5 store.

WebShop's 1.18M scraped Amazon products are not obtainable offline, so we generate a catalogue with the
same fields (asin, title, price, category path, query, product type, attributes, options, description,
bullet points, rating, reviews) from :mod:`.vocab`. :func:`ensure_catalogue` builds it once into
``cache_dir("webshop")/catalogue-v<VERSION>-seed<seed>-n<n>.sqlite`` (written to a temporary file and
renamed, so concurrent builders never leave a half-written file) and every env then opens it read-only.
A cached file is checked once per process (``PRAGMA quick_check``, the meta table) and rebuilt if damaged.

Search is SQLite FTS5 with BM25 ranking over title, product type, attributes and options; the query is reduced to quoted word tokens joined with OR (Lucene's default "should" clauses
in WebShop's pyserini index), so no user text is ever parsed as FTS5 syntax.

Sizes: ``num_products`` from 400 (the goals' minimum) to 2,000,000 (WebShop's own catalogue has 1.18M).
Up to :data:`~.bulk.BULK_THRESHOLD` (the default 10,000) the catalogue is generated row by row and searched
exhaustively (every match scored by ``bm25()``), as it always was. Larger catalogues are generated in bulk
(:mod:`.bulk`: vectorised, a compact layout, 26 s of CPU and 278 MiB for 1.18M products) and searched top-k (:mod:`.topk`: a
bounded candidate set re-ranked with the same BM25 scores); :meth:`Catalogue.search_exhaustive` is the
exhaustive search on either layout.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agentrm_gym.core import AgentRMGymError
from agentrm_gym.envs.webshop import bulk
from agentrm_gym.envs.webshop.topk import TopKSearch
from agentrm_gym.envs.webshop.vocab import (
    AUDIENCES,
    BRAND_SYLLABLES,
    CATEGORIES,
    PRODUCT_TYPES,
    REVIEW_LINES,
    ProductType,
)
from agentrm_gym.files import cache_dir

#: Bump when the generator or schema changes, so stale cache files are not reused.
VERSION = 3
DEFAULT_NUM_PRODUCTS = 10_000
DEFAULT_SEED = 0
#: The sizes an env accepts: two test-split strides at least (``goals.TEST_SIZE * 2``), at most 2M.
MIN_NUM_PRODUCTS = 400
MAX_NUM_PRODUCTS = 2_000_000
#: WebShop's search returns at most this many results (5 pages of 10).
MAX_RESULTS = 50
PAGE_SIZE = 10
#: BM25 column weights: title, product_type, attributes, options. Bullet points and descriptions are not
#: indexed: ours restate the attributes, and their filler words only slowed every search down.
BM25_WEIGHTS = (8.0, 4.0, 3.0, 2.0)
MAX_QUERY_TOKENS = 32
#: Posting budget of a search, as a share of the catalogue: the query keeps its rarest words while the
#: sum of their document frequencies stays within it (the rarest word is always kept). BM25 gives common
#: words little weight, yet scoring their thousands of matches dominated the search time; this bounds
#: the work like Lucene's "max document frequency" stop-word filter, without a fixed stop list.
MAX_POSTINGS = 0.3

STOPWORDS = frozenset(
    "a an and are as at be by for from i i'm im in is it its looking me my need of on or please price "
    "lower than dollars the to want with would like find get buy some that this m s".split()
)


@dataclass(frozen=True)
class Product:
    """One catalogue product (the fields of WebShop's ``items_shuffle.json`` we use)."""

    asin: str
    title: str
    price: float
    category: str
    product_category: str
    query: str
    product_type: str
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    description: str
    bullets: tuple[str, ...]
    rating: float | None
    reviews: tuple[tuple[int, str, str], ...]


# ---------------------------------------------------------------------- generation
def _brands(rng: random.Random, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        k = rng.choice((2, 3, 3))
        names.add("".join(rng.choice(BRAND_SYLLABLES) for _ in range(k)).capitalize())
    return sorted(names)


def _asin(rng: random.Random, used: set[str]) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in used:
            used.add(asin)
            return asin


@cache
def _title_case(phrase: str) -> str:
    return " ".join(w if any(c.isdigit() for c in w) else w[:1].upper() + w[1:] for w in phrase.split())


#: The description's opening phrases and guarantee lengths (one of each is drawn per product).
OPENINGS = ("Thoughtfully designed", "Carefully made", "Built to last")
GUARANTEES = ("30-day", "60-day", "90-day")


def compose_product(ptype: ProductType, brand: str, asin: str, attributes: tuple[str, ...],
                    options: dict[str, tuple[str, ...]], descriptor: str, audience: str, shown: int, price: float,
                    opening: str, guarantee: str, rating: float | None,
                    reviews: tuple[tuple[int, str, str], ...]) -> Product:
    """The product whose draws are given: its title, description and bullet points are composed here, so
    the row generator and the bulk layout (:mod:`.bulk`, which stores only the draws) write the same text."""
    title = " ".join(
        p for p in (brand, _title_case(descriptor), _title_case(ptype.name), _title_case(audience)) if p
    )
    title += ", " + ", ".join(_title_case(a) for a in attributes[:shown])
    rest = ", ".join(attributes[:-1]) + f" and {attributes[-1]}" if len(attributes) > 1 else attributes[0]
    description = (
        f"The {brand} {ptype.name} is made {audience}. It is {rest}. "
        f"{opening} and backed by our {guarantee} satisfaction guarantee."
    )
    bullets = tuple(
        [f"{_title_case(a)}: a {ptype.name} you can rely on" for a in attributes]
        + [f"Available options: {', '.join(f'{k} ({len(v)})' for k, v in options.items())}" if options else
           "One size, ready to use"]
    )
    return Product(
        asin=asin,
        title=title,
        price=price,
        category=ptype.category,
        product_category=" › ".join((CATEGORIES[ptype.category], *ptype.path)),
        query=ptype.query,
        product_type=ptype.name,
        attributes=attributes,
        options=options,
        description=description,
        bullets=bullets,
        rating=rating,
        reviews=reviews,
    )


def _make_product(rng: random.Random, ptype: ProductType, brand: str, asin: str) -> Product:
    # the draws, in the order the catalogue of every seed was generated with (do not reorder them)
    attributes = tuple(rng.sample(ptype.attributes, rng.randint(3, min(5, len(ptype.attributes)))))
    options: dict[str, tuple[str, ...]] = {}
    for name, pool in ptype.options.items():
        k = rng.randint(min(2, len(pool)), min(5, len(pool)))
        chosen = set(rng.sample(pool, k))
        options[name] = tuple(v for v in pool if v in chosen)  # keep the pool's natural order
    descriptor = rng.choice(ptype.descriptors) if ptype.descriptors else ""
    audience = rng.choice(AUDIENCES[ptype.category])
    shown = rng.randint(1, 2)
    lo, hi = ptype.price
    price = round(rng.uniform(lo, hi), 2)
    opening = rng.choice(OPENINGS)
    guarantee = rng.choice(GUARANTEES)
    rating = None if rng.random() < 0.3 else round(rng.uniform(3.0, 5.0), 1)
    reviews = tuple(rng.sample(REVIEW_LINES, rng.randint(0, 3)))
    return compose_product(ptype, brand, asin, attributes, options, descriptor, audience, shown, price, opening,
                           guarantee, rating, reviews)


def generate_products(num_products: int = DEFAULT_NUM_PRODUCTS, seed: int = DEFAULT_SEED,
                      progress: bool = False) -> list[Product]:
    """Generate ``num_products`` products deterministically from ``seed`` (same seed, same catalogue)."""
    if num_products < 1:
        raise ValueError(f"num_products must be >= 1, got {num_products}")
    rng = random.Random(f"webshop-catalogue-{seed}")
    brands = {cat: _brands(rng, 60) for cat in sorted(CATEGORIES)}
    used: set[str] = set()
    products = []
    for i in tqdm(range(num_products), desc="WebShop catalogue", disable=not progress, unit="item"):
        ptype = PRODUCT_TYPES[i % len(PRODUCT_TYPES)] if i < len(PRODUCT_TYPES) else rng.choice(PRODUCT_TYPES)
        products.append(_make_product(rng, ptype, rng.choice(brands[ptype.category]), _asin(rng, used)))
    rng.shuffle(products)
    return products


# ---------------------------------------------------------------------- storage
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    asin TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    price REAL NOT NULL,
    category TEXT NOT NULL,
    product_category TEXT NOT NULL,
    query TEXT NOT NULL,
    product_type TEXT NOT NULL,
    attributes TEXT NOT NULL,
    options TEXT NOT NULL,
    description TEXT NOT NULL,
    bullets TEXT NOT NULL,
    rating REAL,
    reviews TEXT NOT NULL
);
CREATE VIRTUAL TABLE products_fts USING fts5(
    title, product_type, attributes, options, content='', tokenize='unicode61'
);
CREATE VIRTUAL TABLE products_vocab USING fts5vocab(products_fts, 'row');
"""


def check_num_products(num_products: object, minimum: int = MIN_NUM_PRODUCTS) -> int:
    """``num_products`` as an int, or a ValueError naming the accepted range."""
    if isinstance(num_products, bool) or not isinstance(num_products, int | np.integer) or not (
            minimum <= num_products <= MAX_NUM_PRODUCTS):
        raise ValueError(
            f"WebShop: num_products must be an integer from {minimum:,} to {MAX_NUM_PRODUCTS:,} (the default is "
            f"{DEFAULT_NUM_PRODUCTS:,}; WebShop's own catalogue has 1,180,000 products), got {num_products!r}"
        )
    return int(num_products)


def is_bulk(num_products: int) -> bool:
    """Whether a catalogue of this size is bulk-built (:mod:`.bulk`) and searched top-k (:mod:`.topk`)."""
    return num_products > bulk.BULK_THRESHOLD


def catalogue_path(num_products: int = DEFAULT_NUM_PRODUCTS, seed: int = DEFAULT_SEED) -> Path:
    """Where the catalogue of ``(num_products, seed)`` is cached."""
    num_products = check_num_products(num_products, minimum=1)
    if is_bulk(num_products):
        return cache_dir("webshop") / f"catalogue-bulk-v{bulk.BULK_VERSION}-seed{seed}-n{num_products}.sqlite"
    return cache_dir("webshop") / f"catalogue-v{VERSION}-seed{seed}-n{num_products}.sqlite"


def build_catalogue(path: Path, num_products: int = DEFAULT_NUM_PRODUCTS, seed: int = DEFAULT_SEED,
                    progress: bool = True) -> float:
    """Generate the catalogue and write it to ``path`` atomically; returns the build time in seconds."""
    num_products = check_num_products(num_products, minimum=1)
    start = time.perf_counter()
    products = [] if is_bulk(num_products) else generate_products(num_products, seed, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
            if is_bulk(num_products):
                extra = bulk.write_bulk(conn, num_products, seed, progress=progress)
            else:
                extra = {}
                _write_rows(conn, products)
            elapsed = time.perf_counter() - start
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("version", str(VERSION)), ("seed", str(seed)), ("num_products", str(num_products)),
                 ("build_seconds", f"{elapsed:.3f}"), *extra.items()],
            )
            conn.commit()
        finally:
            conn.close()
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return elapsed


def _write_rows(conn: sqlite3.Connection, products: list[Product]) -> None:
    conn.executescript(SCHEMA)
    conn.executemany(
        "INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            (i + 1, p.asin, p.title, p.price, p.category, p.product_category, p.query, p.product_type,
             json.dumps(p.attributes), json.dumps(p.options), p.description, json.dumps(p.bullets),
             p.rating, json.dumps(p.reviews))
            for i, p in enumerate(products)
        ),
    )
    conn.executemany(
        "INSERT INTO products_fts(rowid, title, product_type, attributes, options) VALUES (?,?,?,?,?)",
        (
            (i + 1, p.title, p.product_type, " ; ".join(p.attributes),
             " ; ".join(v for vals in p.options.values() for v in vals))
            for i, p in enumerate(products)
        ),
    )
    conn.execute("INSERT INTO products_fts(products_fts) VALUES ('optimize')")


class CatalogueError(AgentRMGymError, ValueError):
    """A catalogue file that cannot be read (the message names it)."""


#: How much of a bulk catalogue file a connection maps into memory (read-only, shared with the page cache).
MMAP_BYTES = 1 << 30
#: Cached catalogue files this process checked: ``(path, size, mtime_ns)``.
_VERIFIED: set[tuple[str, int, int]] = set()
#: Files above this size skip ``PRAGMA quick_check`` (seconds at 1.18M products): they are checked for a
#: cut-short copy (file size against the page count) and read where a search reads.
QUICK_CHECK_MAX_BYTES = 256 * 2**20


def catalogue_problem(path: Path, num_products: int | None = None, seed: int | None = None) -> str | None:
    """Why the catalogue file ``path`` cannot be used (``None`` if it can): SQLite's ``PRAGMA quick_check``
    (page and record structure; for files above :data:`QUICK_CHECK_MAX_BYTES`, the file size against the
    page count instead), then the meta table (version and layout, and ``num_products`` / ``seed`` if given),
    the product count and the search vocabulary. A few tens of ms for the default catalogue."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                check = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
                if check != ["ok"]:
                    found = [line.strip() for c in check for line in str(c).splitlines() if line.strip()]
                    return "PRAGMA quick_check: " + "; ".join(found)[:500]
            else:
                pages = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
                if pages != path.stat().st_size:
                    return f"{path.stat().st_size} bytes where SQLite's header says {pages}"
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            want = {"version": str(VERSION)}
            if num_products is not None:
                want["num_products"] = str(num_products)
                if is_bulk(num_products):
                    want.update(layout="bulk", bulk_version=str(bulk.BULK_VERSION))
            if seed is not None:
                want["seed"] = str(seed)
            wrong = {k: meta.get(k) for k, v in want.items() if meta.get(k) != v}
            if wrong:
                return f"meta {wrong} where {want} was expected"
            count_sql = "SELECT max(id) FROM products" if meta.get("layout") == "bulk" else "SELECT COUNT(*) FROM products"
            count = int(conn.execute(count_sql).fetchone()[0])
            if count != int(meta.get("num_products", -1)):
                return f"{count} products where the meta table says {meta.get('num_products')}"
            conn.execute("SELECT term, doc FROM products_vocab LIMIT 1").fetchall()
            if meta.get("layout") == "bulk":
                conn.execute("SELECT count(*) FROM terms").fetchall()
        finally:
            conn.close()
    except (sqlite3.Error, ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def ensure_catalogue(num_products: int = DEFAULT_NUM_PRODUCTS, seed: int = DEFAULT_SEED,
                     progress: bool = True) -> Path:
    """The path of the cached catalogue, building it first if it is not there yet.

    A cached file is checked once per process (:func:`catalogue_problem`); a damaged one (a disk error, a
    copy cut short, a file from another build) is rebuilt, with a warning, instead of failing later in
    ``gym.make`` or in the middle of an episode.
    """
    path = catalogue_path(num_products, seed)
    if path.exists():
        st = path.stat()
        if (str(path), st.st_size, st.st_mtime_ns) in _VERIFIED:
            return path
        problem = catalogue_problem(path, num_products, seed)
        if problem is None:
            _VERIFIED.add((str(path), st.st_size, st.st_mtime_ns))
            return path
        warnings.warn(f"{path}: the cached WebShop catalogue is damaged ({problem}); rebuilding it", stacklevel=2)
    build_catalogue(path, num_products, seed, progress=progress)
    st = path.stat()
    _VERIFIED.add((str(path), st.st_size, st.st_mtime_ns))
    return path


def fts_query(text: str, doc_freq: dict[str, int] | None = None, max_postings: int | None = None) -> str | None:
    """Turn free text into a safe FTS5 query: quoted word tokens joined with OR (``None`` if no words).

    Every token is a run of letters/digits wrapped in double quotes, so FTS5 operators (``NEAR``, ``AND``,
    ``*``, ``^``, column filters, parentheses) and SQL in the text are only ever searched as words. With
    ``doc_freq`` (word -> number of products containing it), the rarest words are kept while their
    frequencies sum to at most ``max_postings``; the rarest one is always kept.
    """
    tokens = query_terms(text, doc_freq, max_postings)
    if not tokens:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens)


def query_terms(text: str, doc_freq: dict[str, int] | None = None, max_postings: int | None = None) -> list[str]:
    """The words of :func:`fts_query`'s query, in its order (its phrases)."""
    tokens: list[str] = []
    for tok in re.findall(r"\w+", text.lower()):
        tok = tok.replace("_", "")
        if tok and tok not in STOPWORDS and tok not in tokens:
            tokens.append(tok)
        if len(tokens) >= MAX_QUERY_TOKENS:
            break
    if doc_freq is not None and max_postings is not None and tokens:
        kept: set[str] = set()
        total = 0
        for tok in sorted(tokens, key=lambda t: (doc_freq.get(t, 0), t)):
            total += doc_freq.get(tok, 0)
            if kept and total > max_postings:
                break
            kept.add(tok)
        tokens = [t for t in tokens if t in kept]
    return tokens


class Catalogue:
    """A read-only connection to a built catalogue: search and product look-up.

    Each env owns its own instance (SQLite connections are not shared across envs or threads), opened
    with ``mode=ro`` and ``PRAGMA query_only`` so nothing can modify the file. ``layout`` is ``"rows"``
    (full product rows, exhaustive search) or ``"bulk"`` (:mod:`.bulk`, top-k search).

    Args:
        path: the SQLite file (see :func:`ensure_catalogue`).
        cache_size: how many parsed products to keep in memory.
    """

    def __init__(self, path: Path | str, cache_size: int = 4096):
        self.path = Path(path)
        self._cache: dict[str, Product] = {}
        self._cache_size = cache_size
        self._weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        try:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._conn.execute("PRAGMA query_only = 1")
            meta = self.meta()
            self.layout = meta.get("layout", "rows")
            self._topk: TopKSearch | None = None
            if self.layout == "bulk":
                # memory-mapped reads: searches touch FTS5 pages all over a file of hundreds of MiB
                self._conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
                self._brands = json.loads(meta["brands"])
                self._topk = TopKSearch(self._conn, int(meta["num_products"]), int(meta["total_tokens"]),
                                        BM25_WEIGHTS)
                self._doc_freq = self._topk.doc_freq
            else:
                self._doc_freq = dict(self._conn.execute("SELECT term, doc FROM products_vocab").fetchall())
            self._max_postings = int(MAX_POSTINGS * len(self))
        except (sqlite3.Error, KeyError, ValueError) as exc:
            raise CatalogueError(f"{self.path}: not a readable WebShop catalogue ({type(exc).__name__}: {exc}); "
                                 "delete it and ensure_catalogue() builds it again") from exc

    def close(self) -> None:
        self._conn.close()

    def __len__(self) -> int:
        if self.layout == "bulk":  # ids are 1..n; COUNT(*) would read the whole table
            return int(self._conn.execute("SELECT max(id) FROM products").fetchone()[0])
        return int(self._conn.execute("SELECT COUNT(*) FROM products").fetchone()[0])

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def search(self, text: str, limit: int = MAX_RESULTS) -> list[str]:
        """The asins of the best ``limit`` products for ``text`` by BM25 (ties broken by id): exhaustive on
        the row layout, top-k (:mod:`.topk`, the same scores over a bounded candidate set) on a bulk one."""
        if self._topk is None:
            return self.search_exhaustive(text, limit)
        ids = self._topk.search(query_terms(text, self._doc_freq, self._max_postings), int(limit))
        if not ids:
            return []
        asin_of = dict(self._conn.execute(
            "SELECT id, asin FROM products WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)))
        return [asin_of[i] for i in ids]

    def search_exhaustive(self, text: str, limit: int = MAX_RESULTS) -> list[str]:
        """:meth:`search` scoring every match with FTS5's ``bm25()`` (the only search before bulk layouts)."""
        query = fts_query(text, self._doc_freq, self._max_postings)
        if query is None:
            return []
        # rank inside the FTS table first: a plain JOIN lets the planner probe the index once per product
        rows = self._conn.execute(
            f"SELECT p.asin FROM (SELECT rowid AS id, bm25(products_fts, {self._weights}) AS score "
            f"FROM products_fts WHERE products_fts MATCH ? ORDER BY score, rowid LIMIT ?) AS hits "
            f"CROSS JOIN products p ON p.id = hits.id ORDER BY hits.score, hits.id",
            (query, int(limit)),
        ).fetchall()
        return [r[0] for r in rows]

    def product(self, asin: str) -> Product | None:
        """The product with ``asin`` (case-insensitive), or ``None``."""
        asin = asin.upper()
        hit = self._cache.get(asin)
        if hit is not None:
            return hit
        row = self._conn.execute(f"SELECT {self._columns} FROM products WHERE asin = ?", (asin,)).fetchone()
        if row is None:
            return None
        product = self._decode(row)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[asin] = product
        return product

    def product_at(self, index: int) -> Product:
        """The product stored at 0-based position ``index``."""
        row = self._conn.execute(f"SELECT {self._columns} FROM products WHERE id = ?", (int(index) + 1,)).fetchone()
        if row is None:
            raise IndexError(f"no product at index {index}")
        return self._decode(row)

    @property
    def _columns(self) -> str:
        return bulk.PRODUCT_COLUMNS if self.layout == "bulk" else "*"

    def _decode(self, row: tuple) -> Product:
        return bulk.decode_product(row, self._brands) if self.layout == "bulk" else self._row_to_product(row)

    @staticmethod
    def _row_to_product(row: tuple) -> Product:
        (_, asin, title, price, category, product_category, query, product_type, attributes, options,
         description, bullets, rating, reviews) = row
        return Product(
            asin=asin,
            title=title,
            price=float(price),
            category=category,
            product_category=product_category,
            query=query,
            product_type=product_type,
            attributes=tuple(json.loads(attributes)),
            options={k: tuple(v) for k, v in json.loads(options).items()},
            description=description,
            bullets=tuple(json.loads(bullets)),
            rating=None if rating is None else float(rating),
            reviews=tuple((int(s), t, b) for s, t, b in json.loads(reviews)),
        )
