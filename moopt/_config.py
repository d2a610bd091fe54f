"""Settings of a run: parsed from a TOML file and command-line flags, validated once, frozen.

Every command-line flag of ``moopt run`` is a top-level key of the config file with the same
name (dashes become underscores); per-family hyperparameter ranges go in ``[space.<family>]``
tables. Flags override the file. Validation happens here and nowhere else.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from moopt._errors import ConfigError
from moopt.search import FAMILIES, SAMPLERS
from objectives import GraphOptimization

GRAPH_LEVELS = ("disable", "basic", "extended", "all")
#: Scorers the search can optimize (it searches classifiers).
CLASSIFICATION_SCORERS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")


@dataclass(frozen=True)
class Budgets:
    """Hard limits a deployable model must meet; None means no limit."""

    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    min_accuracy: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The budgets that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Config:
    """Everything a run needs; see the README's config reference for each key."""

    dataset: str = "digits"
    target: str | None = None
    test_size: float = 0.25
    split_seed: int = 0
    stratify: bool = True
    families: tuple[str, ...] = tuple(FAMILIES)
    scorer: str = "accuracy"
    sampler: str = "nsga2"
    trials: int = 100
    seed: int = 0
    population_size: int | None = None
    batch_size: int = 1
    threads: int | None = None
    graph_optimization: GraphOptimization | None = None
    quantize: bool = True
    latency_percentile: float = 95.0
    latency_max_time_s: float = 1.5
    budgets: Budgets = field(default_factory=Budgets)
    parity_tolerance: float = 0.01
    reverify: bool = True
    heartbeat_s: int = 60
    trial_timeout_s: float | None = None
    trial_memory_mb: float | None = None
    workers: int = 1
    storage: str | None = None
    study: str = "moopt"
    out: Path = Path("moopt-out")
    space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """The settings a study is bound to: resuming with others would mix incomparable trials."""
        return {
            "dataset": self.dataset,
            "target": self.target,
            "test_size": self.test_size,
            "split_seed": self.split_seed,
            "stratify": self.stratify,
            "families": list(self.families),
            "seed": self.seed,
            "scorer": self.scorer,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "graph_optimization": self.graph_optimization,
            "quantize": self.quantize,
            "latency_percentile": self.latency_percentile,
            "budgets": self.budgets.as_dict(),
            "parity_tolerance": self.parity_tolerance,
            "trial_timeout_s": self.trial_timeout_s,
            "trial_memory_mb": self.trial_memory_mb,
            "space": {k: dict(v) for k, v in sorted(self.space.items())},
        }


_BUDGET_KEYS = tuple(f.name for f in fields(Budgets))
_KEYS = tuple(f.name for f in fields(Config) if f.name != "budgets") + _BUDGET_KEYS


def _number(
    key: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    integer: bool = False,
    low_open: bool = False,
) -> Any:
    kind = "an int" if integer else "a number"
    lo = "(" if low_open else "["
    hi = "inf)" if high == math.inf else f"{high:g}]"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if (
        isinstance(value, bool)
        or not ok_type
        or (not integer and not math.isfinite(value))
        or value < low
        or (low_open and value == low)
        or value > high
    ):
        raise ConfigError(
            f"The '{key}' setting must be {kind} in the range {lo}{low:g}, {hi}. "
            f"Got {value!r} instead."
        )
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"The '{key}' setting must be a non-empty string. Got {value!r} instead."
        )
    return value.strip()


def _families(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"The 'families' setting must be a list of family names or a "
            f"comma-separated string. Got {value!r} instead."
        )
    if not value:
        raise ConfigError(
            f"The 'families' setting names no family. Expected a subset of: {', '.join(FAMILIES)}."
        )
    for name in value:
        if name not in FAMILIES:
            hint = difflib.get_close_matches(name, FAMILIES, n=1)
            guess = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(
                f"Unknown model family '{name}'.{guess} Expected a subset of: "
                f"{', '.join(FAMILIES)}."
            )
    return tuple(dict.fromkeys(value))


