"""The search loop: ask a candidate, evaluate it (or serve it from the cache), tell the result."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from moopt._config import Config, make_config
from moopt._data import load_dataset, split
from moopt._errors import StudyError
from moopt._front import ObjectiveInfo, Remeasured, front_trials
from moopt._version import __version__
from moopt.search import (
    GRAPH_LEVELS_SEARCHED,
    Candidate,
    Family,
    RuntimeSpace,
    Strategy,
    first_trials,
    make_sampler,
    population_for,
    resolve_space,
    suggest,
)
from moopt.study._loop import ProgressEvent, RunSummary, run_loop
from moopt.study._storage import JOURNAL_NAME, open_storage, storage_description
from moopt.study._trial import SearchContext, evaluate
from moopt.study._workers import evaluations, run_local_workers, summarize
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
#: Set in the environment of local worker processes started by `moopt run --workers`.
WORKER_ENV = "MOOPT_LOCAL_WORKER"
#: Study user attribute holding the last re-verification of the front.
REVERIFY_ATTR = "moopt.reverification"


@dataclass(frozen=True)
class Result:
    """A finished (or interrupted) run: the study, its front and what the run did."""

    study: optuna.Study
    config: Config
    objectives: tuple[ObjectiveInfo, ...]
    front: tuple[optuna.trial.FrozenTrial, ...]
    summary: RunSummary | None
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


def _open_study(
    config: Config,
    record: dict[str, Any],
    directions: Sequence[Direction],
    space: Mapping[str, Family],
) -> optuna.Study:
    storage = open_storage(config.storage, config.out, config.heartbeat_s)
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
    pop = population_for(config.trials, len(space), config.population_size)
    record = {**record, "population_size": pop}
    study = optuna.create_study(storage=storage, study_name=config.study, directions=directions)
    strategy = Strategy(config.sampler, population=pop)
    for params in first_trials(strategy, space, config.trials, config.seed):
        study.enqueue_trial(params, skip_if_exists=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o["name"] for o in record["objectives"]])
    study.set_user_attr(STUDY_ATTR, record)
    return study


def runtime_space(config: Config, workers: int = 1) -> RuntimeSpace:
    """The deployment knobs a run searches: those the config does not fix.

    With several local workers, the measuring CPU is kept free of training, so a model may
    use at most the other cores' worth of threads.
    """
    import psutil

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    if workers > 1:
        cores = max(1, cores - 1)
    threads = (config.threads,) if config.threads else tuple(range(1, cores + 1))
    levels = (config.graph_optimization,) if config.graph_optimization else GRAPH_LEVELS_SEARCHED
    return RuntimeSpace(threads=threads, graph_optimization=levels, quantize=config.quantize)


def make_context(
    config: Config,
    objectives: Sequence[Objective] | None = None,
    isolation: Isolation | None = None,
    workers: int = 1,
) -> SearchContext:
    """Load the data, resolve the space and the objectives: what every trial of a run shares.

    Raises:
        MooptError: Invalid data or space.
    """
    dataset = load_dataset(config.dataset, config.target)
    return SearchContext(
        space=resolve_space(config.families, config.space),
        split=split(dataset, config.test_size, config.split_seed, config.stratify),
        objectives=list(objectives) if objectives is not None else default_objectives(config),
        settings=RuntimeSettings(batch_size=config.batch_size),
        budgets=config.budgets,
        parity_tolerance=config.parity_tolerance,
        seed=config.seed,
        isolation=isolation or Isolation(),
        artifacts=config.out / "artifacts",
        runtime=runtime_space(config, workers),
        timeout_s=config.trial_timeout_s,
        memory_cap_mb=config.trial_memory_mb,
    )


def open_result(
    out: Path, storage: str | None = None, study_name: str = "moopt", heartbeat_s: int = 60
) -> Result:
    """Open a finished study (the output folder of `moopt run`, or any storage) as a Result.

    The front is recomputed from the study, with the re-verified numbers of its last
    re-verification; nothing is trained or measured.

    Raises:
        StudyError: No such study, or a study moopt did not make.
    """
    if storage is None and not (out / JOURNAL_NAME).exists():
        raise StudyError(
            f"No moopt study in '{out}': {out / JOURNAL_NAME} does not exist. "
            "Pass the --out folder of `moopt run`, or --storage and --study."
        )
    backend = open_storage(storage, out, heartbeat_s)
    if study_name not in optuna.study.get_all_study_names(backend):
        raise StudyError(
            f"No study named '{study_name}' in "
            f"{storage_description(storage, out)}. Pass --study with its name."
        )
    study = optuna.load_study(study_name=study_name, storage=backend)
    record = study.user_attrs.get(STUDY_ATTR)
    if record is None:
        raise StudyError(f"The study '{study_name}' was not made by moopt.")
    values = {k: v for k, v in record["config"].items() if k != "budgets" and v is not None}
    values.update(record["config"]["budgets"])
    values.update({"out": str(out), "study": study_name, "heartbeat_s": heartbeat_s})
    if storage is not None:
        values["storage"] = storage
    config = make_config(values)
    objectives = tuple(
        ObjectiveInfo(o["name"], o["direction"], o["unit"]) for o in record["objectives"]
    )
    reverification = None
    if REVERIFY_ATTR in study.user_attrs:
        from moopt._reverify import Reverification

        reverification = Reverification.from_dict(study.user_attrs[REVERIFY_ATTR])
    overrides = reverification.remeasured if reverification else None
    front = tuple(front_trials(study.trials, objectives, overrides))
    return Result(study, config, objectives, front, None, record, reverification)


def _strategy(config: Config, study: optuna.Study) -> Strategy:
    return Strategy(config.sampler, population=study.user_attrs[STUDY_ATTR]["population_size"])


def _sampler(
    config: Config,
    study: optuna.Study,
    families: int,
    propose: Callable[[optuna.trial.BaseTrial], Candidate],
    trials: int,
    target: int,
) -> optuna.samplers.BaseSampler:
    """The study's sampler for ``trials`` evaluations that end when the study holds ``target``."""
    seed = config.seed + len(study.trials) + (os.getpid() if _is_worker() else 0)
    return make_sampler(
        _strategy(config, study), seed, trials, families, propose, evaluated=target - trials
    )


