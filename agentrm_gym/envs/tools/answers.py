"""Answer matching for Tool-Query: whether a given final answer equals the gold one.

:func:`normalize_answer` maps numbers (with units, currency, thousands separators) to floats and text
to lower-cased single-spaced words (``true``/``false`` to ``yes``/``no``); :func:`answers_match`
compares the normal forms, numbers to within 0.005.
"""

from __future__ import annotations

import math
import re
from typing import Any

_NUMBER_RE = re.compile(r"^[-+]?\$?\s*[-+]?(\d[\d,]*\.?\d*|\.\d+)\s*(%|km|kilometers|minutes|min|mm|cm|m)?$")


def normalize_answer(value: Any) -> str | float:
    """Canonical form of an answer: a float for anything numeric, else lower-cased single-spaced text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return float(value)
    text = " ".join(str(value).strip().lower().split()).strip(" .'\"`")
    match = _NUMBER_RE.match(text)
    if match:
        try:
            return float(match.group(1).replace(",", ""))
        except ValueError:
            pass
    return {"true": "yes", "false": "no"}.get(text, text)


def answers_match(given: Any, gold: Any) -> bool:
    """Whether two answers agree after normalisation (numbers to 2 decimals, text case/space-free)."""
    a, b = normalize_answer(given), normalize_answer(gold)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=0.005)
    return a == b
