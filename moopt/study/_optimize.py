"""The search loop: ask a candidate, evaluate it (or serve it from the cache), tell the result."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from moopt._config import Config, make_config
from moopt._data import load_dataset, split
from moopt._errors import CandidateError, StudyError
from moopt._front import ObjectiveInfo, Remeasured, front_trials
from moopt._version import __version__
from moopt.search import FAMILY_PARAM, resolve_space, suggest
from moopt.study._storage import open_storage, storage_description
from moopt.study._trial import SearchContext, evaluate, replay_cached
from objectives import (
    Accuracy,
    Direction,
    Isolation,
    Latency,
    Objective,
    PeakMemory,
    RuntimeSettings,
    SamplingRule,
)

if TYPE_CHECKING:
    from moopt._reverify import Reverification

#: Study user attribute holding moopt's record of the run (settings, data, objectives).
STUDY_ATTR = "moopt"
#: Study user attribute holding the last re-verification of the front.
REVERIFY_ATTR = "moopt.reverification"
#: Proposals per wanted evaluation before the search gives up on finding new configurations.
_MAX_ASKS_PER_EVALUATION = 20


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run stands, sent after every trial."""

    done: int
    total: int
    failed: int
    cache_hits: int
    front_size: int
    elapsed_s: float
    last: str

    @property
    def remaining_s(self) -> float | None:
        """Estimated seconds left (None before the first evaluation)."""
        if self.done == 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)


@dataclass(frozen=True)
class RunSummary:
    """What this run did."""

    evaluated: int
    failed: int
    cache_hits: int
    elapsed_s: float
    interrupted: bool
    exhausted: bool
    failures: tuple[tuple[int, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Result:
    """A finished (or interrupted) run: the study, its front and what the run did."""

    study: optuna.Study
    config: Config
    objectives: tuple[ObjectiveInfo, ...]
    front: tuple[optuna.trial.FrozenTrial, ...]
    summary: RunSummary
    record: Mapping[str, Any]
    reverification: Reverification | None = None

    @property
    def overrides(self) -> Mapping[int, Remeasured] | None:
        """Re-verified numbers of the front members, by trial (None when not re-verified)."""
        return self.reverification.remeasured if self.reverification else None


def default_objectives(config: Config) -> list[Objective]:
    """Accuracy, latency at the configured percentile, and peak memory."""
    rule = SamplingRule(
        percentile=config.latency_percentile,
        max_time_s=config.latency_max_time_s,
        hard_cap_s=max(10.0, 10 * config.latency_max_time_s),
    )
    return [
        Accuracy(scorer=config.scorer),
        Latency(percentile=config.latency_percentile, rule=rule),
        PeakMemory(),
    ]


def population_size(config: Config) -> int:
    """NSGA-II's population: the configured one, else about a fifth of the trials (8 to 50)."""
    if config.population_size is not None:
        return config.population_size
    return min(50, max(8, round(config.trials / 5)))


def _open_study(
    config: Config, record: dict[str, Any], directions: Sequence[Direction]
) -> optuna.Study:
    storage = open_storage(config.storage, config.out)
    names = optuna.study.get_all_study_names(storage)
    if config.study in names:
        study = optuna.load_study(study_name=config.study, storage=storage)
        stored = study.user_attrs.get(STUDY_ATTR)
        if stored is None:
            raise StudyError(
                f"The study '{config.study}' in "
                f"{storage_description(config.storage, config.out)} was not made "
                "by moopt; pass another --study name."
            )
        diff = sorted(
            k for k in record["config"] if stored["config"].get(k) != record["config"][k]
        )
        if diff:
            k = diff[0]
            raise StudyError(
                f"The study '{config.study}' was run with {k}={stored['config'].get(k)!r}, but "
                f"this run has {k}={record['config'][k]!r}; a study's trials must be measured "
                "alike. Use another --study name or --out folder, or the original settings."
            )
        return study
    pop = population_size(config)
    record = {**record, "population_size": pop}
    study = optuna.create_study(storage=storage, study_name=config.study, directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o["name"] for o in record["objectives"]])
    study.set_user_attr(STUDY_ATTR, record)
    return study


def _sampler(config: Config, study: optuna.Study) -> optuna.samplers.BaseSampler:
    record = study.user_attrs[STUDY_ATTR]
    # Reseed by the trials already there: a resumed run or a second worker must not replay
    # the same proposals.
    return optuna.samplers.NSGAIISampler(
        population_size=record["population_size"], seed=config.seed + len(study.trials)
    )


def optimize(
    config: Config | None = None,
    *,
    objectives: Sequence[Objective] | None = None,
    isolation: Isolation | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    write: bool = True,
    **settings: Any,
) -> Result:
    """Search for the trade-offs between accuracy, latency and peak memory.

    Args:
        config: Validated settings; or leave it out and pass settings as keywords
            (``optimize(dataset="iris", trials=20)``), validated like the config file.
        objectives: Override the objectives (the first three built-ins by default). Extra ones
            are optimized too; the latency and peak-memory objectives must stay.
        isolation: How latency and memory are isolated (default: fresh pinned process, lock).
        progress: Called after every trial.
        write: Write the output folder (front.json, front.csv, report.html, models/).

    Returns:
        The study, its feasible Pareto front and a summary of this run.

    Raises:
        MooptError: Invalid settings or data, or a study that does not fit them; nothing is
            written to the output folder then.
    """
    if config is None:
        config = make_config(settings)
    elif settings:
        raise TypeError("Pass either a Config or keyword settings, not both.")
    dataset = load_dataset(config.dataset, config.target)
    data_split = split(dataset, config.test_size, config.split_seed, config.stratify)
    space = resolve_space(config.families, config.space)
    objs = list(objectives) if objectives is not None else default_objectives(config)
    settings_rt = RuntimeSettings(
        batch_size=config.batch_size,
        intra_op_threads=config.threads,
        graph_optimization=config.graph_optimization,
    )
    ctx = SearchContext(
        space=space,
        split=data_split,
        objectives=objs,
        settings=settings_rt,
        budgets=config.budgets,
        parity_tolerance=config.parity_tolerance,
        seed=config.seed,
        isolation=isolation or Isolation(),
        artifacts=config.out / "artifacts",
    )
    record = {
        "config": config.identity(),
        "data": data_split.record,
        "objectives": [i.as_dict() for i in ctx.infos],
        "runtime": settings_rt.as_dict(),
        "moopt": __version__,
    }
    study = _open_study(config, record, [o.direction for o in objs])
    study.sampler = _sampler(config, study)
    summary = _search(study, ctx, config.trials, progress)
    reverification = None
    if config.reverify and not summary.interrupted:
        from moopt._reverify import reverify

        latency = next(o for o in objs if isinstance(o, Latency))
        reverification = reverify(study.trials, ctx, latency)
        study.set_user_attr(REVERIFY_ATTR, reverification.as_dict())
    overrides = reverification.remeasured if reverification else None
    front = tuple(front_trials(study.trials, ctx.infos, overrides))
    record = study.user_attrs[STUDY_ATTR]
    result = Result(study, config, ctx.infos, front, summary, record, reverification)
    if write:
        from moopt._export import write_outputs

        write_outputs(result, ctx)
    return result


@dataclass
class _Tally:
    evaluated: int = 0
    failed: int = 0
    hits: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)


