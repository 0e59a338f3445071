"""The WebShop text environment over the generated catalogue (see the package docstring)."""

from __future__ import annotations

import re
from typing import Any

from agentrm_gym.core import StepOutcome, TextEnv
from agentrm_gym.envs.webshop.catalogue import (
    DEFAULT_NUM_PRODUCTS,
    DEFAULT_SEED,
    PAGE_SIZE,
    Catalogue,
    Product,
    check_num_products,
    ensure_catalogue,
)
from agentrm_gym.envs.webshop.goals import GoalSet, search_text
from agentrm_gym.envs.webshop.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    SUB_PAGES,
    Page,
    item_page,
    purchase_page,
    results_page,
    search_page,
    sub_page,
)
from agentrm_gym.envs.webshop.reward import Goal, best_options, purchase_reward
from agentrm_gym.perturbation import Perturbation

_ACTION_RE = re.compile(r"(search|click)\[(.*)\]", re.IGNORECASE | re.DOTALL)
MAX_QUERY_CHARS = 500
_SEARCH, _RESULTS, _ITEM, _DONE = "search", "results", "item", "done"
#: ``perturbation >= 1``: ``find[...]`` / ``select[...]``; goals open and cap the price in other words.
_OPENERS = {"i need ": "please locate ", "i am looking for ": "help me track down ", "find me ": "search out ",
            "i want to buy ": "i wish to purchase ", "i'd like ": "i would love ", "get me ": "pick out for me "}
PERTURBATION = Perturbation(
    [("search[{query}]", "find[{query}]"), ("click[{label}]", "select[{label}]")],
    observation_phrases=[(r"\bsearch\[", "find["), (r"\bclick\[", "select[")],
    instruction_phrases=[(r"\bsearch\[", "find["), (r"\bclick\[", "select[")],
    goal_rules=[*((f"^{re.escape(o)}", n) for o, n in _OPENERS.items()),
                (r", and price lower than ([0-9.]+) dollars$", r", with a budget under \1 dollars")],
    action_rules=[(f"^search\\[{re.escape(o)}", f"search[{n}") for o, n in _OPENERS.items()],
)


