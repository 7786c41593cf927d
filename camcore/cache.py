"""Where camcore keeps downloaded and derived files (converted weights, fine-tuned models)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "CAMCORE_CACHE"


def cache_dir(*parts: str) -> Path:
    """``$CAMCORE_CACHE/<parts>`` (default ``~/.cache/camcore/<parts>``), created if missing."""
    root = Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "camcore")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
