"""Weather: generated cities with a year of daily weather and air quality, and open-meteo-style tools.

It stands in for AgentBoard's live open-meteo API with the same tool names and inputs. Each task fixes
the user's current date and location; records before that date are history (``get_historical_*``), the
date itself is current (``get_current_*``), and up to 16 days after it are forecasts (``get_*_forecast``).
Coordinates are matched to two decimals.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import sqlite3
from collections.abc import Iterator
from typing import Any

from agentrm_gym.envs.tools.knowledge import Knowledge, shifted
from agentrm_gym.envs.tools.question import Question
from agentrm_gym.envs.tools.schema import Param, Tool, ToolError
from agentrm_gym.envs.tools.toolset import ToolSet, connect

PREFIX = ("North", "South", "East", "West", "Port", "Lake", "New", "Old", "Upper", "Fort")
STEM = ("Alder", "Brook", "Cedar", "Dune", "Elm", "Fern", "Glen", "Haven", "Iris", "Juniper", "Kestrel", "Linden",
        "Maple", "Oak", "Pine", "Quarry", "Raven", "Stone", "Thorn", "Willow")
COUNTRIES = ("Freedonia", "Sylvania", "Genovia", "Arendelle", "Latveria")
YEAR = 2023
FORECAST_DAYS = 16
AQI_LEVELS = ((20, "good"), (40, "fair"), (60, "moderate"), (80, "poor"), (100, "very poor"))
NUM_CITIES = 40
LOC = (Param("latitude", "number", "The latitude of the location."),
       Param("longitude", "number", "The longitude of the location."))
RANGE = (Param("start_date", "string", "The start date, YYYY-MM-DD."),
         Param("end_date", "string", "The end date, YYYY-MM-DD."))
CURRENT = (Param("current_date", "string", "The current date, YYYY-MM-DD."),)


def build_database(seed: int = 0) -> sqlite3.Connection:
    """Generate the cities and their daily records for one year, deterministically from ``seed``."""
    rng = random.Random(f"weather-db-{seed}")
    conn = connect()
    conn.executescript(
        """
        CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, country TEXT,
                             latitude REAL, longitude REAL, elevation REAL);
        CREATE TABLE daily (city_id INTEGER, date TEXT, temp_max REAL, temp_min REAL, temp_mean REAL,
                            rain REAL, snow REAL, aqi INTEGER, PRIMARY KEY (city_id, date));
        CREATE UNIQUE INDEX city_coords ON cities(latitude, longitude);
        """
    )
    names = rng.sample([f"{p} {s}" for p in PREFIX for s in STEM], NUM_CITIES)
    cities = []
    for i, name in enumerate(names):
        cities.append((i, name, rng.choice(COUNTRIES), round(rng.uniform(-50, 65), 2),
                       round(rng.uniform(-170, 170), 2), round(rng.uniform(0, 2500), 1)))
    conn.executemany("INSERT INTO cities VALUES (?, ?, ?, ?, ?, ?)", cities)
    start = dt.date(YEAR, 1, 1)
    rows = []
    for cid, _, _, lat, _, elev in cities:
        base = 28 - abs(lat) * 0.45 - elev / 250
        north = 1 if lat >= 0 else -1
        for d in range(365):
            day = start + dt.timedelta(days=d)
            season = -north * 11 * math.cos(2 * math.pi * (d - 10) / 365)
            mean = base + season + rng.gauss(0, 3)
            spread = rng.uniform(3, 9)
            wet = rng.random() < 0.3
            precip = round(rng.uniform(0.2, 25), 1) if wet else 0.0
            snow = round(precip * 0.7, 1) if mean < 0 else 0.0
            rain = 0.0 if mean < 0 else precip
            rows.append((cid, day.isoformat(), round(mean + spread / 2, 1), round(mean - spread / 2, 1),
                         round(mean, 1), rain, snow, rng.randint(5, 100)))
    conn.executemany("INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    return conn


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"{what} must be a date in YYYY-MM-DD format, got {text!r}.") from None


def air_quality_level(aqi: float) -> str:
    """The European AQI level name of an index value."""
    for bound, level in AQI_LEVELS:
        if aqi <= bound:
            return level
    return "extremely poor"


class WeatherTools(ToolSet):
    """AgentBoard's weather tools over the generated daily records."""

    name = "weather"
    tools = (
        Tool("get_user_current_date", "Get the user's current date.", (), "The current date, YYYY-MM-DD."),
        Tool("get_user_current_location", "Get the user's current city.", (), "The city name."),
        Tool("get_historical_temp", "Get historical daily temperatures (°C) for a location and date range.",
             LOC + RANGE, "Daily maximum, minimum and mean temperatures."),
        Tool("get_historical_rain", "Get historical daily rainfall (mm) for a location and date range.",
             LOC + RANGE, "Daily rain sums."),
        Tool("get_historical_snow", "Get historical daily snowfall (cm) for a location and date range.",
             LOC + RANGE, "Daily snowfall sums."),
        Tool("get_snow_forecast", "Get the daily snowfall forecast (cm) for a location and date range.",
             LOC + RANGE, "Daily snowfall sums."),
        Tool("get_current_snow", "Get the snowfall (cm) of the current date at a location.", LOC + CURRENT,
             "The current snowfall."),
        Tool("get_current_temp", "Get the mean temperature (°C) of the current date at a location.",
             LOC + CURRENT, "The current temperature."),
        Tool("get_latitude_longitude", "Get the latitude and longitude of a city by name.",
             (Param("name", "string", "The name of the city."),), "Matching places with their coordinates."),
        Tool("get_elevation", "Get the elevation (m) of a location.", LOC, "The elevation in meters."),
        Tool("get_temp_forecast", "Get the daily temperature forecast (°C) for a location and date range.",
             LOC + RANGE, "Daily maximum and minimum temperatures."),
        Tool("get_rain_forecast", "Get the daily rainfall forecast (mm) for a location and date range.",
             LOC + RANGE, "Daily rain sums."),
        Tool("get_current_rain", "Get the rainfall (mm) of the current date at a location.", LOC + CURRENT,
             "The current rainfall."),
        Tool("get_distance", "Calculate the great-circle distance (km) between two locations.",
             (Param("latitude1", "number", "The latitude of the first location."),
              Param("longitude1", "number", "The longitude of the first location."),
              Param("latitude2", "number", "The latitude of the second location."),
              Param("longitude2", "number", "The longitude of the second location.")),
             "The distance in kilometers."),
        Tool("get_historical_air_quality_index", "Get the historical daily European air quality index.",
             LOC + RANGE, "Daily air quality index values."),
        Tool("get_current_air_quality_index", "Get the air quality index of the current date at a location.",
             LOC + CURRENT, "The current air quality index."),
        Tool("get_air_quality_level", "Get the air quality level of an air quality index value.",
             (Param("air_quality_index", "number", "The air quality index."),), "The level name."),
    )

    def candidates(self, knowledge: Knowledge) -> Iterator[tuple[str, dict[str, Any]]]:
        """Coordinate lookups for seen names; every location tool on seen coordinates with seen dates.

        The dates are those of the goal and the dates tools returned on their own (the current date),
        with the days around a current date (yesterday, tomorrow, in three days) since the goals speak
        of them; the ranges are single days and ordered pairs of those dates.
        """
        for name in knowledge.strings(min_len=3):
            yield "get_latitude_longitude", {"name": name}
        dates = knowledge.dates(("goal",))
        for today in knowledge.current_dates():
            dates += [today, shifted(today, -1), shifted(today, 1), shifted(today, 3)]
        dates = list(dict.fromkeys(dates))
        ranges = [(d, d) for d in dates] + [(a, b) for a, b in itertools.combinations(sorted(dates), 2) if a < b]
        ranged = [t.name for t in self.tools if any(p.name == "start_date" for p in t.params)]
        current = [t.name for t in self.tools if any(p.name == "current_date" for p in t.params)]
        for lat, lon in knowledge.coords:
            loc = {"latitude": lat, "longitude": lon}
            yield "get_elevation", loc
            for name in ranged:
                for start, end in ranges:
                    yield name, {**loc, "start_date": start, "end_date": end}
            for name in current:
                for day in dates:
                    yield name, {**loc, "current_date": day}
        for (lat1, lon1), (lat2, lon2) in itertools.permutations(knowledge.coords, 2):
            yield "get_distance", {"latitude1": lat1, "longitude1": lon1, "latitude2": lat2, "longitude2": lon2}
        for value in knowledge.numbers(("goal", "obs"), ("aqi", "european_aqi", "number")):
            yield "get_air_quality_level", {"air_quality_index": value}

    @property
    def today(self) -> dt.date:
        return dt.date.fromisoformat(self.context["current_date"])

    def _city(self, latitude: float, longitude: float) -> int:
        row = self.one("SELECT id FROM cities WHERE latitude = ? AND longitude = ?",
                       (round(latitude, 2), round(longitude, 2)))
        if row is None:
            raise ToolError(f"no weather data for latitude {latitude}, longitude {longitude}; "
                            "use get_latitude_longitude to find a city's coordinates.")
        return int(row[0])

    def _daily(self, latitude: float, longitude: float, start_date: str, end_date: str, when: str,
               fields: dict[str, str]) -> dict[str, Any]:
        start, end = _date(start_date, "start_date"), _date(end_date, "end_date")
        if end < start:
            raise ToolError("end_date is before start_date.")
        today = self.today
        if when == "history" and end >= today:
            raise ToolError(f"historical data ends the day before the current date ({today}); "
                            "use the current or forecast tools for later dates.")
        if when == "forecast" and (start < today or end > today + dt.timedelta(days=FORECAST_DAYS)):
            raise ToolError(f"forecasts cover {today} to {today + dt.timedelta(days=FORECAST_DAYS)}.")
        city = self._city(latitude, longitude)
        cols = ", ".join(fields)
        rows = self.all(f"SELECT date, {cols} FROM daily WHERE city_id = ? AND date BETWEEN ? AND ? ORDER BY date",
                        (city, start.isoformat(), end.isoformat()))
        if not rows:
            raise ToolError(f"no records between {start} and {end}.")
        daily: dict[str, Any] = {"time": [r[0] for r in rows]}
        for i, label in enumerate(fields.values(), start=1):
            daily[label] = [r[i] for r in rows]
        return {"latitude": round(latitude, 2), "longitude": round(longitude, 2), "daily": daily}

    def _current(self, latitude: float, longitude: float, current_date: str, column: str, label: str) -> dict:
        day = _date(current_date, "current_date")
        if day != self.today:
            raise ToolError("current_date must be today's date; call get_user_current_date.")
        city = self._city(latitude, longitude)
        value = self.one(f"SELECT {column} FROM daily WHERE city_id = ? AND date = ?", (city, day.isoformat()))[0]
        return {"current_date": day.isoformat(), label: value}

    def get_user_current_date(self) -> str:
        return self.context["current_date"]

    def get_user_current_location(self) -> str:
        return self.context["current_location"]

    def get_historical_temp(self, latitude: float, longitude: float, start_date: str, end_date: str) -> dict[str, Any]:
        return self._daily(latitude, longitude, start_date, end_date, "history",
                           {"temp_max": "temperature_2m_max", "temp_min": "temperature_2m_min",
                            "temp_mean": "temperature_2m_mean"})

    def get_historical_rain(self, latitude: float, longitude: float, start_date: str, end_date: str) -> dict[str, Any]:
        return self._daily(latitude, longitude, start_date, end_date, "history", {"rain": "rain_sum"})

    def get_historical_snow(self, latitude: float, longitude: float, start_date: str, end_date: str) -> dict[str, Any]:
        return self._daily(latitude, longitude, start_date, end_date, "history", {"snow": "snowfall_sum"})

    def get_snow_forecast(self, latitude: float, longitude: float, start_date: str, end_date: str) -> dict[str, Any]:
        return self._daily(latitude, longitude, start_date, end_date, "forecast", {"snow": "snowfall_sum"})

    def get_temp_forecast(self, latitude: float, longitude: float, start_date: str, end_date: str) -> dict[str, Any]:
        return self._daily(latitude, longitude, start_date, end_date, "forecast",
                           {"temp_max": "temperature_2m_max", "temp_min": "temperature_2m_min"})

    def get_rain_forecast(self, latitude: float, longitude: float, start_date: str, end_date: str) -> dict[str, Any]:
        return self._daily(latitude, longitude, start_date, end_date, "forecast", {"rain": "rain_sum"})

    def get_historical_air_quality_index(self, latitude: float, longitude: float, start_date: str, end_date: str) -> dict[str, Any]:
        return self._daily(latitude, longitude, start_date, end_date, "history", {"aqi": "european_aqi"})

    def get_current_snow(self, latitude: float, longitude: float, current_date: str) -> dict[str, Any]:
        return self._current(latitude, longitude, current_date, "snow", "snowfall")

    def get_current_temp(self, latitude: float, longitude: float, current_date: str) -> dict[str, Any]:
        return self._current(latitude, longitude, current_date, "temp_mean", "temperature")

    def get_current_rain(self, latitude: float, longitude: float, current_date: str) -> dict[str, Any]:
        return self._current(latitude, longitude, current_date, "rain", "rain")

    def get_current_air_quality_index(self, latitude: float, longitude: float, current_date: str) -> dict[str, Any]:
        return self._current(latitude, longitude, current_date, "aqi", "european_aqi")

    def get_latitude_longitude(self, name: str) -> dict[str, Any]:
        rows = self.all("SELECT name, country, latitude, longitude FROM cities WHERE name = ? COLLATE NOCASE",
                        (name.strip(),))
        if not rows:
            raise ToolError(f"no city named {name!r}.")
        return {"results": [dict(r) for r in rows]}

    def get_elevation(self, latitude: float, longitude: float) -> dict[str, Any]:
        city = self._city(latitude, longitude)
        return {"elevation": self.one("SELECT elevation FROM cities WHERE id = ?", (city,))[0]}

    def get_distance(self, latitude1: float, longitude1: float, latitude2: float, longitude2: float) -> float:
        if not (-90 <= latitude1 <= 90 and -90 <= latitude2 <= 90):
            raise ToolError("latitudes must be between -90 and 90.")
        return haversine_km(latitude1, longitude1, latitude2, longitude2)

    def get_air_quality_level(self, air_quality_index: float) -> str:
        if air_quality_index < 0:
            raise ToolError("the air quality index cannot be negative.")
        return air_quality_level(air_quality_index)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (Earth radius 6371 km), rounded to 2 decimals."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return round(2 * 6371 * math.asin(min(1.0, math.sqrt(a))), 2)


