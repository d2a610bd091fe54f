"""`moopt replay`: the search run against a table of pre-measured configurations.

The table (CSV) has one row per configuration: a ``family`` column, hyperparameter columns
(empty where a family does not use them) and the objective columns named by ``--objectives``.
The search space comes from the table: a family's hyperparameters are the columns filled in
on its rows; numeric ones are searched as numbers over their observed range (on a log scale
when they span more than a factor of 10), others as categories. A proposal is snapped to the
nearest observed value of each hyperparameter and looked up; a combination missing from the
table is rejected at no cost. The budget counts distinct rows evaluated.

Where a family and a hyperparameter have the names of one of moopt's (``gb`` and
``learning_rate``), the family's first trial starts at moopt's anchor for it, snapped to the
table, as ``moopt run`` starts it (:func:`moopt.search.known_anchor`); other first trials
start at the low corner.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from moopt._errors import ConfigError, DataError
from moopt.search import (
    Candidate,
    Choice,
    Family,
    FloatRange,
    IntRange,
    Strategy,
    first_trials,
    known_anchor,
    make_sampler,
    suggest,
)
from moopt.study import Rejected, run_loop
from objectives import Direction


@dataclass(frozen=True)
class TableObjective:
    """An objective column and its direction."""

    name: str
    direction: Direction


def parse_objectives(spec: str) -> list[TableObjective]:
    """Parse ``"accuracy:max,latency_ms:min"``.

    Raises:
        ConfigError: An entry is not ``name:max`` or ``name:min``, or a name repeats.
    """
    out: list[TableObjective] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        name, _, way = item.partition(":")
        if way not in ("max", "min") or not name:
            raise ConfigError(
                f"Each objective must be written name:max or name:min, got "
                f"'{item}'. Example: --objectives \"accuracy:max,latency_ms:min\"."
            )
        out.append(TableObjective(name, "maximize" if way == "max" else "minimize"))
    if len(out) < 2:
        raise ConfigError(f"--objectives needs at least two objectives, got {len(out)}.")
    if len({o.name for o in out}) != len(out):
        raise ConfigError("--objectives names an objective twice; name each once.")
    return out


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ReplayTable:
    """A table of measured configurations, its search space and its lookup index."""

    path: str
    rows: tuple[Mapping[str, Any], ...]
    objectives: tuple[TableObjective, ...]
    space: Mapping[str, Family]
    observed: Mapping[tuple[str, str], tuple[Any, ...]] = field(repr=False)
    index: Mapping[str, int] = field(repr=False)

    def values(self, row: int) -> list[float]:
        """The objective values of a row, in objective order."""
        return [float(self.rows[row][o.name]) for o in self.objectives]

    def snap(self, candidate: Candidate) -> Candidate:
        """The candidate with each hyperparameter moved to its nearest observed value."""
        family = self.space[candidate.family]
        snapped: dict[str, Any] = {}
        for name, value in candidate.params.items():
            seen = self.observed[(candidate.family, name)]
            param = family.params[name]
            if isinstance(param, Choice):
                snapped[name] = value
                continue
            log = param.log

            def distance(x: Any, value: Any = value, log: bool = log) -> float:
                if log:
                    return abs(math.log(float(x)) - math.log(float(value)))
                return abs(float(x) - float(value))

            snapped[name] = min(seen, key=distance)
        return Candidate(candidate.family, snapped)


def _looked_up_only(_: Mapping[str, Any], __: int) -> Any:
    """The ``build`` of a replay family: its models are looked up in the table, never built."""
    raise NotImplementedError("replay families are looked up in their table, never built")


def load_table(path: str | Path, objectives: Sequence[TableObjective]) -> ReplayTable:
    """Read and check a replay table.

    Raises:
        DataError: Unreadable file, no ``family`` column, a missing or non-numeric objective
            column, or a hyperparameter filled in on only some rows of a family.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Cannot read the replay table '{path}': {exc}.") from exc
    if not rows:
        raise DataError(f"The replay table '{path}' has no data rows.")
    columns = list(rows[0])
    if "family" not in columns:
        raise DataError(
            f"The replay table '{path}' needs a 'family' column; its columns are: "
            f"{', '.join(columns)}."
        )
    for o in objectives:
        if o.name not in columns:
            raise DataError(
                f"The objective '{o.name}' is not a column of '{path}'. Its "
                f"columns are: {', '.join(columns)}."
            )
        for i, row in enumerate(rows):
            if _number(row[o.name] or "") is None:
                raise DataError(
                    f"Objective '{o.name}' must be a number on every row, but data "
                    f"row {i} holds '{row[o.name]}'. Fix or drop that row."
                )
    hyper = [c for c in columns if c != "family" and c not in {o.name for o in objectives}]
    families: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        families.setdefault(row["family"].strip(), []).append(i)
    space: dict[str, Family] = {}
    observed: dict[tuple[str, str], tuple[Any, ...]] = {}
    for fam, members in families.items():
        params: dict[str, Any] = {}
        for col in hyper:
            cells = [rows[i][col].strip() for i in members]
            filled = [c for c in cells if c != ""]
            if not filled:
                continue
            if len(filled) != len(cells):
                raise DataError(
                    f"Column '{col}' is filled in on some rows of family '{fam}' "
                    "and empty on others; fill it on every row of the family or "
                    "on none."
                )
            numbers = [_number(c) for c in filled]
            if all(n is not None for n in numbers):
                values = sorted({float(n) for n in numbers if n is not None})
                integral = all(v.is_integer() for v in values)
                typed: tuple[Any, ...] = tuple(int(v) if integral else v for v in values)
                lo, hi = values[0], values[-1]
                log = lo > 0 and hi / lo > 10
                if len(values) == 1:
                    params[col] = Choice(typed)
                elif integral:
                    params[col] = IntRange(int(lo), int(hi), log=log)
                else:
                    params[col] = FloatRange(lo, hi, log=log)
            else:
                typed = tuple(sorted(set(filled)))
                params[col] = Choice(typed)
            observed[(fam, col)] = typed
        anchor = {
            p: a
            for p, param in params.items()
            if not isinstance(param, Choice) and (a := known_anchor(fam, p)) is not None
        }
        space[fam] = Family(fam, fam, params, _looked_up_only, anchor=anchor)
    index: dict[str, int] = {}
    for fam, members in families.items():
        for i in members:
            candidate = Candidate(
                fam, {p: _typed(rows[i][p], observed[(fam, p)]) for p in space[fam].params}
            )
            index.setdefault(candidate.key, i)
    return ReplayTable(str(path), tuple(rows), tuple(objectives), space, observed, index)


