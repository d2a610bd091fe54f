"""Datasets and the hold-out split: the only place data input is parsed.

The split is scikit-learn's ``train_test_split`` with the recorded ``test_size``,
``random_state=split_seed`` and ``stratify=y`` (when stratified) on the dataset as loaded, with
features as float32, so anyone can rebuild the hold-out from ``front.json``'s ``data`` record.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moopt._errors import DataError

#: scikit-learn's bundled classification sets (no download needed).
BUNDLED = ("breast_cancer", "digits", "iris", "wine")


@dataclass(frozen=True)
class Dataset:
    """Features (float32), integer labels and the names behind them."""

    source: str
    target: str | None
    features: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    feature_names: tuple[str, ...] = field(repr=False)
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Split:
    """Train rows, hold-out rows and the record that rebuilds them."""

    train_features: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_features: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    record: dict[str, Any]


def _load_bundled(name: str) -> Dataset:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = tuple(str(n) for n in getattr(bunch, "feature_names", range(bunch.data.shape[1])))
    classes = tuple(str(c) for c in getattr(bunch, "target_names", np.unique(bunch.target)))
    return Dataset(
        name, None, bunch.data.astype(np.float32), bunch.target.astype(np.int64), names, classes
    )


def _load_csv(path: Path, target: str | None) -> Dataset:
    if target is None:
        raise DataError(
            f"A CSV dataset needs its label column: pass --target COLUMN for '{path}'."
        )
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read the CSV file '{path}': {exc}.") from exc
    if len(rows) < 2:
        raise DataError(
            f"The CSV file '{path}' needs a header row and data rows; got {len(rows)} row(s)."
        )
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise DataError(
            f"The target column '{target}' is not in '{path}'. Its columns are: "
            f"{', '.join(header)}. Pass one of them with --target."
        )
    t = header.index(target)
    feature_cols = [i for i in range(len(header)) if i != t]
    if not feature_cols:
        raise DataError(f"'{path}' has no feature columns besides the target '{target}'.")
    features = np.empty((len(rows) - 1, len(feature_cols)), dtype=np.float32)
    labels: list[str] = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(
                f"Row {r} of '{path}' has {len(row)} cells; expected {len(header)} "
                "like the header. Fix or remove that row."
            )
        labels.append(row[t].strip())
        for j, c in enumerate(feature_cols):
            cell = row[c].strip()
            try:
                value = float(cell)
            except ValueError:
                raise DataError(
                    f"Column '{header[c]}' of '{path}' must be numeric, but row {r} holds "
                    f"'{cell}'. Encode it as numbers (e.g. one-hot) or drop the column."
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"Column '{header[c]}' of '{path}' holds '{cell}' at row {r}; "
                    "features must be finite numbers. Impute or drop such rows."
                )
            features[r - 2, j] = value
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"The target column '{target}' of '{path}' has a single class; "
            "classification needs at least two."
        )
    return Dataset(
        str(path),
        target,
        features,
        codes.astype(np.int64),
        tuple(header[c] for c in feature_cols),
        tuple(str(c) for c in classes),
    )


def load_dataset(source: str, target: str | None = None) -> Dataset:
    """Load a bundled scikit-learn set by name, or a CSV file with a label column.

    Raises:
        DataError: Unknown name, missing file or column, non-numeric features.
    """
    if source in BUNDLED:
        if target is not None:
            raise DataError(
                f"The bundled dataset '{source}' has its own labels; drop "
                f"--target '{target}' or pass a CSV file."
            )
        return _load_bundled(source)
    path = Path(source)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise DataError(f"The CSV file '{source}' does not exist. Check the path.")
        return _load_csv(path, target)
    raise DataError(
        f"Unknown dataset '{source}'. Expected one of {', '.join(BUNDLED)} or a "
        "path to a .csv file."
    )


def split(dataset: Dataset, test_size: float, split_seed: int, stratify: bool) -> Split:
    """Split into train and hold-out rows, reproducibly from the returned record.

    Raises:
        DataError: Too few rows per class for a stratified split of that size.
    """
    from sklearn.model_selection import train_test_split

    try:
        xtr, xte, ytr, yte = train_test_split(
            dataset.features,
            dataset.labels,
            test_size=test_size,
            random_state=split_seed,
            stratify=dataset.labels if stratify else None,
        )
    except ValueError as exc:
        raise DataError(
            f"Cannot split '{dataset.source}' with test_size={test_size}: {exc} "
            "Use more rows, a different test_size, or stratify = false."
        ) from exc
    record = {
        "source": dataset.source,
        "target": dataset.target,
        "test_size": test_size,
        "split_seed": split_seed,
        "stratify": stratify,
        "rows": len(dataset.labels),
        "features": dataset.features.shape[1],
        "classes": list(dataset.classes),
    }
    return Split(xtr, ytr, xte, yte, record)
