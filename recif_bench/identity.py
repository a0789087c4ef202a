"""What a model *is*, for resuming a run and for telling leaderboard rows apart.

A local checkpoint is identified by the content of its weight, config and tokenizer files (a
SHA-256 per file, cached by path + size + mtime so a 16 GB checkpoint is read once); a served
model by its name and endpoint (no credentials); a hub id by its cached snapshot when there is one,
else by the id.  Two folders with the same file names and sizes but different weights differ.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from recif_bench.paths import cache_root
from typing import Any, Mapping

# files of a model folder that decide what it computes (others: logs, trainer state, READMEs)
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".model", ".tiktoken")
_MODEL_FILE_NAMES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
                     "chat_template.jinja", "chat_template.json", "meta.json", "codes.json")
# model_args that do not change an answer (how fast, where, and the secrets)
_NEUTRAL_ARGS = frozenset({"batch_size", "max_batch_size", "device", "api_key", "timeout", "max_retries",
                           "gpu_memory_utilization", "tensor_parallel_size", "data_parallel_size",
                           "pipeline_parallel_size", "swap_space", "enforce_eager", "enable_prefix_caching",
                           "enable_chunked_prefill", "trust_remote_code"})


def cache_file() -> Path:
    return cache_root() / "file_hashes.json"


def file_digest(path: Path, cache: dict[str, str] | None = None) -> str:
    """SHA-256 of one file's bytes; ``cache`` maps ``path|size|mtime_ns`` to a digest computed before."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if cache is not None and key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if cache is not None:
        cache[key] = value
    return value


def content_fingerprint(path: str | Path) -> str:
    """``sha256:<16 hex>`` of a checkpoint file, or of a folder's model files (names and contents)."""
    path = Path(path)
    files = [path] if path.is_file() else model_files(path)
    cache = _read_cache()
    before = dict(cache)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{file_digest(file, cache)}\n".encode())
    if cache != before:
        _write_cache(cache)
    return "sha256:" + digest.hexdigest()[:16]


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder that decide its outputs (top level only: checkpoint-*/ are other states)."""
    return sorted(p for p in folder.iterdir() if p.is_file()
                  and (p.name in _MODEL_FILE_NAMES or p.suffix in _MODEL_FILE_SUFFIXES))


def model_identity(source: str, backend: str, model_args: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that decides a model's answers: its content (or served name + endpoint) and settings.

    A resumed run reuses stored answers only when this is equal to the stored one.
    """
    from recif_bench.judges.settings import public_url

    if backend == "openai":
        content = f"served:{source}@{public_url(str(model_args.get('base_url') or 'https://api.openai.com/v1'))}"
    else:
        content = local_fingerprint(str(model_args.get("checkpoint") or source))
    settings = {k: str(v) for k, v in sorted(model_args.items())
                if k not in _NEUTRAL_ARGS and k not in ("pretrained", "model", "base_url", "checkpoint")}
    for key in ("fast_model",):   # another model's path: identify it by its content too
        if key in settings:
            settings[key] = local_fingerprint(settings[key])
    return {"backend": backend, "model": content, "settings": settings}


def local_fingerprint(source: str) -> str:
    """Content hash of a local file or folder; a hub id's cached snapshot; else the name itself."""
    path = Path(source)
    if path.exists():
        return content_fingerprint(path)
    snapshot = _hub_snapshot(source)
    return content_fingerprint(snapshot) if snapshot else source


def describe_difference(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """``model sha256:a != sha256:b`` for the first field that differs (for a one-line refusal)."""
    for key in ("backend", "model"):
        if stored.get(key) != current.get(key):
            return f"{key} {stored.get(key)} != {current.get(key)}"
    old, new = stored.get("settings", {}), current.get("settings", {})
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key}={old.get(key)} != {key}={new.get(key)}"
    return "identical"


def _hub_snapshot(repo_id: str) -> Path | None:
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/")):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:   # not cached, or not a valid id: the id itself identifies the model
        return None


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict[str, str]) -> None:
    """Best effort: a read-only cache folder only costs a re-hash next time."""
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass
