"""The text of WebShop's pages, as its text-mode env shows them: visible strings joined with " [SEP] ".

Each renderer returns a :class:`Page`: the observation and the clickable labels in page order (what
``click[...]`` accepts, case-insensitively). The page kinds are the search page, a results page (10 items
a page, at most 50 results), an item page (option groups with their values, title, price, rating and the
Description / Features / Reviews / Buy Now buttons), its three sub-pages, and the purchase confirmation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agentrm_gym.envs.webshop.catalogue import PAGE_SIZE, Product

SEP = " [SEP] "
BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
BUY_NOW = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")


@dataclass(frozen=True)
class Page:
    """A rendered page: its observation text and its clickable labels."""

    text: str
    clickables: tuple[str, ...]


def search_page(instruction: str) -> Page:
    return Page(SEP.join(("WebShop", "Instruction:", instruction, "Search")), ())


def num_pages(total: int) -> int:
    return max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)


def results_page(results: Sequence[str], page: int, products: Mapping[str, Product]) -> Page:
    """Page ``page`` (1-based) of ``results`` (asins); ``products`` maps the page's asins to products."""
    parts = [BACK_TO_SEARCH, f"Page {page} (Total results: {len(results)})"]
    clickables = [BACK_TO_SEARCH]
    if page > 1:
        parts.append(PREV_PAGE)
        clickables.append(PREV_PAGE)
    if page < num_pages(len(results)):
        parts.append(NEXT_PAGE)
        clickables.append(NEXT_PAGE)
    for asin in results[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]:
        product = products[asin]
        parts += [product.asin, product.title, f"${product.price:.2f}"]
        clickables.append(product.asin)
    return Page(SEP.join(parts), tuple(clickables))


def item_page(product: Product) -> Page:
    parts = [BACK_TO_SEARCH, PREV_PAGE]
    clickables = [BACK_TO_SEARCH, PREV_PAGE]
    for name, values in product.options.items():
        parts.append(name)
        parts += values
        clickables += values
    rating = "N.A." if product.rating is None else f"{product.rating:.1f}"
    parts += [product.title, f"Price: ${product.price:.2f}", f"Rating: {rating}", *SUB_PAGES, BUY_NOW]
    clickables += [*SUB_PAGES, BUY_NOW]
    return Page(SEP.join(parts), tuple(clickables))


def sub_page(product: Product, which: str) -> Page:
    """The Description, Features or Reviews page of ``product``."""
    parts = [BACK_TO_SEARCH, PREV_PAGE]
    if which == "Description":
        parts.append(product.description)
    elif which == "Features":
        parts += product.bullets
    elif which == "Reviews":
        if not product.reviews:
            parts.append("No reviews yet.")
        for stars, title, body in product.reviews:
            parts += [title, f"{stars} out of 5 stars", body]
    else:
        raise ValueError(f"unknown sub-page {which!r}; expected one of {SUB_PAGES}")
    return Page(SEP.join(parts), (BACK_TO_SEARCH, PREV_PAGE))


def purchase_page(product: Product, chosen: Mapping[str, str], score: float) -> Page:
    """The confirmation shown after Buy Now (the episode is over; nothing is clickable)."""
    options = ", ".join(f"{k}: {v}" for k, v in chosen.items()) or "none"
    parts = ["Thank you for shopping with us!", "Purchased", product.asin, product.title,
             f"Options: {options}", "Your score (min 0.0, max 1.0)", f"{score:.2f}"]
    return Page(SEP.join(parts), ())
