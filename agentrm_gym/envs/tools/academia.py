"""Academia: a generated citation network (papers, authors, venues, citations) and AgentBoard's graph tools.

The database replaces AgentBoard's DBLP pickles: authors with organisations, papers with year and venue,
authorship and citation edges, all generated deterministically from a seed. The tools keep AgentBoard's
names and inputs: ``loadPaperNet``/``loadAuthorNet`` must be called before the graph they load is
queried, nodes are paper titles (PaperNet) and author names (AuthorNet).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from agentrm_gym.envs.tools.knowledge import Knowledge, goal_first
from agentrm_gym.envs.tools.question import Question
from agentrm_gym.envs.tools.schema import Param, Tool, ToolError
from agentrm_gym.envs.tools.toolset import ToolSet, connect

FIRST = ("Alice", "Bo", "Carlos", "Dana", "Elif", "Feng", "Grace", "Hiro", "Ines", "Jonas", "Kavya", "Liam",
         "Mei", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen", "Yusuf")
LAST = ("Abe", "Berg", "Chen", "Diaz", "Evans", "Fischer", "Gupta", "Hansen", "Ito", "Jensen", "Kim", "Lopez",
        "Moreau", "Novak", "Okafor", "Park", "Rossi", "Sato", "Tanaka", "Urban", "Varga", "Weber", "Xu", "Zhou")
ORGS = ("University of Northfield", "Lakeside Institute of Technology", "Eastbrook University",
        "Westmoor AI Lab", "Pinecrest College", "Harbor Research Center", "Summit University",
        "Riverside Polytechnic", "Global Data Institute", "Meridian University")
VENUES = ("NeurIPS", "ICML", "ICLR", "ACL", "EMNLP", "CVPR", "KDD", "AAAI", "IJCAI", "SIGIR", "WWW", "NAACL")
ADJ = ("Efficient", "Robust", "Scalable", "Adaptive", "Neural", "Sparse", "Hierarchical", "Contrastive",
       "Probabilistic", "Federated", "Interpretable", "Self-Supervised", "Multilingual", "Causal")
TOPIC = ("Graph Learning", "Language Models", "Reinforcement Learning", "Image Retrieval", "Question Answering",
         "Time Series Forecasting", "Program Synthesis", "Knowledge Distillation", "Speech Recognition",
         "Recommender Systems", "Domain Adaptation", "Text Summarization", "Object Detection", "Planning")
SUFFIX = ("", " at Scale", " with Transformers", " via Meta-Learning", " for Low-Resource Settings",
          " in the Wild", " Revisited", " without Labels")
NUM_AUTHORS = 160
NUM_PAPERS = 360

GRAPHS = ("PaperNet", "AuthorNet")
#: Most seen names paired up for the edge checks in the admissible list.
PAIR_POOL = 10


def build_database(seed: int = 0) -> sqlite3.Connection:
    """Generate the citation network deterministically from ``seed``."""
    rng = random.Random(f"academia-db-{seed}")
    conn = connect()
    conn.executescript(
        """
        CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, org TEXT NOT NULL);
        CREATE TABLE papers (id INTEGER PRIMARY KEY, title TEXT UNIQUE NOT NULL, year INTEGER NOT NULL,
                             venue TEXT NOT NULL);
        CREATE TABLE authorship (paper_id INTEGER, author_id INTEGER, position INTEGER,
                                 PRIMARY KEY (paper_id, author_id));
        CREATE TABLE citations (citing INTEGER, cited INTEGER, PRIMARY KEY (citing, cited));
        CREATE INDEX authorship_author ON authorship(author_id);
        CREATE INDEX citations_cited ON citations(cited);
        """
    )
    names = rng.sample([f"{f} {last}" for f in FIRST for last in LAST], NUM_AUTHORS)
    conn.executemany("INSERT INTO authors VALUES (?, ?, ?)",
                     [(i, n, rng.choice(ORGS)) for i, n in enumerate(names)])
    titles = rng.sample([f"{a} {t}{s}" for a in ADJ for t in TOPIC for s in SUFFIX], NUM_PAPERS)
    papers = [(i, t, rng.randint(2012, 2023), rng.choice(VENUES)) for i, t in enumerate(titles)]
    conn.executemany("INSERT INTO papers VALUES (?, ?, ?, ?)", papers)
    # authors cluster in small groups so that co-authorship repeats (edges with several papers)
    groups = [list(range(i, min(i + 8, NUM_AUTHORS))) for i in range(0, NUM_AUTHORS, 8)]
    authorship = []
    for pid, *_ in papers:
        group = rng.choice(groups)
        for pos, aid in enumerate(rng.sample(group, rng.randint(1, 4))):
            authorship.append((pid, aid, pos))
    conn.executemany("INSERT INTO authorship VALUES (?, ?, ?)", authorship)
    by_year = sorted(papers, key=lambda p: p[2])
    cites = set()
    for idx, (pid, _, year, _) in enumerate(by_year):
        older = [p[0] for p in by_year[:idx] if p[2] < year]
        for cited in rng.sample(older, min(len(older), rng.randint(0, 5))):
            cites.add((pid, cited))
    conn.executemany("INSERT INTO citations VALUES (?, ?)", sorted(cites))
    conn.commit()
    return conn


class AcademiaTools(ToolSet):
    """AgentBoard's academia tools over the generated citation network."""

    name = "academia"
    tools = (
        Tool("loadPaperNet", "Load PaperNet. In this net, nodes are papers and edges are citation relationships "
             "between papers.", (), "A message that the net is loaded."),
        Tool("loadAuthorNet", "Load AuthorNet. In this net, nodes are authors and edges are collaboration "
             "relationships between authors.", (), "A message that the net is loaded."),
        Tool("neighbourCheck", "List the first-order neighbors connected to the node. In PaperNet, neighbours "
             "are papers that cite or are cited by the paper; in AuthorNet, co-authors.",
             (Param("graph", "string", "The name of the graph to check: 'PaperNet' or 'AuthorNet'."),
              Param("node", "string", "The node (paper title or author name) to list the neighbours of.")),
             "A list of neighbouring node names."),
        Tool("paperNodeCheck", "Return detailed attribute information of a paper node.",
             (Param("node", "string", "The paper title."),),
             "The paper's authors, year, venue and number of citations."),
        Tool("authorNodeCheck", "Return detailed attribute information of an author node.",
             (Param("node", "string", "The author's name."),),
             "The author's name, organization and papers."),
        Tool("authorEdgeCheck", "Return the collaboration between two authors.",
             (Param("node1", "string", "The first author's name."),
              Param("node2", "string", "The second author's name.")),
             "The papers the two authors wrote together."),
        Tool("paperEdgeCheck", "Return the citation relationship between two papers.",
             (Param("node1", "string", "The first paper title."),
              Param("node2", "string", "The second paper title.")),
             "Whether the first paper cites the second."),
    )

    def learn(self, tool: str, args: dict[str, Any], observation: str, knowledge: Knowledge) -> None:
        """Tell paper titles from author names by where an output shows them."""
        try:
            value = json.loads(observation)
        except ValueError:
            for match in re.finditer(r"'([^']+)'", observation):  # paperEdgeCheck's sentence
                knowledge.add("obs", "paper", match.group(1))
            return
        if isinstance(value, list):  # neighbourCheck
            kind = "paper" if args.get("graph") == "PaperNet" else "author"
            for node in value:
                knowledge.add("obs", kind, node)
        elif isinstance(value, dict):
            for key, kind in (("title", "paper"), ("papers", "paper"), ("name", "author"), ("authors", "author")):
                items = value.get(key)
                for node in items if isinstance(items, list) else [items]:
                    if isinstance(node, str):
                        knowledge.add("obs", kind, node)

    def candidates(self, knowledge: Knowledge) -> Iterator[tuple[str, dict[str, Any]]]:
        """Checks in the loaded graphs on the seen papers (quoted in the goal or shown as titles) and authors
        (named in the goal or shown as authors); edge checks on pairs of up to 10 of each."""
        loaded = self.session.get("loaded", [])
        papers = knowledge.strings(("goal",), ("quoted",)) + knowledge.strings(("obs",), ("paper",))
        authors = knowledge.strings(("goal",), ("name",)) + knowledge.strings(("obs",), ("author",))
        for graph, nodes, node_tool, edge_tool in (("PaperNet", papers, "paperNodeCheck", "paperEdgeCheck"),
                                                   ("AuthorNet", authors, "authorNodeCheck", "authorEdgeCheck")):
            if graph not in loaded:
                continue
            nodes = list(dict.fromkeys(nodes))
            for node in nodes:
                yield node_tool, {"node": node}
                yield "neighbourCheck", {"graph": graph, "node": node}
            for a, b in itertools.permutations(goal_first(knowledge, nodes, PAIR_POOL), 2):
                yield edge_tool, {"node1": a, "node2": b}

    def _require(self, graph: str) -> None:
        if graph not in self.session.get("loaded", []):
            raise ToolError(f"{graph} is not loaded. Please call load{graph} first.")

    def _paper(self, title: str) -> sqlite3.Row:
        row = self.one("SELECT * FROM papers WHERE title = ? COLLATE NOCASE", (title.strip(),))
        if row is None:
            raise ToolError(f"there is no paper titled {title!r} in PaperNet.")
        return row

    def _author(self, name: str) -> sqlite3.Row:
        row = self.one("SELECT * FROM authors WHERE name = ? COLLATE NOCASE", (name.strip(),))
        if row is None:
            raise ToolError(f"there is no author named {name!r} in AuthorNet.")
        return row

    def _load(self, graph: str) -> str:
        self.session["loaded"] = sorted({*self.session.get("loaded", []), graph})
        return f"{graph} is loaded."

    def loadPaperNet(self) -> str:  # noqa: N802 - AgentBoard's tool name
        return self._load("PaperNet")

    def loadAuthorNet(self) -> str:  # noqa: N802
        return self._load("AuthorNet")

    def neighbourCheck(self, graph: str, node: str) -> list[str]:  # noqa: N802
        if graph not in GRAPHS:
            raise ToolError(f"unknown graph {graph!r}; use 'PaperNet' or 'AuthorNet'.")
        self._require(graph)
        if graph == "PaperNet":
            pid = self._paper(node)["id"]
            rows = self.all(
                "SELECT title FROM papers WHERE id IN (SELECT cited FROM citations WHERE citing = ? "
                "UNION SELECT citing FROM citations WHERE cited = ?) ORDER BY title", (pid, pid))
        else:
            aid = self._author(node)["id"]
            rows = self.all(
                "SELECT DISTINCT a.name FROM authorship x JOIN authorship y ON x.paper_id = y.paper_id "
                "JOIN authors a ON a.id = y.author_id WHERE x.author_id = ? AND y.author_id != ? ORDER BY a.name",
                (aid, aid))
        return [r[0] for r in rows]

    def paperNodeCheck(self, node: str) -> dict[str, Any]:  # noqa: N802
        self._require("PaperNet")
        paper = self._paper(node)
        authors = [r[0] for r in self.all(
            "SELECT a.name FROM authorship x JOIN authors a ON a.id = x.author_id WHERE x.paper_id = ? "
            "ORDER BY x.position", (paper["id"],))]
        n_cited = self.one("SELECT COUNT(*) FROM citations WHERE cited = ?", (paper["id"],))[0]
        return {"title": paper["title"], "authors": authors, "year": paper["year"], "venue": paper["venue"],
                "n_citation": n_cited}

    def authorNodeCheck(self, node: str) -> dict[str, Any]:  # noqa: N802
        self._require("AuthorNet")
        author = self._author(node)
        papers = [r[0] for r in self.all(
            "SELECT p.title FROM authorship x JOIN papers p ON p.id = x.paper_id WHERE x.author_id = ? "
            "ORDER BY p.year, p.title", (author["id"],))]
        return {"name": author["name"], "org": author["org"], "papers": papers}

    def authorEdgeCheck(self, node1: str, node2: str) -> dict[str, Any]:  # noqa: N802
        self._require("AuthorNet")
        a, b = self._author(node1), self._author(node2)
        papers = [r[0] for r in self.all(
            "SELECT p.title FROM papers p WHERE p.id IN (SELECT paper_id FROM authorship WHERE author_id = ?) "
            "AND p.id IN (SELECT paper_id FROM authorship WHERE author_id = ?) ORDER BY p.year, p.title",
            (a["id"], b["id"]))]
        if not papers:
            return f"There is no edge between {a['name']} and {b['name']} in AuthorNet."
        return {"authors": [a["name"], b["name"]], "papers": papers}

    def paperEdgeCheck(self, node1: str, node2: str) -> str:  # noqa: N802
        self._require("PaperNet")
        a, b = self._paper(node1), self._paper(node2)
        if self.one("SELECT 1 FROM citations WHERE citing = ? AND cited = ?", (a["id"], b["id"])):
            return f"'{a['title']}' cites '{b['title']}'."
        if self.one("SELECT 1 FROM citations WHERE citing = ? AND cited = ?", (b["id"], a["id"])):
            return f"'{a['title']}' is cited by '{b['title']}'."
        return f"There is no citation between '{a['title']}' and '{b['title']}'."


