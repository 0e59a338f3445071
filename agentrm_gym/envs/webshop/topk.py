"""Top-k search over a bulk catalogue: bounded FTS5 candidate reads, re-ranked with FTS5's own BM25.

FTS5's ``bm25()`` scores every row that matches a query, after counting every posting of every query
term (its IDF pass), so the exhaustive search grows with the number of matches (a median 234 ms of CPU
per goal search at 1.18M products, ``benchmarks/webshop_scale.py``).
:class:`TopKSearch` reads a bounded number of candidates instead, and FTS5 scores none of them:

1. **Shortest full matches**: a bulk catalogue stores its products shortest document first (:mod:`.bulk`),
   so the first ``per_set`` rows of an FTS5 AND of the query's terms are the documents with every term
   that BM25's length normalisation favours. FTS5 only walks posting lists here, up to ``LIMIT``.
2. **Title tier**: the title weighs 8 (attributes 3), so a longer document that repeats more query terms in
   its title can outscore those. If the AND had more rows than were read, the richest title among the
   candidates (most query terms that only some candidates have in the title) gives a pattern, and the
   next ``per_title`` documents with every term and that pattern in the title (FTS5 column filters,
   seeking past the rows already read) join the candidates.
3. **Few full matches**: if fewer than ``per_set`` documents have every term (all are read), the
   ``per_term`` shortest documents of each term join, the best of those names a term subset (the query
   terms it contains), and the shortest documents with that subset, then with all of it but one term,
   join in turn.
4. **Re-ranking**: every candidate gets the score ``bm25()`` would give it, computed with numpy from the
   forward index of :mod:`.bulk` with FTS5's formula and constants (k1 = 1.2, b = 0.75, the column
   weights, IDF from the document frequencies FTS5 counted, the document's length over the average),
   operation for operation, so the scores are bit-identical. The best ``limit`` by (score, id) are
   returned: ties are broken as in the exhaustive search.

Every returned score is the exhaustive one, so the result is the exhaustive top-k whenever those documents
are candidates, which is always the case when every query term is in at most ``per_term`` documents.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence

import numpy as np

#: FTS5's bm25() constants (``fts5_aux.c``).
K1, B = 1.2, 0.75
PER_TERM = 20
PER_SET = 300
PER_TITLE = 150


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _and(terms: Sequence[str]) -> str:
    return " AND ".join(map(_quoted, terms))


class TopKSearch:
    """Bounded top-k BM25 search over one bulk catalogue connection.

    Args:
        conn: a connection to a bulk catalogue (``products.terms``, the ``terms`` table, ``products_fts``).
        num_docs: the number of products (FTS5 rows).
        total_tokens: the number of indexed tokens over all rows (FTS5's average length is this / num_docs).
        weights: the BM25 column weights (title, product type, attributes, options).
        per_term: documents read per query term when few documents have every term.
        per_set: documents read per conjunctive (AND) query.
        per_title: documents read with the richest title pattern.
    """

    def __init__(self, conn: sqlite3.Connection, num_docs: int, total_tokens: int, weights: Sequence[float],
                 per_term: int = PER_TERM, per_set: int = PER_SET, per_title: int = PER_TITLE):
        self._conn = conn
        self.num_docs = num_docs
        self.avgdl = total_tokens / num_docs  # FTS5: (double)nToken / (double)nRow
        self.weights = np.asarray(weights, dtype=np.float64)
        self.per_term, self.per_set, self.per_title = per_term, per_set, per_title
        rows = conn.execute("SELECT term, id, df FROM terms").fetchall()
        self.term_ids = {t: i for t, i, _ in rows}
        self.doc_freq = {t: df for t, _, df in rows}
        self._num_terms = max(self.term_ids.values(), default=-1) + 1

    def idf(self, term: str) -> float:
        """FTS5's IDF: ``log((N - n + 0.5) / (n + 0.5))``, or 1e-6 where that is not positive."""
        n = self.doc_freq.get(term, 0)
        idf = math.log((self.num_docs - n + 0.5) / (n + 0.5))
        return idf if idf > 0.0 else 1e-6

    def search(self, terms: Sequence[str], limit: int) -> list[int]:
        """The ids of the best ``limit`` products for the query phrases ``terms`` (FTS5 query order)."""
        phrases = list(terms)
        known = [t for t in phrases if self.doc_freq.get(t, 0) > 0]
        if not known or limit <= 0:
            return []
        pool = _Pool(self, phrases)
        subset = known
        read = pool.add(self._candidates(_and(subset), self.per_set))
        if len(read) < self.per_set:  # every document with all the terms is in: widen around the best one
            for term in known:
                pool.add(self._candidates(_quoted(term), self.per_term))
            subset = pool.terms_of_best()
            if subset != known:
                read = pool.add(self._candidates(_and(subset), self.per_set))
            if len(read) < self.per_set and len(subset) > 1:  # and every one with its terms: add the near ones
                pool.add(self._candidates(" OR ".join(f"({_and([t for t in subset if t != drop])})"
                                                      for drop in subset), self.per_set))
            if len(pool) < limit:  # too few: as many of each term's postings as results
                for term in known:
                    pool.add(self._candidates(_quoted(term), limit))
        if len(read) >= self.per_set:  # more documents have the terms than were read
            pattern = pool.title_pattern(subset)
            if pattern:
                query = " AND ".join([*(f"title : {_quoted(t)}" for t in pattern),
                                      *(_quoted(t) for t in subset if t not in pattern)])
                pool.add(self._candidates(query, self.per_title, after=max(read)))
        return pool.best(limit)

    def _candidates(self, query: str, limit: int, after: int = 0) -> dict[int, bytes]:
        """The first ``limit`` products (in search order) after id ``after`` matching the FTS5 ``query``, with
        their forward index; FTS5 only walks postings (seeking past ``after``), it scores nothing."""
        return dict(self._conn.execute(
            "SELECT f.rowid, p.terms FROM products_fts f CROSS JOIN products p ON p.id = f.rowid "
            "WHERE products_fts MATCH ? AND f.rowid > ? LIMIT ?", (query, after, limit)))

    def fetch(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The forward index of the products ``ids`` (for :meth:`score`)."""
        return dict(self._conn.execute("SELECT id, terms FROM products WHERE id IN (SELECT value FROM json_each(?))",
                                       (json.dumps([int(i) for i in ids]),)))

    def score(self, docs: dict[int, bytes], phrases: Sequence[str]) -> tuple[np.ndarray, ...]:
        """``bm25()``'s score (negative, lower is better) of each product of ``docs`` (id -> forward index) for
        the query phrases; returns the ids, their scores and two (phrase x product) matrices: which phrases
        each product contains, and which it has in its title."""
        ids = np.fromiter(docs.keys(), dtype=np.int64, count=len(docs))
        blobs = list(docs.values())
        lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) // 2
        codes = np.frombuffer(b"".join(blobs), dtype="<u2")
        phrase_of = np.full(self._num_terms, -1, dtype=np.int64)
        for p, term in enumerate(phrases):
            tid = self.term_ids.get(term)
            if tid is not None:
                phrase_of[tid] = p
        phrase = phrase_of[codes >> 2]
        hit = phrase >= 0
        column = (codes & 3)[hit]
        cell = phrase[hit] * len(ids) + np.repeat(np.arange(len(ids)), lengths)[hit]
        shape = (len(phrases), len(ids))
        freq = np.bincount(cell, weights=self.weights[column], minlength=shape[0] * shape[1]).reshape(shape)
        in_title = np.bincount(cell[column == 0], minlength=shape[0] * shape[1]).reshape(shape) > 0
        # fts5Bm25Function's arithmetic, operation for operation, so the scores are bit-identical
        norm = K1 * ((1 - B) + (B * lengths.astype(np.float64)) / self.avgdl)
        score = np.zeros(len(ids))
        for p, term in enumerate(phrases):
            f = freq[p]
            score = score + self.idf(term) * ((f * (K1 + 1.0)) / (f + norm))
        return ids, -score, freq > 0, in_title


class _Pool:
    """The candidates of one search, each scored once when it joins."""

    def __init__(self, search: TopKSearch, phrases: list[str]):
        self._search, self._phrases = search, phrases
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._seen: set[int] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, docs: dict[int, bytes]) -> dict[int, bytes]:
        """Score the new ones of ``docs``; returns ``docs``."""
        new = {i: b for i, b in docs.items() if i not in self._seen}
        if new:
            self._seen.update(new)
            self._parts.append(self._search.score(new, self._phrases))
        return docs

    def _arrays(self) -> tuple[np.ndarray, ...]:
        if len(self._parts) > 1:
            self._parts = [tuple(np.concatenate(a, axis=-1) for a in zip(*self._parts, strict=True))]
        return self._parts[0]

    def best(self, limit: int) -> list[int]:
        if not self._parts:
            return []
        ids, scores, _, _ = self._arrays()
        return ids[np.lexsort((ids, scores))[:limit]].tolist()

    def terms_of_best(self) -> list[str]:
        """The query terms the best candidate contains."""
        ids, scores, matched, _ = self._arrays()
        return [self._phrases[j] for j in np.flatnonzero(matched[:, np.lexsort((ids, scores))[0]]).tolist()]

    def title_pattern(self, subset: list[str]) -> list[str]:
        """The terms of ``subset`` in the title of the richest candidate having all of them: the one with the
        most terms that some such candidates have in the title and others do not (then the best score)."""
        ids, scores, matched, in_title = self._arrays()
        rows = [self._phrases.index(t) for t in subset]
        full = matched[rows].all(axis=0)
        titled = in_title[rows][:, full]
        optional = titled.any(axis=1) & ~titled.all(axis=1)
        if not optional.any():
            return []
        best = np.lexsort((ids[full], scores[full], -titled[optional].sum(axis=0)))[0]
        return [subset[j] for j in np.flatnonzero(titled[:, best] & optional).tolist()]
