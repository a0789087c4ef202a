"""lm-eval model classes that return K candidates per request: recif-hf, recif-vllm, recif-openai, recif-rec.

Importing this package registers them with lm-eval; each backend imports its heavy dependencies
(torch, vllm, openai) only when it is instantiated.
"""

from __future__ import annotations

import importlib
from typing import Any

_BACKEND_MODULES = ("rec", "hf", "vllm_backend", "openai_backend")


def register_all() -> None:
    for name in _BACKEND_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def build_model(name: str, args: dict[str, Any]):
    """An lm-eval ``LM`` from a registered name (``recif-hf``...) and constructor arguments."""
    from lm_eval.api.registry import get_model

    register_all()
    return get_model(name).create_from_arg_obj(args)