def _short(text: str, limit: int = 60) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class WebShopEnv(TextEnv):
    """You are web shopping: find and buy the product that the instruction describes.

    ## Description
    A re-implementation of Princeton's WebShop text environment (Yao et al., 2022) as ETO and AgentBoard
    use it, over a generated catalogue of 10,000 products in six categories (beauty, grocery, fashion,
    electronics, home, sports) stored in SQLite with FTS5/BM25 search. Each task is a shopping
    instruction generated from a target product: attributes, one value per option group and a price cap.

    ## Action Space
    ``search[keywords]`` on the search page (any non-empty keywords) and ``click[label]`` with a label
    clickable on the current page (case-insensitive): ``Back to Search``, ``Next >``, ``< Prev``, a
    product id (``B0...``) on a results page, an option value, ``Description``, ``Features``, ``Reviews``
    and ``Buy Now`` on an item page. Anything else is answered "Invalid action! ..." naming the valid
    actions, with ``action_valid=False``. ``admissible_actions`` lists the page's clicks; on the search
    page it holds one concrete search, the instruction without its price clause (any search is valid).

    ## Observation Space
    WebShop's text mode: the page's visible strings joined with " [SEP] ", e.g.
    "WebShop [SEP] Instruction: [SEP] i need ... [SEP] Search", "Back to Search [SEP] Page 1 (Total
    results: 50) [SEP] Next > [SEP] B0... [SEP] <title> [SEP] $12.99 [SEP] ...", and item pages
    "Back to Search [SEP] < Prev [SEP] size [SEP] 8 fl oz [SEP] ... [SEP] <title> [SEP] Price: $9.99
    [SEP] Rating: 4.5 [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now".

    ## Rewards
    The increase of AgentBoard's progress rate: the mean of the best results-page score (the best
    purchase reward among the listed products, no options chosen), the best item-page score (the viewed
    product with the chosen options) and the purchase score. Scores are WebShop's purchase reward
    (attributes, options and price matched, times the type factor; see :mod:`.reward`).

    ## Starting State / Episode End
    Reset shows the search page with the instruction. ``click[Buy Now]`` ends the episode (terminated);
    success means the purchase scored 1. Truncated by ``max_episode_steps`` (10).

    ## Arguments
    ``split`` ("train" or "test"), ``num_products`` (catalogue size, default 10,000; 400 to 2,000,000,
    WebShop's own is 1,180,000; above 10,000 bulk-built and searched top-k, see :mod:`.catalogue`),
    ``catalogue_seed``,
    ``goal_seed``, ``num_train`` (train goals, default 5,000), ``perturbation`` (0..4: ``find[...]`` /
    ``select[...]`` instead of ``search[...]`` / ``click[...]``, reworded goals; :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version.
    """

    task_name = "WebShop"
    invalid_action_message = "Invalid action!"
    command_vocabulary = ("search[shampoo]", "click[Back to Search]", "click[Next >]", "click[< Prev]",
                          "click[Buy Now]", "click[Description]")

    def __init__(self, split: str = "train", render_mode: str | None = None,
                 num_products: int = DEFAULT_NUM_PRODUCTS, catalogue_seed: int = DEFAULT_SEED,
                 goal_seed: int = 0, num_train: int = 5000, perturbation: int = 0):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        if num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        self.num_products = num_products = check_num_products(num_products)
        self.catalogue = Catalogue(ensure_catalogue(num_products, catalogue_seed))
        self.goals = GoalSet(self.catalogue, num_products, num_train=num_train, seed=goal_seed)
        self._goal_spec: Goal | None = None
        self._reward_cache: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._plan_cache: dict[tuple[str, ...], tuple[str | None, float]] = {}
        self._clear_state()

    def _clear_state(self) -> None:
        self._kind = _SEARCH
        self._sub: str | None = None
        self._query = ""
        self._results: list[str] = []
        self._page_no = 1
        self._asin: str | None = None
        self._options: dict[str, str] = {}
        self._best_search = 0.0
        self._best_item = 0.0
        self._bought = 0.0
        self._page = Page("", ())

    def close(self) -> None:
        self.catalogue.close()
        super().close()

    # ------------------------------------------------------------------ tasks
    def task_ids(self, split: str = "test") -> list[str]:
        return self.goals.task_ids(split)

    @property
    def goal_spec(self) -> Goal:
        """The current goal with its target product, attributes, options and price cap."""
        if self._goal_spec is None:
            raise RuntimeError("WebShop: call reset() first")
        return self._goal_spec

    def _load_task(self, task_id: str) -> tuple[str, str]:
        self._goal_spec = self.goals.goal(task_id)
        self._reward_cache.clear()
        self._plan_cache.clear()
        self._clear_state()
        self._render()
        return self._goal_spec.instruction, self._page.text

    # ------------------------------------------------------------------ pages
    def _product(self, asin: str) -> Product:
        product = self.catalogue.product(asin)
        if product is None:  # only reachable through a corrupted snapshot
            raise KeyError(f"WebShop: unknown product {asin!r}")
        return product

    def _page_results(self) -> list[str]:
        return self._results[(self._page_no - 1) * PAGE_SIZE: self._page_no * PAGE_SIZE]

    def _render(self) -> None:
        if self._kind == _SEARCH:
            self._page = search_page(self.goal_spec.instruction)
        elif self._kind == _RESULTS:
            shown = {a: self._product(a) for a in self._page_results()}
            self._page = results_page(self._results, self._page_no, shown)
        elif self._kind == _ITEM:
            product = self._product(self._asin or "")
            self._page = sub_page(product, self._sub) if self._sub else item_page(product)
        else:
            product = self._product(self._asin or "")
            self._page = purchase_page(product, self._options, self._bought)

    def _score(self, asin: str, options: dict[str, str] | None = None) -> float:
        key = (asin, tuple(sorted((options or {}).items())))
        hit = self._reward_cache.get(key)
        if hit is None:
            hit = purchase_reward(self._product(asin), self.goal_spec, options)
            self._reward_cache[key] = hit
        return hit

    def _invalid(self, reason: str) -> StepOutcome:
        acts = self.admissible_actions()
        if self._kind == _SEARCH:
            listed = "search[<your keywords>]"
        else:
            listed = ", ".join(acts)
        return StepOutcome(f"Invalid action! {reason} Valid actions: {listed}.", valid=False)

    # ------------------------------------------------------------------ dynamics
    def _step(self, action: str) -> StepOutcome:
        match = _ACTION_RE.fullmatch(action)
        if match is None:
            return self._invalid("Actions are search[keywords] on the search page and click[label] with a "
                                 "label shown on the current page.")
        verb, arg = match.group(1).lower(), match.group(2).strip()
        if verb == "search":
            if self._kind != _SEARCH:
                return self._invalid("search[...] is only available on the search page; click[Back to Search] "
                                     "first.")
            if not arg:
                return self._invalid("search[...] needs some keywords.")
            if "\x00" in arg:
                return self._invalid("search keywords cannot contain NUL characters.")
            self._query = arg[:MAX_QUERY_CHARS]
            self._results = self.catalogue.search(self._query)
            self._page_no = 1
            self._kind = _RESULTS
            self._render()
            self._note_results()
            return StepOutcome(self._page.text)
        label = next((c for c in self._page.clickables if c.lower() == arg.lower()), None)
        if label is None:
            return self._invalid(f"{_short(arg)!r} is not clickable on this page.")
        return self._click(label)

    def _click(self, label: str) -> StepOutcome:
        terminal = False
        if label == BACK_TO_SEARCH:
            self._kind, self._sub, self._asin, self._options = _SEARCH, None, None, {}
        elif label == NEXT_PAGE:
            self._page_no += 1
        elif label == PREV_PAGE:
            if self._kind == _RESULTS:
                self._page_no -= 1
            elif self._sub:
                self._sub = None
            else:
                self._kind, self._asin, self._options = _RESULTS, None, {}
        elif self._kind == _RESULTS:  # a product id
            self._kind, self._asin, self._sub, self._options = _ITEM, label, None, {}
        elif label in SUB_PAGES:
            self._sub = label
        elif label == BUY_NOW:
            self._bought = self._score(self._asin or "", self._options)
            self._kind = _DONE
            terminal = True
        else:  # an option value
            product = self._product(self._asin or "")
            for name, values in product.options.items():
                if label in values:
                    self._options[name] = label
                    break
        self._render()
        if self._kind == _RESULTS:
            self._note_results()
        elif self._kind == _ITEM and not self._sub:
            self._best_item = max(self._best_item, self._score(self._asin or "", self._options))
        return StepOutcome(self._page.text, terminal=terminal)

    def _note_results(self) -> None:
        for asin in self._page_results():
            self._best_search = max(self._best_search, self._score(asin))

    def _progress(self) -> float:
        return (self._best_search + self._best_item + self._bought) / 3.0

    def _success(self) -> bool:
        return self._kind == _DONE and self._bought >= 1.0 - 1e-9

    def admissible_actions(self) -> list[str]:
        if self._kind == _DONE:
            return []
        if self._kind == _SEARCH:
            return [f"search[{search_text(self.goal_spec.instruction)}]"]
        return [f"click[{c}]" for c in self._page.clickables]

    # ------------------------------------------------------------------ oracle
    def _best_of_results(self) -> tuple[str | None, float]:
        """The product the oracle would buy: the best-ranked result that fully matches the goal (the
        target or an equivalent product), else the best-scoring one; and its score with the best options."""
        key = tuple(self._results)
        hit = self._plan_cache.get(key)
        if hit is not None:
            return hit
        goal = self.goal_spec
        best: tuple[str | None, float] = (None, -1.0)
        for asin in self._results:
            score = self._score(asin, best_options(self._product(asin), goal))
            if score > best[1]:
                best = (asin, score)
            if score >= 1.0 - 1e-9:
                break
        self._plan_cache[key] = best
        return best

    def expert_action(self) -> str | None:
        """Search the goal's key terms, open the best match (the target when listed), pick options, buy."""
        if self._goal_spec is None or self._kind == _DONE:
            return None
        goal = self.goal_spec
        if self._kind == _SEARCH:
            return f"search[{goal.keywords}]"
        choice, score = self._best_of_results()
        if choice is None or (score < 1.0 - 1e-9 and self._query != goal.keywords):
            return f"click[{BACK_TO_SEARCH}]"
        if self._kind == _RESULTS:
            if choice in self._page_results():
                return f"click[{choice}]"
            target_page = self._results.index(choice) // PAGE_SIZE + 1
            return f"click[{NEXT_PAGE if target_page > self._page_no else PREV_PAGE}]"
        if self._sub or self._asin != choice:
            return f"click[{PREV_PAGE}]"
        product = self._product(choice)
        for name, value in best_options(product, goal).items():
            if self._options.get(name) != value:
                return f"click[{value}]"
        return f"click[{BUY_NOW}]"

    # ------------------------------------------------------------------ snapshots and prompt
    def perturbation_table(self) -> Perturbation:
        return PERTURBATION

    def _get_state(self) -> Any:
        return {
            "kind": self._kind, "sub": self._sub, "query": self._query, "results": list(self._results),
            "page_no": self._page_no, "asin": self._asin, "options": dict(self._options),
            "best_search": self._best_search, "best_item": self._best_item, "bought": self._bought,
        }

    def _set_state(self, state: Any) -> None:
        self._kind, self._sub, self._query = state["kind"], state["sub"], state["query"]
        self._results, self._page_no = list(state["results"]), int(state["page_no"])
        self._asin, self._options = state["asin"], dict(state["options"])
        self._best_search, self._best_item = float(state["best_search"]), float(state["best_item"])
        self._bought = float(state["bought"])
        self._render()

    def instruction(self) -> str:
        return (
            "You are web shopping. I will give you instructions about what to do. Each round you see the "
            "current web page, with its texts separated by [SEP], and you answer with one action.\n"
            "The available actions are:\n"
            "search[keywords]: search the shop; only available on the search page.\n"
            "click[value]: click a button or link shown on the page: a product id, an option value, "
            "Back to Search, Next >, < Prev, Description, Features, Reviews, or Buy Now.\n"
            "Keywords are up to you; a clicked value must be one shown on the current page. Choose the "
            "product options the instruction asks for before you click Buy Now, which ends the episode."
        )
