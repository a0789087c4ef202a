"""Checks of ``--model`` and ``--model-args`` made before any data or weights load.

A model folder that ships its own code (an ``auto_map`` in its config) is refused unless
``trust_remote_code=true`` is given: loading it would run that code.  A folder without config or
tokenizer files, a path that does not exist, an uncached hub id offline, a misspelled model-arg
(``batch_sise``) or a bad value (``batch_size=-1``) each end the run with one line naming the
input, before the run folder is touched.  :func:`load_error` turns what a backend raises while
loading (OSError, ValueError) into the same kind of line.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, Mapping

from recif_bench.options import TRUE, as_bool
from recif_bench.schema import SchemaError, check_keys

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")
# model-args whose value must be a positive integer (batch_size may also be "auto")
_POSITIVE_INTS = ("batch_size", "max_length", "max_retries", "top_logprobs", "max_logprobs", "max_model_len",
                  "tensor_parallel_size", "data_parallel_size", "pipeline_parallel_size")


class ModelError(ValueError):
    """A model or model-arg that cannot be used; the message names it."""


def trusts_remote_code(model_args: Mapping[str, Any]) -> bool:
    """Only an explicit ``trust_remote_code=true`` lets a model folder's own code run."""
    try:
        return as_bool(model_args.get("trust_remote_code"), "trust_remote_code")
    except ValueError as exc:
        raise ModelError(f"--model-args {exc}") from None


def check_source(model: str, model_args: Mapping[str, Any], what: str = "--model") -> None:
    """A local model folder has a config and a tokenizer and no code we were not asked to run;
    a name that is no folder must be a hub id (and cached, when offline)."""
    path = Path(model).expanduser()
    if path.is_dir():
        check_folder(path, trusts_remote_code(model_args), what)
        return
    if path.exists():
        raise ModelError(f"{what} {model}: a file, not a model folder (config.json + weights + tokenizer)")
    if _looks_like_path(model):
        raise ModelError(f"{what} {model}: no such model folder")
    if _offline() and not _hub_cached(model):
        raise ModelError(f"{what} {model}: not a local folder and not in the Hugging Face cache "
                         "(offline: HF_HUB_OFFLINE=1); give a model folder")


def check_folder(path: Path, trust_remote_code: bool, what: str = "--model") -> None:
    config_path = path / "config.json"
    if not config_path.exists():
        raise ModelError(f"{what} {path}: not a model folder (no config.json)")
    config = _json(config_path, what)
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise ModelError(f"{what} {path}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])})")
    if not trust_remote_code and isinstance(config, dict) and config.get("auto_map") \
            and not _known_architecture(config.get("model_type")):
        raise ModelError(f"{what} {path}: config.json asks to run the folder's own code (auto_map, model_type "
                         f"{config.get('model_type')!r}); it is not run unless you pass --trust-remote-code")


def check_model_args(backend_class: type, model_args: Mapping[str, Any], extra: tuple[str, ...] = ()) -> None:
    """Every key is a parameter of the backend (nearest valid name otherwise); numbers are positive."""
    params = [p for p in inspect.signature(backend_class.__init__).parameters.values()
              if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"]
    known = {p.name for p in params} | set(extra) | set(getattr(backend_class, "EXTRA_ARGS", ()))
    try:
        check_keys(model_args, known, "--model-args ")
    except SchemaError as exc:
        raise ModelError(str(exc)) from None
    for key in _POSITIVE_INTS:
        value = model_args.get(key)
        if value is None or (key == "batch_size" and str(value) == "auto"):
            continue
        if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
            raise ModelError(f"--model-args {key}={value}: expected a positive integer")


def load_error(model: str, exc: BaseException) -> ModelError:
    """What a backend raised while loading ``model``, as one line naming it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[-1] if lines else type(exc).__name__
    if "couldn't connect" in detail or "offline" in detail.lower() or isinstance(exc, OSError) and not Path(model).exists():
        detail = "not found locally and the Hugging Face hub is not reachable"
    return ModelError(f"--model {model}: cannot load ({detail})")


def _known_architecture(model_type: Any) -> bool:
    """transformers has its own class for it, so loading without the folder's code works."""
    from transformers import CONFIG_MAPPING

    return isinstance(model_type, str) and model_type in CONFIG_MAPPING


def _json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{what} {path}: not valid JSON ({exc})") from None


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else (./x, /x, a/b/c, x/) is a local path."""
    return name.startswith((".", "/", "~")) or name.endswith("/") or name.count("/") > 1 or os.sep != "/" and os.sep in name


def _offline() -> bool:
    return any(os.environ.get(var, "").lower() in TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:   # an id huggingface_hub rejects is not cached either
        return False
