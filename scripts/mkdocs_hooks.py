"""MkDocs hooks (``hooks:`` in mkdocs.yml).

``docs/contributing.md`` is ``CONTRIBUTING.md`` itself, included as a snippet, so that the repository's file and
the site's page are one text. Its links are written for the repository's root (``docs/tutorials/plugin.md``,
which is what GitHub shows); on the site the page sits inside ``docs/``, so the hook includes the file itself
and drops the ``docs/`` prefix of its links before the links are checked.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_INCLUDE = '--8<-- "CONTRIBUTING.md"'
_ROOT_LINK = re.compile(r"\]\(docs/")


def on_page_markdown(markdown: str, page: Any, config: Any, **_: Any) -> str:
    if page.file.src_uri != "contributing.md" or _INCLUDE not in markdown:
        return markdown
    text = (Path(config["config_file_path"]).parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    return markdown.replace(_INCLUDE, _ROOT_LINK.sub("](", text))