def _cacheable(trial: optuna.trial.FrozenTrial) -> bool:
    """An evaluated trial whose outcome a repeat of its configuration would reproduce."""
    if "candidate_key" not in trial.user_attrs or "cached_from" in trial.user_attrs:
        return False
    if trial.state == optuna.trial.TrialState.COMPLETE:
        return True
    # Fit and conversion failures repeat; measurement failures may be passing faults.
    return trial.user_attrs.get("stage") in ("fit", "convert")


def _run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    ctx: SearchContext,
    cache: dict[str, optuna.trial.FrozenTrial],
    tally: _Tally,
) -> str:
    """Propose, evaluate (or serve from the cache) and tell one trial; returns a status line."""
    candidate = suggest(trial, ctx.space)
    source = cache.get(candidate.key)
    if source is not None:
        tally.hits += 1
        values = replay_cached(trial, source)
        if values is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, values)
        return f"trial {trial.number}: same as trial {source.number}, from the cache"
    tally.evaluated += 1
    trial.set_user_attr("family", candidate.family)
    trial.set_user_attr("params", dict(candidate.params))
    trial.set_user_attr("candidate_key", candidate.key)
    try:
        values = evaluate(trial, candidate, ctx)
    except CandidateError as exc:
        tally.failed += 1
        tally.failures.append((trial.number, str(exc)))
        trial.set_user_attr("error", str(exc))
        trial.set_user_attr("stage", exc.stage)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        line = f"trial {trial.number} failed: {exc}"
    else:
        study.tell(trial, values)
        line = f"trial {trial.number}: {candidate.family}"
    cache[candidate.key] = study.trials[trial.number]
    return line


def _search(
    study: optuna.Study,
    ctx: SearchContext,
    wanted: int,
    progress: Callable[[ProgressEvent], None] | None,
) -> RunSummary:
    cache = {t.user_attrs["candidate_key"]: t for t in study.trials if _cacheable(t)}
    tally = _Tally()
    asks = 0
    interrupted = False
    start = time.perf_counter()
    trial: optuna.Trial | None = None
    try:
        while tally.evaluated < wanted and asks < _MAX_ASKS_PER_EVALUATION * wanted:
            asks += 1
            trial = study.ask()
            line = _run_trial(study, trial, ctx, cache, tally)
            trial = None
            if progress is not None:
                progress(
                    ProgressEvent(
                        done=tally.evaluated,
                        total=wanted,
                        failed=tally.failed,
                        cache_hits=tally.hits,
                        front_size=len(front_trials(study.trials, ctx.infos)),
                        elapsed_s=time.perf_counter() - start,
                        last=line,
                    )
                )
    except KeyboardInterrupt:
        interrupted = True
        if trial is not None and study.trials[trial.number].state.is_finished() is False:
            trial.set_user_attr("error", "interrupted by the user")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    exhausted = tally.evaluated < wanted and not interrupted
    return RunSummary(
        tally.evaluated,
        tally.failed,
        tally.hits,
        time.perf_counter() - start,
        interrupted,
        exhausted,
        tuple(tally.failures),
    )


def family_of(trial: optuna.trial.FrozenTrial) -> str:
    """The family a trial proposed (also for failed trials)."""
    return str(trial.user_attrs.get("family") or trial.params.get(FAMILY_PARAM, "?"))