def _typed(cell: str, seen: tuple[Any, ...]) -> Any:
    cell = cell.strip()
    if seen and isinstance(seen[0], int | float) and not isinstance(seen[0], bool):
        value = float(cell)
        return int(value) if isinstance(seen[0], int) else value
    return cell


@dataclass(frozen=True)
class ReplayRecord:
    """One distinct row evaluated, in the order the search evaluated it."""

    row: int
    values: Mapping[str, float]


def replay(
    table: ReplayTable,
    budget: int,
    seed: int,
    strategy: Strategy | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> list[ReplayRecord]:
    """Run a search strategy against the table.

    Args:
        table: The measured configurations.
        budget: Distinct rows to evaluate (the run also stops when the table is exhausted).
        seed: Seed of the sampler and the first trials.
        strategy: moopt's strategy (default: ``nsga2`` with the flat encoding).
        sampler: A baseline instead: any Optuna sampler, with the conditional encoding and no
            first trials, as a hand-written Optuna script would run it.

    Returns:
        The distinct rows evaluated, in order. The same seed gives the same output.
    """
    if budget < 1:
        raise ConfigError(f"The budget must be an int in the range [1, inf). Got {budget}.")
    strategy = strategy or Strategy()
    flat = sampler is None and strategy.flat

    def propose(trial: optuna.trial.BaseTrial) -> Candidate:
        return table.snap(suggest(trial, table.space, flat=flat))

    if sampler is not None:
        chosen, first = sampler, []
    else:
        chosen = make_sampler(strategy, seed, budget, len(table.space), propose)
        first = (
            _table_grid(table, seed)
            if strategy.name == "grid"
            else list(first_trials(strategy, table.space, budget, seed))
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=[o.direction for o in table.objectives], sampler=chosen)
    for params in first:
        study.enqueue_trial(params)
    records: list[ReplayRecord] = []

    def evaluate(trial: optuna.Trial, candidate: Candidate) -> list[float]:
        row = table.index.get(candidate.key)
        if row is None:
            raise Rejected(f"{candidate.family} {dict(candidate.params)} is not in the table")
        values = table.values(row)
        records.append(
            ReplayRecord(row, {o.name: v for o, v in zip(table.objectives, values, strict=True)})
        )
        trial.set_user_attr("row", row)
        return values

    run_loop(study, propose, evaluate, budget, exhausted=lambda: len(records) >= len(table.rows))
    return records


def _table_grid(table: ReplayTable, seed: int) -> list[dict[str, Any]]:
    """The grid baseline on a table: every row once, in a shuffled order."""
    order = list(range(len(table.rows)))
    random.Random(seed).shuffle(order)
    trials = []
    for i in order:
        fam = table.rows[i]["family"].strip()
        trials.append(
            {
                "family": fam,
                **{
                    f"{fam}.{p}": _typed(table.rows[i][p], table.observed[(fam, p)])
                    for p in table.space[fam].params
                },
            }
        )
    return trials


def write_jsonl(records: Sequence[ReplayRecord], out: str | Path) -> None:
    """One JSON line per distinct row evaluated: ``{"row": i, "values": {...}}``."""
    from moopt._export import write_atomic

    write_atomic(
        Path(out),
        "".join(json.dumps({"row": r.row, "values": dict(r.values)}) + "\n" for r in records),
    )
