"""Credentials never reach a written file: every recorded string goes through :func:`scrub`.

A run records its command line, model source and settings; users put keys in them (``--model-args
base_url=http://u:sk-...@host/v1``, ``?key=``, ``api_key=``).  What is removed:

* the ``user:password@`` part of any URL;
* the value of a secret-named parameter (``key``, ``api_key``, ``token``, ``secret``, ``password`` ...)
  in ``name=value`` or ``--name value`` form, in URL queries and in ``k=v,k=v`` model-args;
* well-known token shapes (``sk-...``, ``hf_...``, ``AIza...``, ``ghp_...``, ``Bearer ...``);
* the value of any environment variable whose name says it is a secret, wherever it appears.
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"
_SECRET_NAME = r"(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|secret|password|passwd|pwd|key|sig|signature|credentials?)"
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"]+@")
_ASSIGNMENT = re.compile(rf"(?P<name>(?<![A-Za-z0-9_-])(?:-{{1,2}}|[A-Za-z0-9]+[_-])*{_SECRET_NAME})(?![A-Za-z0-9])(?P<sep>=|:\s*|\s+(?=\S))"
                         r"(?P<value>[^\s&,;'\"]+)", re.IGNORECASE)
_TOKEN_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
                           r"|xox[abpr]-[A-Za-z0-9-]{10,})|(?<=Bearer )[A-Za-z0-9._~+/=-]{8,}")
# cheap tests that let most strings skip the regular expressions
_NAME_HINTS = ("key", "token", "secret", "passw", "pwd", "sig", "credential")
_TOKEN_HINTS = ("sk-", "hf_", "AIza", "gh", "xox", "Bearer ")
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def scrub(text: str, secrets: list[str] | None = None, assignments: bool = True) -> str:
    """``text`` without credentials (see the module docstring); anything else is left as it was.

    ``secrets``: the secret environment values (:func:`scrub_tree` reads them once per document).
    ``assignments=False`` keeps ``name: value`` forms: model outputs are prose ("the key: price"),
    and the judge must see them as generated; only exact secrets, URL passwords and token shapes go.
    """
    for value in _secret_env_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, MASK)
    if "://" in text and "@" in text:
        text = _URL_USERINFO.sub(lambda m: m.group("scheme"), text)
    lowered = text.lower() if assignments else ""
    if assignments and any(word in lowered for word in _NAME_HINTS):
        text = _ASSIGNMENT.sub(_mask_assignment, text)
    if any(hint in text for hint in _TOKEN_HINTS):
        text = _TOKEN_SHAPES.sub(MASK, text)
    return text


def scrub_tree(value: Any, secrets: list[str] | None = None, assignments: bool = True) -> Any:
    """:func:`scrub` applied to every string (keys included) of a JSON-like document."""
    secrets = _secret_env_values() if secrets is None else secrets
    if isinstance(value, str):
        return scrub(value, secrets, assignments)
    if isinstance(value, dict):
        return {scrub(k, secrets, assignments) if isinstance(k, str) else k: scrub_tree(v, secrets, assignments)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_tree(v, secrets, assignments) for v in value]
    return value


def _mask_assignment(match: re.Match) -> str:
    separator = match.group("sep")
    if separator.isspace() and not match.group("name").startswith("-"):
        return match.group(0)   # "the key points" is prose; only "--api-key VALUE" is a flag with a value
    return f"{match.group('name')}{separator}{MASK}"


def _secret_env_values() -> list[str]:
    """Values of secret-named environment variables, longest first (8+ characters: no false hits on '1')."""
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)
