"""Where generated data (catalogues, game files, scenes, models) is cached on disk."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$AGENTRM_CACHE`` (default ``~/.cache/agentrm_gym``) joined with ``parts``, created on demand."""
    root = Path(os.environ.get("AGENTRM_CACHE", Path.home() / ".cache" / "agentrm_gym"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