def _is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def optimize(
    config: Config | None = None,
    *,
    objectives: Sequence[Objective] | None = None,
    isolation: Isolation | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    write: bool = True,
    workers: int = 1,
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
        workers: Local worker processes sharing the search (each a `moopt worker`).

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
    ctx, study = prepare(config, objectives, isolation, workers=workers)
    if workers > 1:
        summary = run_local_workers(config, study, workers, progress)
    else:
        summary = search(study, ctx, config, config.trials, progress)
    return finish(study, ctx, config, summary, write)


def prepare(
    config: Config,
    objectives: Sequence[Objective] | None = None,
    isolation: Isolation | None = None,
    workers: int = 1,
) -> tuple[SearchContext, optuna.Study]:
    """Load the data and open the study (created, with the run's record, if new).

    Raises:
        MooptError: Invalid data or space, or a study that does not fit the settings.
    """
    ctx = make_context(config, objectives, isolation, workers=workers)
    record = {
        "config": config.identity(),
        "data": ctx.split.record,
        "objectives": [i.as_dict() for i in ctx.infos],
        "runtime": {
            "batch_size": config.batch_size,
            "threads": list(ctx.runtime.threads),
            "graph_optimization": list(ctx.runtime.graph_optimization),
            "quantize": ctx.runtime.quantize,
        },
        "moopt": __version__,
    }
    study = _open_study(config, record, [o.direction for o in ctx.objectives], ctx.space)
    return ctx, study


def search(
    study: optuna.Study,
    ctx: SearchContext,
    config: Config,
    trials: int,
    progress: Callable[[ProgressEvent], None] | None = None,
    study_target: int | None = None,
) -> RunSummary:
    """Run ``trials`` distinct evaluations of the study in this process.

    With ``study_target``, stop earlier, once the whole study holds that many evaluations
    (finished or under way, by any worker): local workers share the work this way, so
    none sits idle while another still has a fixed share to do.
    """
    # Reseed by the trials already there and by this process: a resumed run or a second
    # worker must not replay the same proposals (optuna#3162).
    flat = _strategy(config, study).flat

    def propose(trial: optuna.trial.BaseTrial) -> Candidate:
        return suggest(trial, ctx.space, flat=flat, runtime=ctx.runtime)

    # Where this run ends: the sampler refines the front over the last part of the way.
    target = study_target if study_target is not None else evaluations(study) + trials
    study.sampler = _sampler(config, study, len(ctx.space), propose, trials, target)
    finished_before = {t.number for t in study.trials if t.state.is_finished()}
    summary = run_loop(
        study,
        propose,
        lambda trial, candidate: evaluate(trial, candidate, ctx),
        trials,
        front_size=lambda: len(front_trials(study.trials, ctx.infos)),
        progress=progress,
        heartbeat_s=config.heartbeat_s,
        exhausted=(
            (lambda: evaluations(study, under_way=True) >= study_target)
            if study_target is not None
            else lambda: False
        ),
    )
    counted = summarize(study, finished_before, summary.elapsed_s, summary.interrupted)
    return dataclasses.replace(
        summary, early_rejected=counted.early_rejected, saved_s=counted.saved_s
    )


def finish(
    study: optuna.Study,
    ctx: SearchContext,
    config: Config,
    summary: RunSummary | None,
    write: bool = True,
) -> Result:
    """Re-verify the front and write the output folder."""
    reverification = None
    if config.reverify and not (summary and summary.interrupted):
        from moopt._reverify import reverify

        latency = next(o for o in ctx.objectives if isinstance(o, Latency))
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
