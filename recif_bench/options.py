"""Option values as they arrive from ``--model-args`` and task YAML args: strings to be read as typed values.

One reader per type, so every backend and task accepts the same spellings.
"""

from __future__ import annotations

from typing import Any

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", "", "none"})


def as_bool(value: Any, name: str = "option") -> bool:
    """``True`` / ``"true"`` / ``"yes"`` / ``"on"`` / ``"1"`` (any case) is true, their opposites and None false;
    anything else is a :class:`ValueError` naming the option, not a silent false."""
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use true/false, yes/no, on/off or 1/0)")
