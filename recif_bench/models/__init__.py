"""lm-eval model classes that return K candidates per request: recif-hf, recif-vllm, recif-openai, recif-rec.

Each backend module registers its class with lm-eval when imported and imports its heavy
dependencies (torch, vllm, openai) only when a model is instantiated.
"""

from __future__ import annotations

import importlib
from typing import Any

BACKEND_MODULES = {"recif-rec": "rec", "recif-hf": "hf", "recif-vllm": "vllm_backend",
                   "recif-openai": "openai_backend"}


def register_all() -> None:
    for module in BACKEND_MODULES.values():
        importlib.import_module(f"{__name__}.{module}")


def build_model(name: str, args: dict[str, Any]):
    """An lm-eval ``LM`` from a registered name (``recif-hf``...) and constructor arguments."""
    from lm_eval.api.registry import get_model

    importlib.import_module(f"{__name__}.{BACKEND_MODULES[name]}")
    return get_model(name).create_from_arg_obj(args)
