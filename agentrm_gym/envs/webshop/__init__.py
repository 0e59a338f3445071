"""WebShop: web shopping over a generated product catalogue (``agentrm/WebShop-v0``).

Where things are:

* :mod:`.vocab` - categories, product types, attributes and options the catalogue is generated from;
* :mod:`.catalogue` - the seeded generator, the SQLite/FTS5 build (cached) and BM25 search;
* :mod:`.bulk` - the catalogue above 10,000 products (``num_products`` up to WebShop's 1.18M): numpy
  generation, compact rows, one bulk load;
* :mod:`.topk` - its search: a bounded candidate set re-ranked by the same BM25, no match scored past it;
* :mod:`.goals` - shopping instructions generated from products, and the fixed test/train splits;
* :mod:`.reward` - WebShop's purchase reward (attributes, options, price, type match);
* :mod:`.pages` - the " [SEP] "-joined text of the search, results, item and sub-pages;
* :mod:`.env` - :class:`WebShopEnv`, the :class:`~agentrm_gym.core.TextEnv` tying them together.
"""

from __future__ import annotations

from agentrm_gym.envs.webshop.catalogue import Catalogue, Product, build_catalogue, ensure_catalogue
from agentrm_gym.envs.webshop.env import WebShopEnv
from agentrm_gym.envs.webshop.reward import Goal, purchase_reward

__all__ = ["Catalogue", "Goal", "Product", "WebShopEnv", "build_catalogue", "ensure_catalogue", "purchase_reward"]
