"""The reference's three judge prompts (spec §3.3, §3.4), shipped verbatim as package data.

The texts contain literal JSON braces, so they are filled by named-slot substitution in one pass
(never ``str.format``).  ``PROMPT_VERSION`` is a hash of the three texts: results record it, so a
changed prompt is visible in every summary.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib import resources

NAMES = ("wip_extract", "wip_match", "rec_reason")
_SLOT = re.compile(r"\{(TEXT|GT_WIPS_JSON|MODEL_WIPS_JSON|GT_REASON|MODEL_REASON)\}")


@lru_cache(maxsize=None)
def template(name: str) -> str:
    return resources.files("recif_bench.judges").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **slots: str) -> str:
    """The whole user message of one judge call: ``template(name)`` with its slots filled."""
    text = template(name)
    missing = set(_SLOT.findall(text)) - set(slots)
    if missing:
        raise KeyError(f"prompt {name} needs {sorted(missing)}")
    return _SLOT.sub(lambda m: slots[m.group(1)], text)


def prompt_version() -> str:
    digest = hashlib.sha256("\0".join(template(n) for n in NAMES).encode("utf-8"))
    return "openonerec-1f4a99e/" + digest.hexdigest()[:8]
