"""Movie: a generated film database (movies, people, cast, crew, genres, companies) and TMDB-style tools.

It stands in for AgentBoard's live TMDB API with the same tool names and inputs: search a movie or
person by name to get its id, then look up details, cast, crew, companies, countries and keywords.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from agentrm_gym.envs.tools.knowledge import Knowledge
from agentrm_gym.envs.tools.question import Question
from agentrm_gym.envs.tools.schema import Param, Tool, ToolError
from agentrm_gym.envs.tools.toolset import ToolSet, connect

WORD1 = ("Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Frozen", "Distant", "Electric",
         "Wild", "Lost", "Burning", "Paper", "Iron", "Velvet", "Northern", "Glass", "Hollow", "Bright")
WORD2 = ("River", "Empire", "Garden", "Horizon", "Signal", "Harbor", "Kingdom", "Echo", "Orchard", "Summer",
         "Machine", "Voyage", "Letter", "Mountain", "Station", "Mirror", "Promise", "Circus", "Storm", "Tide")
GIVEN = ("Ada", "Ben", "Clara", "Diego", "Emma", "Felix", "Greta", "Hugo", "Iris", "Jack", "Kira", "Leo", "Maya",
         "Nico", "Olga", "Pablo", "Rita", "Sam", "Tess", "Viktor", "Yara", "Zane", "Lena", "Omar")
FAMILY = ("Archer", "Blake", "Castillo", "Dumont", "Ellison", "Ferreira", "Grant", "Holm", "Ivanova", "Kowalski",
          "Lindqvist", "Marsh", "Nakamura", "Oliveira", "Petrov", "Quist", "Reyes", "Stone", "Thorne", "Vance")
PLACES = ("London, England, UK", "Paris, France", "Los Angeles, California, USA", "Toronto, Canada",
          "Sydney, Australia", "Berlin, Germany", "Madrid, Spain", "Seoul, South Korea", "Mumbai, India",
          "Mexico City, Mexico", "Chicago, Illinois, USA", "Rome, Italy")
GENRES = ("Drama", "Comedy", "Thriller", "Science Fiction", "Romance", "Animation", "Horror", "Adventure",
          "Documentary", "Crime", "Fantasy", "Mystery")
COMPANIES = ("Bluebird Pictures", "Northlight Studios", "Red Lantern Films", "Atlas Entertainment",
             "Silver Screen Works", "Moonrise Productions", "Harborview Media", "Quartz Films", "Lumen Studios")
COUNTRIES = ("United States of America", "United Kingdom", "France", "Canada", "Germany", "Japan", "Spain",
             "Australia", "South Korea", "India")
KEYWORDS = ("based on novel", "time travel", "heist", "coming of age", "friendship", "revenge", "space",
            "small town", "artificial intelligence", "family", "road trip", "detective", "island", "music")
CHARACTERS = ("Detective", "Captain", "Doctor", "Professor", "Mother", "Stranger", "Pilot", "Mayor", "Thief",
              "Singer", "Teacher", "Soldier", "Narrator", "Queen", "Engineer")
CREW_JOBS = (("Director", "Directing"), ("Screenplay", "Writing"), ("Producer", "Production"),
             ("Original Music Composer", "Sound"), ("Director of Photography", "Camera"))
NUM_MOVIES = 220
#: The tools whose outputs list movies (the others list people).
MOVIE_LISTS = frozenset({"get_search_movie", "get_movie_details", "get_person_cast", "get_person_crew"})
ID_RE = re.compile(r'"id": (\d+)')
NUM_PEOPLE = 300


def build_database(seed: int = 0) -> sqlite3.Connection:
    """Generate the movie database deterministically from ``seed``."""
    rng = random.Random(f"movie-db-{seed}")
    conn = connect()
    conn.executescript(
        """
        CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT UNIQUE NOT NULL, release_date TEXT,
                             runtime INTEGER, budget INTEGER, revenue INTEGER, vote_average REAL,
                             original_language TEXT, country TEXT);
        CREATE TABLE movie_genres (movie_id INTEGER, genre TEXT);
        CREATE TABLE movie_companies (movie_id INTEGER, company TEXT);
        CREATE TABLE movie_keywords (movie_id INTEGER, keyword TEXT);
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, birthday TEXT, gender TEXT,
                             place_of_birth TEXT, known_for_department TEXT);
        CREATE TABLE movie_cast (movie_id INTEGER, person_id INTEGER, character TEXT, cast_order INTEGER);
        CREATE TABLE movie_crew (movie_id INTEGER, person_id INTEGER, job TEXT, department TEXT);
        CREATE INDEX cast_person ON movie_cast(person_id);
        CREATE INDEX crew_person ON movie_crew(person_id);
        """
    )
    titles = [f"The {a} {b}" for a in WORD1 for b in WORD2] + [f"{a} {b}" for a in WORD1 for b in WORD2]
    titles = rng.sample(titles, NUM_MOVIES)
    movies = []
    for i, title in enumerate(titles):
        mid = 1000 + i * 7
        date = f"{rng.randint(1975, 2023)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        budget = rng.randint(2, 180) * 1_000_000
        movies.append((mid, title, date, rng.randint(80, 170), budget, int(budget * rng.uniform(0.3, 6.0)),
                       round(rng.uniform(4.0, 9.0), 1), rng.choice(("en", "en", "fr", "es", "ko", "ja")),
                       rng.choice(COUNTRIES)))
    conn.executemany("INSERT INTO movies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", movies)
    names = rng.sample([f"{g} {f}" for g in GIVEN for f in FAMILY], NUM_PEOPLE)
    people = []
    for i, name in enumerate(names):
        dept = "Acting" if i < NUM_PEOPLE * 2 // 3 else rng.choice(("Directing", "Writing", "Production"))
        people.append((50 + i * 3, name, f"{rng.randint(1940, 2000)}-{rng.randint(1, 12):02d}-"
                       f"{rng.randint(1, 28):02d}", rng.choice(("Female", "Male")), rng.choice(PLACES), dept))
    conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?)", people)
    actors = [p[0] for p in people if p[5] == "Acting"]
    crew_pool = [p[0] for p in people if p[5] != "Acting"]
    for mid, *_ in movies:
        conn.executemany("INSERT INTO movie_genres VALUES (?, ?)",
                         [(mid, g) for g in rng.sample(GENRES, rng.randint(1, 3))])
        conn.executemany("INSERT INTO movie_companies VALUES (?, ?)",
                         [(mid, c) for c in rng.sample(COMPANIES, rng.randint(1, 3))])
        conn.executemany("INSERT INTO movie_keywords VALUES (?, ?)",
                         [(mid, k) for k in rng.sample(KEYWORDS, rng.randint(2, 5))])
        chars = rng.sample(CHARACTERS, rng.randint(3, 6))
        conn.executemany("INSERT INTO movie_cast VALUES (?, ?, ?, ?)",
                         [(mid, pid, chars[o], o) for o, pid in enumerate(rng.sample(actors, len(chars)))])
        crew = rng.sample(crew_pool, len(CREW_JOBS))
        conn.executemany("INSERT INTO movie_crew VALUES (?, ?, ?, ?)",
                         [(mid, pid, job, dept) for pid, (job, dept) in zip(crew, CREW_JOBS, strict=True)])
    conn.commit()
    return conn


class MovieTools(ToolSet):
    """AgentBoard's TMDB tools over the generated movie database."""

    name = "movie"
    tools = (
        Tool("get_search_movie", "Search for a movie by name and return basic details.",
             (Param("movie_name", "string", "The name of the movie to search for."),),
             "A list of matching movies with their id, title and release date."),
        Tool("get_movie_details", "Get detailed information about a movie by its id.",
             (Param("movie_id", "integer", "The id of the movie."),),
             "The movie's title, release date, runtime, budget, revenue, genres, rating and language."),
        Tool("get_movie_production_companies", "Get the production companies of a movie by its id.",
             (Param("movie_id", "integer", "The id of the movie."),), "A list of company names."),
        Tool("get_movie_production_countries", "Get the production countries of a movie by its id.",
             (Param("movie_id", "integer", "The id of the movie."),), "A list of country names."),
        Tool("get_movie_keywords", "Get the keywords of a movie by its id.",
             (Param("movie_id", "integer", "The id of the movie."),), "A list of keywords."),
        Tool("get_search_person", "Search for a person by name.",
             (Param("person_name", "string", "The name of the person to search for."),),
             "A list of matching people with their id, name and department."),
        Tool("get_person_details", "Get detailed information about a person by their id.",
             (Param("person_id", "integer", "The id of the person."),),
             "The person's name, birthday, gender, place of birth and department."),
        Tool("get_movie_cast", "Retrieve the cast of a movie by its id.",
             (Param("movie_id", "integer", "The id of the movie."),),
             "A list of cast members with id, name and character, in billing order."),
        Tool("get_movie_crew", "Retrieve the crew of a movie by its id.",
             (Param("movie_id", "integer", "The id of the movie."),),
             "A list of crew members with id, name, job and department."),
        Tool("get_person_cast", "Retrieve the movies a person acted in, by the person's id.",
             (Param("person_id", "integer", "The id of the person."),),
             "A list of movies with id, title and the character played."),
        Tool("get_person_crew", "Retrieve the movies a person worked on as crew, by the person's id.",
             (Param("person_id", "integer", "The id of the person."),),
             "A list of movies with id, title and job."),
    )

    def candidates(self, knowledge: Knowledge) -> Iterator[tuple[str, dict[str, Any]]]:
        """Searches for every seen string; every id-taking tool on every seen id."""
        for text in knowledge.strings(min_len=3):
            yield "get_search_movie", {"movie_name": text}
            yield "get_search_person", {"person_name": text}
        for kind in ("movie_id", "person_id"):
            for value in knowledge.ints(("obs",), (kind,)):
                for tool in self.tools:
                    if tool.params and tool.params[0].name == kind:
                        yield tool.name, {kind: value}

    def learn(self, tool: str, args: dict[str, Any], observation: str, knowledge: Knowledge) -> None:
        """Tell movie ids from person ids by the tool that listed them."""
        kind = "movie_id" if tool in MOVIE_LISTS else "person_id"
        for match in ID_RE.finditer(observation):
            knowledge.add("obs", kind, int(match.group(1)))

    def _movie(self, movie_id: int) -> sqlite3.Row:
        row = self.one("SELECT * FROM movies WHERE id = ?", (movie_id,))
        if row is None:
            raise ToolError(f"there is no movie with id {movie_id}; use get_search_movie to find ids.")
        return row

    def _person(self, person_id: int) -> sqlite3.Row:
        row = self.one("SELECT * FROM people WHERE id = ?", (person_id,))
        if row is None:
            raise ToolError(f"there is no person with id {person_id}; use get_search_person to find ids.")
        return row

    def get_search_movie(self, movie_name: str) -> list[dict[str, Any]]:
        query = movie_name.strip()
        rows = self.all("SELECT id, title, release_date FROM movies WHERE title = ? COLLATE NOCASE", (query,))
        if not rows and query:
            rows = self.all("SELECT id, title, release_date FROM movies WHERE instr(lower(title), lower(?)) > 0 "
                            "ORDER BY title LIMIT 5", (query,))
        if not rows:
            raise ToolError(f"no movie matches {movie_name!r}.")
        return [dict(r) for r in rows]

    def get_movie_details(self, movie_id: int) -> dict[str, Any]:
        m = self._movie(movie_id)
        genres = [r[0] for r in self.all("SELECT genre FROM movie_genres WHERE movie_id = ? ORDER BY rowid",
                                         (movie_id,))]
        return {"id": m["id"], "title": m["title"], "release_date": m["release_date"], "runtime": m["runtime"],
                "budget": m["budget"], "revenue": m["revenue"], "genres": genres,
                "vote_average": m["vote_average"], "original_language": m["original_language"]}

    def get_movie_production_companies(self, movie_id: int) -> list[str]:
        self._movie(movie_id)
        return [r[0] for r in self.all("SELECT company FROM movie_companies WHERE movie_id = ? ORDER BY rowid",
                                       (movie_id,))]

    def get_movie_production_countries(self, movie_id: int) -> list[str]:
        return [self._movie(movie_id)["country"]]

    def get_movie_keywords(self, movie_id: int) -> list[str]:
        self._movie(movie_id)
        return [r[0] for r in self.all("SELECT keyword FROM movie_keywords WHERE movie_id = ? ORDER BY rowid",
                                       (movie_id,))]

    def get_search_person(self, person_name: str) -> list[dict[str, Any]]:
        query = person_name.strip()
        rows = self.all("SELECT id, name, known_for_department FROM people WHERE name = ? COLLATE NOCASE",
                        (query,))
        if not rows and query:
            rows = self.all("SELECT id, name, known_for_department FROM people "
                            "WHERE instr(lower(name), lower(?)) > 0 ORDER BY name LIMIT 5", (query,))
        if not rows:
            raise ToolError(f"no person matches {person_name!r}.")
        return [dict(r) for r in rows]

    def get_person_details(self, person_id: int) -> dict[str, Any]:
        p = self._person(person_id)
        return {k: p[k] for k in ("id", "name", "birthday", "gender", "place_of_birth", "known_for_department")}

    def get_movie_cast(self, movie_id: int) -> list[dict[str, Any]]:
        self._movie(movie_id)
        return [dict(r) for r in self.all(
            "SELECT p.id, p.name, c.character FROM movie_cast c JOIN people p ON p.id = c.person_id "
            "WHERE c.movie_id = ? ORDER BY c.cast_order", (movie_id,))]

    def get_movie_crew(self, movie_id: int) -> list[dict[str, Any]]:
        self._movie(movie_id)
        return [dict(r) for r in self.all(
            "SELECT p.id, p.name, c.job, c.department FROM movie_crew c JOIN people p ON p.id = c.person_id "
            "WHERE c.movie_id = ? ORDER BY c.rowid", (movie_id,))]

    def get_person_cast(self, person_id: int) -> list[dict[str, Any]]:
        self._person(person_id)
        return [dict(r) for r in self.all(
            "SELECT m.id, m.title, c.character FROM movie_cast c JOIN movies m ON m.id = c.movie_id "
            "WHERE c.person_id = ? ORDER BY m.release_date", (person_id,))]

    def get_person_crew(self, person_id: int) -> list[dict[str, Any]]:
        self._person(person_id)
        return [dict(r) for r in self.all(
            "SELECT m.id, m.title, c.job FROM movie_crew c JOIN movies m ON m.id = c.movie_id "
            "WHERE c.person_id = ? ORDER BY m.release_date", (person_id,))]


