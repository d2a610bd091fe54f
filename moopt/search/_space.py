"""The search space: model families as data, each with its own hyperparameter ranges.

A family declares its hyperparameters and how to build a scikit-learn estimator from them
(with a scaler in front where the family needs one). The space is conditional: a trial first
picks a family, then that family's hyperparameters, named ``<family>.<param>`` in Optuna.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from moopt._errors import ConfigError


@dataclass(frozen=True)
class IntRange:
    """Integers from ``low`` to ``high`` inclusive, optionally on a log scale."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    """Reals from ``low`` to ``high``, optionally on a log scale."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of a few listed values."""

    options: tuple[Any, ...]


Param = IntRange | FloatRange | Choice


@dataclass(frozen=True)
class Family:
    """A model family: its hyperparameters and how to build an estimator from them.

    Attributes:
        name: Short name used on the command line (``rf``).
        title: Human name (``random forest``).
        params: Hyperparameter ranges by name.
        build: ``build(params, seed)`` returns an unfitted scikit-learn estimator.
        quantizable: Whether int8 dynamic quantization applies to its ONNX graph.
        stages: For iterative learners: the built estimator's stage-count parameter, its
            warm-start parameter, and whether a warm-started fit counts stages in total
            (gradient boosting's ``n_estimators``) or as more stages (an MLP's ``max_iter``);
            training can then stop early when it cannot reach an accuracy floor.
        anchor: The family's first trial where its *low corner* (every hyperparameter at the
            low end) would be a degenerate model: hyperparameters that set the model's size
            stay at their cheap end, the others take a sensible middle value (an SVC's
            ``gamma``, a boosting's learning rate for few stages). Values outside a range
            that a configuration narrowed are clamped into it.
    """

    name: str
    title: str
    params: Mapping[str, Param]
    build: Callable[[Mapping[str, Any], int], Any] = field(repr=False, compare=False)
    quantizable: bool = False
    stages: tuple[str, str, bool] | None = None
    anchor: Mapping[str, Any] = field(default_factory=dict, compare=False)


#: Graph optimization levels searched when the level is not fixed ("disable" is never better).
GRAPH_LEVELS_SEARCHED = ("basic", "extended", "all")


@dataclass(frozen=True)
class RuntimeSpace:
    """The deployment knobs searched next to the hyperparameters.

    Attributes:
        threads: ONNX Runtime intra-op thread counts to choose from (one: fixed).
        graph_optimization: Graph optimization levels to choose from (one: fixed).
        quantize: Offer int8 dynamic quantization to families whose graph it applies to.
    """

    threads: tuple[int, ...] = (1,)
    graph_optimization: tuple[str, ...] = ("all",)
    quantize: bool = False


def _scaled(estimator: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), estimator)


def _logreg(p: Mapping[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return _scaled(LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=seed))


def _rf(p: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        min_samples_leaf=p["min_samples_leaf"],
        max_features=p["max_features"],
        random_state=seed,
        n_jobs=1,
    )


def _et(p: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        min_samples_leaf=p["min_samples_leaf"],
        max_features=p["max_features"],
        random_state=seed,
        n_jobs=1,
    )


def _gb(p: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        learning_rate=p["learning_rate"],
        subsample=p["subsample"],
        random_state=seed,
    )


def _mlp(p: Mapping[str, Any], seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    layers = (p["hidden_units"],) * p["layers"]
    return _scaled(
        MLPClassifier(
            hidden_layer_sizes=layers,
            alpha=p["alpha"],
            learning_rate_init=p["learning_rate_init"],
            max_iter=300,
            early_stopping=False,
            random_state=seed,
        )
    )


def _svc(p: Mapping[str, Any], seed: int) -> Any:
    from sklearn.svm import SVC

    return _scaled(SVC(C=p["C"], gamma=p["gamma"], kernel="rbf", random_state=seed))


def _knn(p: Mapping[str, Any], seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return _scaled(KNeighborsClassifier(n_neighbors=p["n_neighbors"], weights=p["weights"]))


_TREES: dict[str, Param] = {
    "n_estimators": IntRange(5, 300, log=True),
    "max_depth": IntRange(2, 32, log=True),
    "min_samples_leaf": IntRange(1, 8),
    "max_features": Choice(("sqrt", "log2")),
}

#: Every built-in family, by name.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "logreg",
            "logistic regression",
            {"C": FloatRange(1e-3, 1e2, log=True), "max_iter": IntRange(100, 1000, log=True)},
            _logreg,
            anchor={"C": 1.0},
        ),
        Family("rf", "random forest", dict(_TREES), _rf),
        Family("et", "extra trees", dict(_TREES), _et),
        Family(
            "gb",
            "gradient boosting",
            {
                "n_estimators": IntRange(10, 150, log=True),
                "max_depth": IntRange(1, 4),
                "learning_rate": FloatRange(0.02, 0.5, log=True),
                "subsample": FloatRange(0.5, 1.0),
            },
            _gb,
            stages=("n_estimators", "warm_start", True),
            anchor={"learning_rate": 0.5, "subsample": 1.0},
        ),
        Family(
            "mlp",
            "multi-layer perceptron",
            {
                "hidden_units": IntRange(8, 256, log=True),
                "layers": IntRange(1, 2),
                "alpha": FloatRange(1e-6, 1e-2, log=True),
                "learning_rate_init": FloatRange(1e-4, 1e-2, log=True),
            },
            _mlp,
            quantizable=True,
            stages=("mlpclassifier__max_iter", "mlpclassifier__warm_start", False),
            anchor={"alpha": 1e-4, "learning_rate_init": 1e-3},
        ),
        Family(
            "svc",
            "support vector classifier",
            {"C": FloatRange(0.1, 100.0, log=True), "gamma": FloatRange(1e-4, 0.1, log=True)},
            _svc,
            anchor={"C": 1.0, "gamma": 0.01},
        ),
        Family(
            "knn",
            "k-nearest neighbours",
            {"n_neighbors": IntRange(1, 30), "weights": Choice(("uniform", "distance"))},
            _knn,
        ),
    )
}


