from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

from moopt import DataError, load_dataset, split


def test_split_is_rebuilt_from_its_record() -> None:
    s = split(load_dataset("wine"), test_size=0.3, split_seed=4, stratify=True)
    r = s.record
    x, y = load_wine(return_X_y=True)
    _, xte, _, yte = train_test_split(
        x.astype(np.float32), y, test_size=r["test_size"], random_state=r["split_seed"], stratify=y
    )
    np.testing.assert_array_equal(s.test_features, xte)
    np.testing.assert_array_equal(s.test_labels, yte)
    assert s.test_features.dtype == np.float32


def test_csv_with_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    rows = ["a,b,kind"] + [f"{i},{i % 7},{'cat' if i % 2 else 'dog'}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    data = load_dataset(str(path), "kind")
    assert data.features.shape == (40, 2) and data.classes == ("cat", "dog")
    assert set(np.unique(data.labels)) == {0, 1}


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        (
            "a,b,y\n1,2,0\n3,4,1\n",
            "label",
            r"target column 'label' is not in .*Its columns are: "
            r"a, b, y",
        ),
        ("a,b,y\n1,x,0\n3,4,1\n", "y", r"Column 'b' of .* must be numeric, but row 2 holds 'x'"),
        ("a,b,y\n1,,0\n3,4,1\n", "y", r"Column 'b' .* must be numeric, but row 2 holds ''"),
        ("a,b,y\n1,nan,0\n3,4,1\n", "y", r"features must be finite numbers"),
        ("a,b,y\n1,2\n", "y", r"Row 2 .* has 2 cells; expected 3"),
        ("a,y\n1,0\n2,0\n", "y", r"has a single class"),
    ],
)
def test_bad_csv_files(tmp_path: Path, content: str, target: str, message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), target)


def test_unknown_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Unknown dataset 'mnist'\. Expected one of "):
        load_dataset("mnist")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("missing.csv", "y")
    existing = tmp_path / "d.csv"
    existing.write_text("a,y\n1,0\n2,1\n")
    with pytest.raises(DataError, match="needs its label column: pass --target"):
        load_dataset(str(existing))
    with pytest.raises(DataError, match="has its own labels"):
        load_dataset("iris", "species")