# --------------------------------------------------------------------------- questions
def make_question(conn: sqlite3.Connection, rng: random.Random, kind: int) -> Question:
    """One generated question of template ``kind % 8`` with its gold calls, answer and user context."""
    cities = conn.execute("SELECT * FROM cities ORDER BY id").fetchall()
    c = rng.choice(cities)
    today = dt.date(YEAR, 3, 5) + dt.timedelta(days=rng.randint(0, 265))  # history and forecasts stay in YEAR
    here = rng.choice(cities)
    context = {"current_date": today.isoformat(), "current_location": here["name"]}
    loc = {"latitude": c["latitude"], "longitude": c["longitude"]}
    lookup = ("get_latitude_longitude", {"name": c["name"]})

    def day(offset: int) -> str:
        return (today + dt.timedelta(days=offset)).isoformat()

    def value(col: str, date: str, city: sqlite3.Row = c) -> Any:
        return conn.execute(f"SELECT {col} FROM daily WHERE city_id = ? AND date = ?", (city["id"], date)).fetchone()[0]

    kind %= 8
    if kind == 0:
        d = day(-rng.randint(1, 30))
        return Question(f"What was the highest temperature in {c['name']} on {d}, in °C?",
                        [lookup, ("get_historical_temp", {**loc, "start_date": d, "end_date": d})],
                        value("temp_max", d), context)
    if kind == 1:
        a, b = day(-rng.randint(5, 20)), day(-1)
        total = round(sum(value("rain", day(o)) for o in range((dt.date.fromisoformat(a) - today).days, 0)), 2)
        return Question(f"What was the total rainfall in {c['name']} from {a} to {b}, in mm? Round to 2 decimals.",
                        [lookup, ("get_historical_rain", {**loc, "start_date": a, "end_date": b})], total, context)
    if kind == 2:
        return Question(f"What is the elevation of {c['name']} in meters?",
                        [lookup, ("get_elevation", loc)], c["elevation"], context)
    if kind == 3:
        o = rng.choice([x for x in cities if x["id"] != c["id"]])
        dist = haversine_km(c["latitude"], c["longitude"], o["latitude"], o["longitude"])
        return Question(f"How far is {c['name']} from {o['name']}, in kilometers?",
                        [lookup, ("get_latitude_longitude", {"name": o["name"]}),
                         ("get_distance", {"latitude1": c["latitude"], "longitude1": c["longitude"],
                                           "latitude2": o["latitude"], "longitude2": o["longitude"]})],
                        dist, context)
    if kind == 4:
        hloc = {"latitude": here["latitude"], "longitude": here["longitude"]}
        return Question("What is the temperature today where I am, in °C?",
                        [("get_user_current_location", {}), ("get_user_current_date", {}),
                         ("get_latitude_longitude", {"name": here["name"]}),
                         ("get_current_temp", {**hloc, "current_date": today.isoformat()})],
                        value("temp_mean", today.isoformat(), here), context)
    if kind == 5:
        a, b = day(1), day(3)
        total = round(sum(value("snow", day(o)) for o in (1, 2, 3)), 2)
        return Question(f"How much snow (in cm) is forecast to fall in {c['name']} over the next three days, "
                        "starting tomorrow? Round to 2 decimals.",
                        [("get_user_current_date", {}), lookup,
                         ("get_snow_forecast", {**loc, "start_date": a, "end_date": b})], total, context)
    if kind == 6:
        d = day(-rng.randint(1, 60))
        aqi = value("aqi", d)
        return Question(f"What was the air quality level in {c['name']} on {d}?",
                        [lookup, ("get_historical_air_quality_index", {**loc, "start_date": d, "end_date": d}),
                         ("get_air_quality_level", {"air_quality_index": aqi})], air_quality_level(aqi), context)
    d = day(1)
    return Question(f"Will it rain in {c['name']} tomorrow? Answer yes or no.",
                    [("get_user_current_date", {}), lookup,
                     ("get_rain_forecast", {**loc, "start_date": d, "end_date": d})],
                    "yes" if value("rain", d) > 0 else "no", context)