# --------------------------------------------------------------------------- questions
def make_question(conn: sqlite3.Connection, rng: random.Random, kind: int) -> Question:
    """One generated question of template ``kind % 8`` with its gold calls and answer."""
    movies = conn.execute("SELECT * FROM movies ORDER BY id").fetchall()
    m = rng.choice(movies)
    search = ("get_search_movie", {"movie_name": m["title"]})
    mid = {"movie_id": m["id"]}
    kind %= 8
    if kind == 0:
        return Question(f"What was the budget of the movie '{m['title']}' in US dollars?",
                        [search, ("get_movie_details", mid)], m["budget"])
    if kind == 1:
        return Question(f"What is the runtime of '{m['title']}' in minutes?",
                        [search, ("get_movie_details", mid)], m["runtime"])
    if kind == 2:
        director = conn.execute("SELECT p.name FROM movie_crew c JOIN people p ON p.id = c.person_id "
                                "WHERE c.movie_id = ? AND c.job = 'Director'", (m["id"],)).fetchone()[0]
        return Question(f"Who directed the movie '{m['title']}'?", [search, ("get_movie_crew", mid)], director)
    if kind == 3:
        return Question(f"In which country was the movie '{m['title']}' produced?",
                        [search, ("get_movie_production_countries", mid)], m["country"])
    if kind == 4:
        pid, char, birthday = conn.execute(
            "SELECT p.id, c.character, p.birthday FROM movie_cast c JOIN people p ON p.id = c.person_id "
            "WHERE c.movie_id = ? ORDER BY c.cast_order LIMIT 1", (m["id"],)).fetchone()
        return Question(f"What is the birthday of the actor who played the {char} in '{m['title']}'? "
                        "Answer in YYYY-MM-DD format.",
                        [search, ("get_movie_cast", mid), ("get_person_details", {"person_id": pid})], birthday)
    if kind == 5:
        pid, name, n = rng.choice(conn.execute(
            "SELECT p.id, p.name, COUNT(*) FROM movie_cast c JOIN people p ON p.id = c.person_id "
            "GROUP BY p.id ORDER BY p.id").fetchall())
        return Question(f"In how many movies has {name} acted?",
                        [("get_search_person", {"person_name": name}), ("get_person_cast", {"person_id": pid})], n)
    if kind == 6:
        pid, place = conn.execute(
            "SELECT p.id, p.place_of_birth FROM movie_crew c JOIN people p ON p.id = c.person_id "
            "WHERE c.movie_id = ? AND c.job = 'Director'", (m["id"],)).fetchone()
        return Question(f"Where was the director of '{m['title']}' born?",
                        [search, ("get_movie_crew", mid), ("get_person_details", {"person_id": pid})], place)
    other = rng.choice([x for x in movies if x["release_date"] != m["release_date"]])
    first = m if m["release_date"] < other["release_date"] else other
    return Question(f"Which movie was released earlier: '{m['title']}' or '{other['title']}'?",
                    [search, ("get_movie_details", mid),
                     ("get_search_movie", {"movie_name": other["title"]}),
                     ("get_movie_details", {"movie_id": other["id"]})], first["title"])
