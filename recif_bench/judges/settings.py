"""Which judge to use: a :class:`JudgeConfig`, passed to ``evaluate()`` like the data folder.

A spec string names the judge: ``gemini[:<model>]``, ``openai:<model>[@<base_url>]`` or
``local:<path>`` (:meth:`JudgeConfig.from_spec`).  The command lines map their flags and the
environment names users already have into a config at their boundary (:func:`config_from_env`):
``RECIF_JUDGE`` (the spec), ``RECIF_JUDGE_WORKERS``, ``RECIF_JUDGE_RPM``, ``RECIF_JUDGE_CACHE``,
``RECIF_BERTSCORE_MODEL``, ``RECIF_BERTSCORE_LAYER``, and the JSON file named by
``RECIF_JUDGE_CONFIG`` (any field below, plus ``api_key``; environment variables win).
Credentials stay in the environment / that file: ``public()`` is what results may record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from recif_bench.judges.bertscore import DEFAULT_LAYER, DEFAULT_MODEL, BertScorer
from recif_bench.schema import SchemaError, build, check_keys

KINDS = ("gemini", "openai", "local")
DEFAULT_GEMINI = "gemini-2.5-flash-lite"   # the reference's judge (spec §3.3)


class JudgeConfigError(ValueError):
    """A judge spec or config that cannot work; the message names the offending input."""


# not in results: the key; where the cache lives; BERTScore (item_understand's stats record the one used)
_NOT_RECORDED = ("api_key", "cache_dir", "bertscore_model", "bertscore_layer")


@dataclass(frozen=True)
class JudgeConfig:
    kind: str
    model: str
    base_url: str | None = None
    temperature: float = 0.01          # reference: 0.01
    max_tokens: int = 10000            # reference: 10000 output tokens
    timeout: float = 120.0             # seconds per call
    max_attempts: int = 3              # reference: 3 attempts in total on retryable errors
    retry_delay: float = 2.0           # reference: sleep delay * 2**(i-1) (+ up to 30% jitter)
    max_reasks: int = 2                # re-asks of a malformed answer (the reference has none)
    workers: int = 8
    rpm: float | None = None           # calls per minute, None = unlimited
    cache_dir: str | None = None
    bertscore_model: str = DEFAULT_MODEL   # item_understand weighs matched points by BERTScore F1
    bertscore_layer: int = DEFAULT_LAYER
    api_key: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Values of the right type that still cannot work (a zero timeout fails every call) are refused."""
        for name in ("timeout", "rpm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise JudgeConfigError(f"judge {name}: must be > 0, got {value}")
        for name, low in (("max_tokens", 1), ("max_attempts", 1), ("workers", 1), ("max_reasks", 0),
                          ("temperature", 0), ("retry_delay", 0), ("bertscore_layer", 0)):
            if getattr(self, name) < low:
                raise JudgeConfigError(f"judge {name}: must be >= {low}, got {getattr(self, name)}")

    @classmethod
    def from_spec(cls, spec: str, **tuning: Any) -> "JudgeConfig":
        """``gemini:<model>`` etc. plus any field of this class."""
        kind, model, base_url = parse_spec(spec)
        return cls(kind=kind, model=model, **({"base_url": base_url} if base_url else {}), **tuning)

    def bertscorer(self) -> BertScorer:
        return BertScorer(self.bertscore_model, self.bertscore_layer)

    @property
    def comparable_with_paper(self) -> bool:
        """Only the reference's judge model gives numbers comparable with the paper's tables."""
        return self.kind == "gemini" and self.model == DEFAULT_GEMINI

    def public(self) -> dict[str, Any]:
        """The settings as results record them: no key, and a base URL without user/query parts."""
        out = {k: v for k, v in asdict(self).items() if k not in _NOT_RECORDED}
        out["base_url"] = public_url(self.base_url)
        out["comparable_with_paper"] = self.comparable_with_paper
        return out


def public_url(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """``kind:model@url`` -> (kind, model, base_url)."""
    kind, _, rest = spec.strip().partition(":")
    if kind not in KINDS:
        raise JudgeConfigError(f"judge {spec!r}: kind must be one of {', '.join(KINDS)} "
                               "(gemini:<model> | openai:<model>@<base_url> | local:<path>)")
    if kind == "gemini":
        return kind, rest or DEFAULT_GEMINI, None
    if kind == "openai":
        model, _, url = rest.partition("@")
        if not model:
            raise JudgeConfigError(f"judge {spec!r}: give the served model name, openai:<model>[@<base_url>]")
        return kind, model, url or None
    if not rest:
        raise JudgeConfigError(f"judge {spec!r}: give the model folder, local:<path>")
    return kind, rest, None


def config_from_env(env: dict[str, str] | None = None) -> JudgeConfig | None:
    """The judge the environment names, or None when ``RECIF_JUDGE`` is unset or ``none``.

    Only the command lines (``recif-eval``, and stock ``lm_eval`` through the task hooks) call this:
    the library takes a :class:`JudgeConfig`.
    """
    env = dict(os.environ if env is None else env)
    config = _read_config(env.get("RECIF_JUDGE_CONFIG"))
    where = f"{env.get('RECIF_JUDGE_CONFIG')}: "
    try:   # the whole file is checked, judge or not, so a typo never waits for the day a judge is set
        check_keys(config, {f.name for f in fields(JudgeConfig)} - {"kind", "model"} | {"judge"}, where)
        spec = env.get("RECIF_JUDGE") or config.pop("judge", None) or "none"
        if not isinstance(spec, str):
            raise JudgeConfigError(f"{where}judge: expected a spec such as gemini or openai:<model>@<url>, got {spec!r}")
        checked = build(JudgeConfig, {"kind": "openai", "model": "-", **config}, where)
    except SchemaError as exc:
        raise JudgeConfigError(str(exc)) from None
    except JudgeConfigError as exc:
        raise JudgeConfigError(f"{where}{exc}" if not str(exc).startswith(where) else str(exc)) from None
    if spec == "none":
        return None
    kind, model, base_url = parse_spec(spec)
    settings = replace(checked, kind=kind, model=model)
    overrides: dict[str, Any] = {}
    for name, var, cast in (("workers", "RECIF_JUDGE_WORKERS", int), ("rpm", "RECIF_JUDGE_RPM", float),
                            ("cache_dir", "RECIF_JUDGE_CACHE", str),
                            ("bertscore_model", "RECIF_BERTSCORE_MODEL", str),
                            ("bertscore_layer", "RECIF_BERTSCORE_LAYER", int)):
        if env.get(var):
            try:
                overrides[name] = cast(env[var])
            except ValueError:
                raise JudgeConfigError(f"{var}={env[var]!r} is not a valid {cast.__name__}") from None
    if base_url:
        overrides["base_url"] = base_url
    settings = replace(settings, **overrides)
    if settings.workers < 1:
        raise JudgeConfigError(f"judge workers must be >= 1, got {settings.workers}")
    return settings


def _read_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JudgeConfigError(f"RECIF_JUDGE_CONFIG: {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise JudgeConfigError(f"RECIF_JUDGE_CONFIG: {path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise JudgeConfigError(f"RECIF_JUDGE_CONFIG: {path} must hold a JSON object")
    return config