def _space(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise ConfigError(
            "The 'space' setting must be a table of [space.<family>] tables, "
            f"e.g. [space.rf] n_estimators = [10, 100]. Got {value!r} instead."
        )
    return {str(k): dict(v) for k, v in value.items()}


def make_config(values: Mapping[str, Any]) -> Config:
    """Validate settings (from a config file and flags, already merged) into a :class:`Config`.

    Raises:
        ConfigError: An unknown key or an invalid value; the message names the key and the fix.
    """
    for key in values:
        if key not in _KEYS:
            hint = difflib.get_close_matches(key, _KEYS, n=1)
            guess = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(
                f"Unknown setting '{key}'.{guess} See the README's config reference for every key."
            )
    v = dict(values)
    out: dict[str, Any] = {}
    if "dataset" in v:
        out["dataset"] = _text("dataset", v["dataset"])
    if v.get("target") is not None:
        out["target"] = _text("target", v["target"])
    if "test_size" in v:
        out["test_size"] = float(
            _number("test_size", v["test_size"], low=0.0, high=0.9, low_open=True)
        )
    for key in ("split_seed", "seed"):
        if key in v:
            out[key] = _number(key, v[key], low=0, integer=True)
    for key in ("reverify", "quantize"):
        if key in v:
            if not isinstance(v[key], bool):
                raise ConfigError(
                    f"The '{key}' setting must be true or false. Got {v[key]!r} instead."
                )
            out[key] = v[key]
    if "stratify" in v:
        if not isinstance(v["stratify"], bool):
            raise ConfigError(
                f"The 'stratify' setting must be true or false. Got {v['stratify']!r} instead."
            )
        out["stratify"] = v["stratify"]
    if "families" in v:
        out["families"] = _families(v["families"])
    if "sampler" in v:
        if v["sampler"] not in SAMPLERS:
            raise ConfigError(
                f"The 'sampler' setting must be one of {', '.join(SAMPLERS)}. "
                f"Got {v['sampler']!r} instead."
            )
        out["sampler"] = v["sampler"]
    if "scorer" in v:
        if v["scorer"] not in CLASSIFICATION_SCORERS:
            raise ConfigError(
                f"The 'scorer' setting must be one of {', '.join(CLASSIFICATION_SCORERS)}. "
                f"Got {v['scorer']!r} instead."
            )
        out["scorer"] = v["scorer"]
    if v.get("trial_timeout_s") is not None:
        out["trial_timeout_s"] = float(
            _number("trial_timeout_s", v["trial_timeout_s"], low=0.0, low_open=True)
        )
    if v.get("trial_memory_mb") is not None:
        out["trial_memory_mb"] = float(
            _number("trial_memory_mb", v["trial_memory_mb"], low=0.0, low_open=True)
        )
    if "heartbeat_s" in v:
        out["heartbeat_s"] = _number("heartbeat_s", v["heartbeat_s"], low=1, integer=True)
    if "workers" in v:
        out["workers"] = _number("workers", v["workers"], low=1, high=256, integer=True)
    if "trials" in v:
        out["trials"] = _number("trials", v["trials"], low=1, integer=True)
    if v.get("population_size") is not None:
        out["population_size"] = _number(
            "population_size", v["population_size"], low=2, integer=True
        )
    if "batch_size" in v:
        out["batch_size"] = _number("batch_size", v["batch_size"], low=1, integer=True)
    if "threads" in v:
        out["threads"] = _number("threads", v["threads"], low=1, high=256, integer=True)
    if "graph_optimization" in v and v["graph_optimization"] not in GRAPH_LEVELS:
        raise ConfigError(
            f"The 'graph_optimization' setting must be one of "
            f"{', '.join(GRAPH_LEVELS)}. Got {v['graph_optimization']!r} instead."
        )
    if "graph_optimization" in v:
        out["graph_optimization"] = v["graph_optimization"]
    if "latency_percentile" in v:
        p = _number("latency_percentile", v["latency_percentile"], low=50, high=99)
        out["latency_percentile"] = float(p)
    if "latency_max_time_s" in v:
        out["latency_max_time_s"] = float(
            _number(
                "latency_max_time_s", v["latency_max_time_s"], low=0.0, high=600, low_open=True
            )
        )
    if "parity_tolerance" in v:
        out["parity_tolerance"] = float(
            _number("parity_tolerance", v["parity_tolerance"], low=0.0, high=1.0)
        )
    budgets: dict[str, float] = {}
    for key in ("max_latency_ms", "max_memory_mb"):
        if v.get(key) is not None:
            budgets[key] = float(_number(key, v[key], low=0.0, low_open=True))
    if v.get("min_accuracy") is not None:
        budgets["min_accuracy"] = float(
            _number("min_accuracy", v["min_accuracy"], low=0.0, high=1.0)
        )
    out["budgets"] = Budgets(**budgets)
    if v.get("storage") is not None:
        out["storage"] = _text("storage", v["storage"])
    if "study" in v:
        out["study"] = _text("study", v["study"])
    if "out" in v:
        out["out"] = Path(_text("out", str(v["out"])))
    if "space" in v:
        out["space"] = _space(v["space"])
        unused = [f for f in out["space"] if f not in out.get("families", tuple(FAMILIES))]
        if unused:
            raise ConfigError(
                f"[space.{unused[0]}] sets ranges for a family that is not "
                "searched; add it to 'families' or remove the table."
            )
    return Config(**out)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into plain settings (not yet validated).

    Raises:
        ConfigError: The file is missing, unreadable or not valid TOML.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"The config file '{p}' does not exist. Check the path given to --config."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the config file '{p}': {exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"The config file '{p}' is not valid TOML: {exc}. Fix the syntax."
        ) from exc
