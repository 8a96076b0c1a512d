"""Dataset layouts: the one list of built-in layouts, detection, and opening a folder as a ``Dataset``.

A folder is read through (in this order) ``--card FILE``, ``--layout NAME``, a ``dataset.toml`` card inside
it, or the one built-in layout whose file names it matches; no match or several is one line listing the
candidates and saying to pass ``--layout``.
"""
from __future__ import annotations

from pathlib import Path

from uasbench.data.layouts.base import Dataset, Layout
from uasbench.data.layouts.brats import Brats
from uasbench.data.layouts.decathlon import Msd, NnUnet
from uasbench.data.layouts.public import Atlas2, Isles22, Ixi, Mslub, Wmh
from uasbench.errors import UasbenchError, UsageError

LAYOUTS: tuple[Layout, ...] = (Brats("brats2021"), Brats("brats2023"), Ixi(), Mslub(), Atlas2(), Wmh(), Isles22(),
                               NnUnet(), Msd())
LAYOUT_NAMES: tuple[str, ...] = tuple(layout.name for layout in LAYOUTS)


def get_layout(name: str) -> Layout:
    """The built-in layout ``name``; UsageError listing the choices otherwise."""
    for layout in LAYOUTS:
        if layout.name == name:
            return layout
    raise UsageError(f"--layout {name}: unknown layout (choose from {', '.join(LAYOUT_NAMES)})")


def matching_layouts(root: Path) -> list[Layout]:
    """The built-in layouts whose file names ``root`` matches (nothing is read)."""
    return [layout for layout in LAYOUTS if layout.detect(root)]


def detect_layout(root: Path) -> Layout:
    """The one built-in layout whose names ``root`` matches; UasbenchError listing candidates otherwise."""
    matches = matching_layouts(root)
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(m.name for m in matches)
        raise UasbenchError(f"data folder {root} matches several layouts ({names}); pass --layout NAME")
    raise UasbenchError(f"data folder {root}: no known dataset layout found (candidates: {', '.join(LAYOUT_NAMES)}); "
                        "pass --layout NAME, or describe the files in a dataset card (dataset.toml)")


def open_dataset(root: Path, layout: str | None = None, card: Path | None = None) -> Dataset:
    """``root`` read through ``card``, ``layout``, its own ``dataset.toml`` or the detected layout."""
    from uasbench.data.card import CARD_FILE, load_card, open_card_dataset

    root = Path(root)
    if layout is not None and card is not None:
        raise UsageError("give --layout or --card, not both (a card describes a layout of its own)")
    chosen = None if layout is None else get_layout(layout)  # an unknown name is refused before the folder
    if not root.is_dir():
        raise UasbenchError(f"data folder {root} does not exist or is not a folder")
    if card is None and chosen is None and (root / CARD_FILE).is_file():
        card = root / CARD_FILE
    if card is not None:
        return open_card_dataset(root, load_card(card))
    return (chosen or detect_layout(root)).open(root)
