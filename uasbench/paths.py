"""Where uasbench keeps generated data and caches (the default phantom, splits, slice caches)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$UASBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/uasbench``, else ``~/.cache/uasbench``."""
    if os.environ.get("UASBENCH_CACHE_DIR"):
        return Path(os.environ["UASBENCH_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "uasbench"