# --------------------------------------------------------------------------- questions
def _random_paper(conn: sqlite3.Connection, rng: random.Random, where: str = "1") -> sqlite3.Row:
    rows = conn.execute(f"SELECT * FROM papers WHERE {where} ORDER BY id").fetchall()
    return rng.choice(rows)


def _coauthor_pairs(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    return [tuple(r) for r in conn.execute(
        "SELECT a.name, b.name, COUNT(*) FROM authorship x JOIN authorship y ON x.paper_id = y.paper_id "
        "AND x.author_id < y.author_id JOIN authors a ON a.id = x.author_id JOIN authors b ON b.id = y.author_id "
        "GROUP BY x.author_id, y.author_id ORDER BY x.author_id, y.author_id").fetchall()]


def make_question(conn: sqlite3.Connection, rng: random.Random, kind: int) -> Question:
    """One generated question of template ``kind % 8`` with its gold calls and answer."""
    load_p, load_a = ("loadPaperNet", {}), ("loadAuthorNet", {})
    kind %= 8
    if kind == 0:
        p = _random_paper(conn, rng)
        return Question(f"Which venue was the paper '{p['title']}' published in?",
                        [load_p, ("paperNodeCheck", {"node": p["title"]})], p["venue"])
    if kind == 1:
        p = _random_paper(conn, rng)
        return Question(f"In which year was the paper '{p['title']}' published?",
                        [load_p, ("paperNodeCheck", {"node": p["title"]})], p["year"])
    if kind == 2:
        name, org = rng.choice(conn.execute("SELECT name, org FROM authors ORDER BY id").fetchall())
        return Question(f"Which organization is {name} affiliated with?",
                        [load_a, ("authorNodeCheck", {"node": name})], org)
    if kind == 3:
        a, b, n = rng.choice(_coauthor_pairs(conn))
        return Question(f"How many papers have {a} and {b} written together?",
                        [load_a, ("authorEdgeCheck", {"node1": a, "node2": b})], n)
    if kind == 4:
        aid, name = rng.choice(conn.execute(
            "SELECT id, name FROM authors WHERE id IN (SELECT author_id FROM authorship) ORDER BY id").fetchall())
        n = conn.execute("SELECT COUNT(DISTINCT y.author_id) FROM authorship x JOIN authorship y "
                         "ON x.paper_id = y.paper_id WHERE x.author_id = ? AND y.author_id != ?",
                         (aid, aid)).fetchone()[0]
        return Question(f"How many distinct co-authors does {name} have?",
                        [load_a, ("neighbourCheck", {"graph": "AuthorNet", "node": name})], n)
    if kind == 5:
        p = _random_paper(conn, rng, "id IN (SELECT citing FROM citations)")
        n = conn.execute("SELECT COUNT(*) FROM (SELECT cited FROM citations WHERE citing = ? "
                         "UNION SELECT citing FROM citations WHERE cited = ?)", (p["id"], p["id"])).fetchone()[0]
        return Question(f"How many papers cite or are cited by the paper '{p['title']}'?",
                        [load_p, ("neighbourCheck", {"graph": "PaperNet", "node": p["title"]})], n)
    if kind == 6:
        p = _random_paper(conn, rng, "id IN (SELECT paper_id FROM authorship)")
        first, org = conn.execute("SELECT a.name, a.org FROM authorship x JOIN authors a ON a.id = x.author_id "
                                  "WHERE x.paper_id = ? ORDER BY x.position LIMIT 1", (p["id"],)).fetchone()
        return Question(f"Which organization is the first author of the paper '{p['title']}' affiliated with?",
                        [load_p, ("paperNodeCheck", {"node": p["title"]}), load_a,
                         ("authorNodeCheck", {"node": first})], org)
    pairs = [(a, b) for a, b, n in _coauthor_pairs(conn) if n == 1]
    a, b = rng.choice(pairs)
    title, venue = conn.execute(
        "SELECT p.title, p.venue FROM papers p WHERE p.id IN (SELECT paper_id FROM authorship x JOIN authors u "
        "ON u.id = x.author_id WHERE u.name = ?) AND p.id IN (SELECT paper_id FROM authorship x JOIN authors u "
        "ON u.id = x.author_id WHERE u.name = ?)", (a, b)).fetchone()
    return Question(f"At which venue was the only paper co-authored by {a} and {b} published?",
                    [load_a, ("authorEdgeCheck", {"node1": a, "node2": b}), load_p,
                     ("paperNodeCheck", {"node": title})], venue)
