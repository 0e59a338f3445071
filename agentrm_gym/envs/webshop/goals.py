"""WebShop goals: shopping instructions generated from catalogue products, and the fixed splits.

Like WebShop's goals, each one is built from a target product: a few of its attributes, one value of each
of its option groups, and a price cap drawn as WebShop does (two of the four multiples of 10 above the
price, the larger one). The instruction reads like WebShop's: "i need a long lasting eau de parfum in size
6.76 fl oz, and price lower than 100.00 dollars".

Splits: ``test-0`` ... ``test-199`` are built from every ``stride``-th catalogue product (``stride =
num_products // 200``); ``train-<i>`` goals are built from the other products, so no target is shared
between the splits. Everything is derived from the task id with string-seeded RNGs, hence reproducible.
"""

from __future__ import annotations

import random
import re

from agentrm_gym.core import UnknownTask
from agentrm_gym.envs.webshop.catalogue import Catalogue, Product
from agentrm_gym.envs.webshop.reward import Goal

TEST_SIZE = 200
PRICE_RANGE = tuple(10.0 * i for i in range(1, 100))
NO_PRICE_CAP = 1_000_000.0

_OPTION_PHRASES = {
    "size": ("in size {v}", "{v} size", "in {v}"),
    "color": ("in {v}", "in {v} color", "{v} colored"),
    "flavor": ("in {v} flavor", "{v} flavored"),
    "scent": ("with a {v} scent", "in {v} scent"),
    "quantity": ("in a {v}", "{v}"),
    "model": ("for {v}", "that fits {v}"),
}

_TEMPLATES = (
    "i need {article} {attrs} {ptype}{opts}",
    "i am looking for {article} {attrs} {ptype}{opts}",
    "find me {article} {attrs} {ptype}{opts}",
    "i want to buy {article} {ptype} that is {attrs}{opts}",
    "i'd like {article} {ptype} which is {attrs}{opts}",
    "get me {article} {attrs} {ptype}{opts}",
)


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def price_cap(price: float, rng: random.Random) -> float:
    """WebShop's cap: the larger of two draws among the four multiples of 10 above the price."""
    above = [p for p in PRICE_RANGE if p > price][:4]
    if len(above) < 2:
        return NO_PRICE_CAP
    return max(rng.sample(above, 2))


def make_goal(task_id: str, product: Product, rng: random.Random) -> Goal:
    """A goal for ``product`` (the draws come from ``rng``)."""
    n_attrs = min(len(product.attributes), rng.choice((1, 2, 2, 3)))
    attributes = tuple(a for a in product.attributes if a in set(rng.sample(product.attributes, n_attrs)))
    options = {name: rng.choice(values) for name, values in product.options.items()}
    cap = price_cap(product.price, rng)
    phrases = [rng.choice(_OPTION_PHRASES.get(name, ("with {v}",))).format(v=v) for name, v in options.items()]
    template = rng.choice(_TEMPLATES)
    attrs_text = _join(list(attributes))
    article = "an" if (attrs_text if "{attrs} {ptype}" in template else product.product_type)[:1] in "aeiou" else "a"
    text = template.format(
        article=article, attrs=attrs_text, ptype=product.product_type,
        opts=(" " + ", ".join(phrases)) if phrases else "",
    )
    if cap < NO_PRICE_CAP:
        text += f", and price lower than {cap:.2f} dollars"
    keywords = " ".join([*attributes, product.product_type, *options.values()])
    return Goal(
        task_id=task_id,
        asin=product.asin,
        instruction=re.sub(r"\s+", " ", text).strip(),
        attributes=attributes,
        options=options,
        price_upper=cap,
        query=product.query,
        product_category=product.product_category,
        name=product.title,
        product_type=product.product_type,
        keywords=keywords,
    )


def search_text(instruction: str) -> str:
    """The instruction without its price clause: the search an agent would naturally type first."""
    return re.sub(r",? and price lower than [\d.]+ dollars$", "", instruction).strip()


class GoalSet:
    """The fixed train/test goals over one catalogue.

    Args:
        catalogue: the catalogue the goals' targets come from.
        num_products: the catalogue's size.
        num_train: how many train goals.
        seed: the goal seed (the catalogue has its own).
    """

    def __init__(self, catalogue: Catalogue, num_products: int, num_train: int = 5000, seed: int = 0):
        if num_products < TEST_SIZE * 2:
            raise ValueError(f"WebShop needs at least {TEST_SIZE * 2} products, got {num_products}")
        self.catalogue = catalogue
        self.num_products = num_products
        self.num_train = num_train
        self.seed = seed
        self.stride = num_products // TEST_SIZE
        self._cache: dict[str, Goal] = {}

    def task_ids(self, split: str) -> list[str]:
        if split == "test":
            return [f"test-{k}" for k in range(TEST_SIZE)]
        if split == "train":
            return [f"train-{k}" for k in range(self.num_train)]
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def _product_index(self, split: str, k: int, rng: random.Random) -> int:
        if split == "test":
            return k * self.stride
        while True:  # any product that is not a test target
            index = rng.randrange(self.num_products)
            if index % self.stride or index // self.stride >= TEST_SIZE:
                return index

    def goal(self, task_id: str) -> Goal:
        """The goal of ``task_id`` (``"test-17"``, ``"train-1234"``)."""
        hit = self._cache.get(task_id)
        if hit is not None:
            return hit
        match = re.fullmatch(r"(test|train)-(\d+)", task_id)
        limit = TEST_SIZE if match and match.group(1) == "test" else self.num_train
        if match is None or int(match.group(2)) >= limit:
            raise UnknownTask(
                f"WebShop: {task_id!r}; ids are 'test-0'..'test-{TEST_SIZE - 1}' and "
                f"'train-0'..'train-{self.num_train - 1}'"
            )
        split, k = match.group(1), int(match.group(2))
        rng = random.Random(f"webshop-goal-{self.seed}-{split}-{k}")
        product = self.catalogue.product_at(self._product_index(split, k, rng))
        goal = make_goal(task_id, product, rng)
        self._cache[task_id] = goal
        return goal