def _override(family: Family, name: str, value: Any) -> Param:
    current = family.params.get(name)
    where = f"space.{family.name}.{name}"
    if current is None:
        raise ConfigError(
            f"Unknown hyperparameter '{name}' for family '{family.name}' (in "
            f"{where}). Expected one of: {', '.join(sorted(family.params))}."
        )
    if isinstance(current, Choice):
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where} must be a non-empty list of options, got {value!r}.")
        unknown = [v for v in value if v not in current.options]
        if unknown:
            raise ConfigError(
                f"{where} holds unknown options {unknown}; expected a subset of "
                f"{list(current.options)}."
            )
        return Choice(tuple(value))
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"{where} must be a [low, high] pair of numbers, got {value!r}.")
    low, high = value
    if low > high:
        raise ConfigError(f"{where} has low > high ({low} > {high}); write it as [{high}, {low}].")
    if isinstance(current, IntRange):
        if low != int(low) or high != int(high):
            raise ConfigError(f"{where} must be a pair of integers, got {value!r}.")
        low, high = int(low), int(high)
    if current.log and low <= 0:
        raise ConfigError(f"{where} is on a log scale, so low must be > 0; got {low}.")
    return replace(current, low=low, high=high)


def resolve_space(
    names: tuple[str, ...], overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Family]:
    """The families to search, with the user's range overrides applied.

    Args:
        names: Family names, e.g. ``("logreg", "rf")``.
        overrides: ``{family: {param: [low, high] or [options]}}`` from the config's ``space``.

    Raises:
        ConfigError: An unknown family or hyperparameter, or an invalid range.
    """
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ConfigError(
            f"Unknown model family '{unknown[0]}'. Expected a comma-separated "
            f"subset of: {', '.join(FAMILIES)}."
        )
    if not names:
        raise ConfigError("families must name at least one model family, got none.")
    overrides = overrides or {}
    for family_name in overrides:
        if family_name not in FAMILIES:
            raise ConfigError(
                f"Unknown model family '{family_name}' in space. Expected one "
                f"of: {', '.join(FAMILIES)}."
            )
    space: dict[str, Family] = {}
    for name in names:
        family = FAMILIES[name]
        changed = {k: _override(family, k, v) for k, v in overrides.get(name, {}).items()}
        space[name] = replace(family, params={**family.params, **changed})
    return space


def known_anchor(family: str, param: str) -> Any | None:
    """moopt's anchor (:attr:`Family.anchor`) for a hyperparameter of a family named elsewhere.

    A replay table's families carry no anchors of their own; where they are moopt's, its
    first trials should start where ``moopt run`` starts them. The anchor is the built-in
    family's of that name if it has one; else, for a family moopt does not know, the anchor
    every built-in family that anchors a hyperparameter of that name agrees on (``C``, a
    boosting's ``learning_rate``).

    Args:
        family: Family name, e.g. ``"gb"``.
        param: Hyperparameter name, e.g. ``"learning_rate"``.

    Returns:
        The anchor value, or None where moopt knows none.
    """
    if family in FAMILIES:
        return FAMILIES[family].anchor.get(param)
    anchors = [f.anchor[param] for f in FAMILIES.values() if param in f.anchor]
    agreed = {repr(a): a for a in anchors}
    return next(iter(agreed.values())) if len(agreed) == 1 else None
