"""WebShop's purchase reward (``web_agent_site/engine/goal.py:get_reward``), without spaCy.

score = (matched attributes + matched options + 1[price <= cap]) / (#attributes + #options + 1) * r_type

* An attribute of the goal matches when one of the product's attributes has a ``rapidfuzz`` token-set
  ratio above 85 with it, or when it appears in the product's title, bullet points or description.
* Each chosen option matches when it equals a goal option (``size``, ``quantity`` and ``model`` are
  matched exactly; WebShop only has ``size``), fuzzily matches
  one (other option names), or appears in the title, bullet points or description.
* r_type in {0, 0.1, 0.5, 1} compares the bought product with the goal's target: same search query,
  at least two shared category-path levels, and the share of the target title's nouns found in the
  bought title's nouns. WebShop tags nouns with spaCy; our titles are generated as "<Brand> <descriptor>
  <Product Type> <audience>, <Attributes>", so their nouns are known: the brand and the words of the
  product type (descriptors, audiences and attributes are modifiers).

The score is clipped to [0, 1] (WebShop can exceed 1 when extra chosen options match by substring).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from agentrm_gym.envs.webshop.catalogue import STOPWORDS, Product

#: Option names matched exactly. WebShop lists only "size"; we add the count-like groups of our catalogue,
#: whose values ("set of 4" / "set of 6", "iphone 13" / "iphone 14") a fuzzy ratio above 85 would confuse.
EXACT_MATCH_OPTIONS = ("size", "quantity", "model")
FUZZY_THRESHOLD = 85


@dataclass(frozen=True)
class Goal:
    """A shopping instruction and what it asks for (WebShop's goal dict).

    Attributes:
        task_id: ``"test-17"`` or ``"train-1234"``.
        asin: the target product the goal was generated from.
        instruction: the text the agent sees.
        attributes: the attributes asked for.
        options: option name -> the wanted value.
        price_upper: the price cap in dollars (1e6 when there is none).
        query: the target's search query (WebShop's ``query``).
        product_category: the target's category path.
        name: the target's title (WebShop compares title nouns with it).
        product_type: the target's product type.
        keywords: the oracle's search text (the goal's key terms).
    """

    task_id: str
    asin: str
    instruction: str
    attributes: tuple[str, ...]
    options: dict[str, str]
    price_upper: float
    query: str
    product_category: str
    name: str
    product_type: str
    keywords: str


@lru_cache(maxsize=65536)
def title_nouns(title: str, product_type: str) -> frozenset[str]:
    """The nouns of a generated title: its brand (the first word) and the product type's words."""
    brand = title.split(" ", 1)[0].lower()
    words = re.findall(r"[a-z]+", product_type.lower())
    return frozenset([brand, *(w for w in words if len(w) > 1 and w not in STOPWORDS)])


def type_reward(product: Product, goal: Goal) -> float:
    """WebShop's r_type: 1, 0.5, 0.1 or 0."""
    query_match = product.query == goal.query
    bought_path = {x.strip() for x in product.product_category.split("›")}
    goal_path = {x.strip() for x in goal.product_category.split("›")}
    category_match = len(bought_path & goal_path) >= 2
    desired = title_nouns(goal.name, goal.product_type)
    title_score = len(title_nouns(product.title, product.product_type) & desired) / len(desired)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type


def _text_blob(product: Product) -> tuple[str, str, str]:
    return product.title.lower(), " ".join(product.bullets).lower(), product.description.lower()


def attribute_matches(product: Product, goal: Goal) -> int:
    """How many of the goal's attributes the product has (fuzzy, or mentioned in its text)."""
    texts = _text_blob(product)
    count = 0
    for wanted in goal.attributes:
        if any(fuzz.token_set_ratio(have, wanted) > FUZZY_THRESHOLD for have in product.attributes) or any(
            wanted in t for t in texts
        ):
            count += 1
    return count


def option_matches(product: Product, goal: Goal, chosen: Mapping[str, str]) -> int:
    """How many of the chosen options match the goal's options (WebShop iterates the chosen ones)."""
    goal_values = [v.lower() for v in goal.options.values()]
    texts = _text_blob(product)
    count = 0
    for name, value in chosen.items():
        value = value.lower()
        if name.lower() in EXACT_MATCH_OPTIONS:
            matched = value in goal_values
        else:
            matched = any(fuzz.token_set_ratio(g, value) > FUZZY_THRESHOLD for g in goal_values)
        if matched or any(value in t for t in texts):
            count += 1
    return count


def purchase_reward(product: Product, goal: Goal, chosen: Mapping[str, str] | None = None) -> float:
    """The reward of buying ``product`` with ``chosen`` options for ``goal``, in [0, 1]."""
    chosen = chosen or {}
    r_type = type_reward(product, goal)
    if r_type == 0.0:
        return 0.0
    price_ok = 1 if product.price <= goal.price_upper else 0
    total = attribute_matches(product, goal) + option_matches(product, goal, chosen) + price_ok
    score = total / (len(goal.attributes) + len(goal.options) + 1) * r_type
    return float(min(1.0, max(0.0, score)))


def best_options(product: Product, goal: Goal) -> dict[str, str]:
    """The option choice that maximises the reward of ``product`` for ``goal`` (the oracle's choice)."""
    chosen: dict[str, str] = {}
    for name, values in product.options.items():
        best, best_score = None, -1.0
        for value in values:
            score = option_matches(product, goal, {name: value})
            wanted = goal.options.get(name)
            score += 0.5 if wanted is not None and value.lower() == wanted.lower() else 0.0
            if score > best_score:
                best, best_score = value, score
        if best is not None and best_score > 0:
            chosen[name] = best
    return chosen
