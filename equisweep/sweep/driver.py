"""Run a sweep with Ray Tune: plan the trials, build the data, start the Tuner.

Planning happens before Ray starts, so a sweep that is already done (or a budget that
admits nothing new) costs no cluster time: resubmitting a sweep skips every trial whose key
already finished in the store.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from equisweep.errors import UserError
from equisweep.spec import trunks
from equisweep.store.layout import is_uri, tune_dir
from equisweep.sweep.forks import ForkStore
from equisweep.sweep.interrupt import Stop
from equisweep.sweep.plan import plan_sweep


def run_sweep(spec, *, store_uri: str | None = None, address: str | None = None,
              data_dir: str | None = None, verbose: int = 0, progress: bool = True,
              report: bool = False, report_every_s: float = 180.0,
              command: str = "run") -> dict:
    """Plan, then run what is left of `spec` on Ray. Returns a summary dict.

    Unless `verbose`, Ray's and Tune's own output goes to a log file in the store (see
    `sweep.console`); the console shows the dashboard URL, data progress and one sweep bar.
    With `report`, the HTML report is rewritten from the store every `report_every_s`
    while the sweep runs, and once more at its end.
    """
    from equisweep.store import open_store
    from equisweep.store.naming import absolute_store

    store_uri = absolute_store(store_uri or spec.store)  # once, as the sweep starts
    store = open_store(store_uri)
    forks = ForkStore(store_uri, spec.name) if trunks.is_wsd(spec) else None
    plan = plan_sweep(spec, store, forks)
    summary = _summary(spec, store_uri, plan)
    if not plan.slots:
        return summary

    _check_folders(store_uri, data_dir)
    from equisweep.sweep import preflight
    from equisweep.sweep.session import prepare

    if not _ray_running() and prepare(address) in (None, "local"):  # embedded: this machine
        keys = {slot.cell_key for slot in plan.slots}
        preflight.check_local(spec, [c for c in spec.cells() if c.key in keys])
    from equisweep.store import lease
    from equisweep.sweep.console import QuietConsole, log_mirror, log_path

    # One driver per sweep (refused before Ray starts), and planned again under the lease:
    # what another driver finished since the first plan is not run twice.
    stop = Stop(spec.name, store_uri)  # Ctrl-C and SIGTERM: one line, exit 128 + signal
    with lease.acquire(store, spec.name, command=command), stop.whole():
        plan = plan_sweep(spec, store, forks)
        summary = _summary(spec, store_uri, plan)
        if not plan.slots:
            return summary
        log = None if verbose else log_path(store_uri, spec.name)
        mirror = log_mirror(store_uri, log) if log else None
        with QuietConsole(log, mirror=mirror) as console:
            summary["log"] = mirror or (str(log) if log else None)
            if log:
                copy = (f" (copied to {mirror} as it grows; removed here after the last copy)"
                        if mirror else "")
                print(f"Ray and Tune log: {log}{copy}", flush=True)
            _run_planned(spec, plan, forks, store, store_uri, address, data_dir, verbose,
                         progress, console, summary, report, report_every_s, stop)
    return summary


def _summary(spec, store_uri: str, plan) -> dict:
    return {"sweep": spec.name, "store": store_uri, "already_done": plan.done,
            "to_run": len(plan.slots), "skipped_budget": plan.skipped_budget,
            "planned_flops": plan.planned_flops, "spent_flops": plan.spent_flops,
            "planned_points_flops": plan.planned_points_flops}


def _run_planned(spec, plan, forks, store, store_uri, address, data_dir, verbose, progress,
                 console, summary, report, report_every_s, stop) -> None:
    from equisweep.sweep.session import connect, dashboard_url, prepare

    prepare(address)  # before Ray is imported: Ray reads its auth mode once
    import ray  # noqa: F401  (imported before connect so its loggers can be rerouted)

    joined = _ray_running()  # a cluster this process joined before (not one we start)
    console.reroute()
    connect(address, quiet=not verbose)
    console.reroute()
    from equisweep.sweep import preflight
    from equisweep.sweep.session import prepare

    if joined or prepare(address) not in (None, "local"):  # a cluster may still autoscale
        preflight.wait_for_a_node(spec)
    summary["dashboard"] = dashboard_url()
    if progress and summary["dashboard"]:
        print(f"Ray dashboard: {summary['dashboard']}", flush=True)
    _note_ray_logs(console)
    _build_dataset(spec, data_dir, progress)
    planned_trials = len(plan.slots) + plan.done
    # The plan's FLOPs bound every step at the largest scene (what the budget admits); with
    # the dataset built they are counted as the trainer will, and the spent ones as it did,
    # so a finished sweep's spend equals its plan.
    planned_by_group = _exact_planned_flops(spec, plan, data_dir)
    plan.planned_flops = float(sum(planned_by_group.values()))
    plan.spent_flops = float(store.flops_spent(spec.name).get(spec.name, 0.0))
    summary.update(planned_flops=plan.planned_flops, spent_flops=plan.spent_flops)
    planned_flops = plan.planned_flops + plan.spent_flops
    summary["baselines"] = record_baselines(spec, store, data_dir)
    store.write_sweep_meta(spec.name, {
        "name": spec.name, "source": spec.source, "spec": spec.raw,
        "budget_flops": spec.budget_flops, "store": store_uri,
        # Where Tune's state was at submission (informative: resume looks for it under
        # the store it is given, so a moved or copied store resumes from its new place).
        "tune_path": os.path.join(tune_dir(store_uri), spec.name),
        "data_dir": data_dir, "planned_trials": planned_trials,
        # Spend (shared WSD trunk steps once) of this submission and of what was done before.
        "planned_flops": planned_flops,
        "planned_points_flops": plan.planned_points_flops,
        "submitted_at": datetime.now(timezone.utc).isoformat(),
    })
    from equisweep.store.heartbeat import Heartbeat
    from equisweep.sweep import reconcile
    from equisweep.sweep.live_report import LiveReport
    from equisweep.sweep.progress import ProgressBar, RayMetrics, SweepTally
    from equisweep.sweep.searcher import CellSearcher

    tally = SweepTally(len(plan.slots), planned_by_group=planned_by_group)
    # A terminal gets the bar; a log (a Ray job's, CI's, `| tee`) or --no-progress gets one
    # line per trial event and a progress line a minute, which a log can show.
    bar = progress and _is_terminal(console.console)
    from equisweep.sweep.client_relay import in_client_mode
    from equisweep.sweep.trial_lines import TrialLines

    mirror = None
    if in_client_mode():  # the callbacks run on the cluster: their output comes back here
        callbacks, mirror = _client_callbacks(tally, spec, plan, bar, console)
    else:
        callbacks = [ProgressBar(tally, spec.name, stream=console.console, enabled=bar),
                     RayMetrics(tally, spec.name, plan.planned_flops)]
        if not bar:
            callbacks.append(TrialLines(tally, spec.name, stream=console.console))
    from equisweep.sweep.stacking import stacks

    groups = stacks(spec, plan.slots)  # `training.stack`: one Tune trial per stack
    searcher = CellSearcher(spec, plan.slots, plan.prior, data_dir=data_dir, forks=forks,
                            done_keys=plan.done_keys, stacks=groups)
    attempts, stored = reconcile.held(store, spec.name)
    tuner = _make_tuner(spec, store_uri, searcher, len(groups), verbose, callbacks,
                        attempts=attempts, stored=stored)
    beat = Heartbeat(store, spec.name, extra=lambda: {
        "planned_trials": planned_trials, "planned_flops": planned_flops,
        "run_trials": len(plan.slots), "run_flops": tally.spent_flops,
        "eta_s": tally.eta_s()}).start()
    live = LiveReport(store_uri, spec.name, every_s=report_every_s, log=console) \
        if report else None
    if live is not None:
        if progress:
            print(f"live report: {live.html} (rewritten every {report_every_s:g} s)",
                  flush=True)
        live.start()
    try:
        with console.tune_output(), stop.during_fit():
            if mirror is not None:
                mirror.start()
            results = tuner.fit()
    except Exception as exc:
        # A store write that failed stops the sweep from inside Tune's loop, which may wrap
        # the exception in a TuneError: say it in one line, not as Tune's traceback.
        failed = tuner.equisweep_store.__dict__.get("failed")
        if failed is None:
            raise
        from equisweep.sweep.callback import StoreUnwritable

        raise StoreUnwritable(spec.name, store_uri, failed) from exc
    finally:
        if mirror is not None:
            mirror.stop()
        beat.stop()
        if live is not None:
            live.stop()
    stop.check()  # Tune returns normally when asked to stop: never report that as done
    summary["errors"] = sum(1 for r in results if r.error is not None)
    summary["retried"] = tally.__dict__.get("retried", 0)  # crashed attempts Tune retried
    summary["unfinished"] = reconcile.unfinished(store, spec, plan, results)
    if live is not None:
        summary["report"] = live.final() and live.html


def _client_callbacks(tally, spec, plan, bar: bool, console):
    """Under Ray Client: the callbacks that run on the cluster, and the `Mirror` that shows
    their bar or lines here (sweep/client_relay.py)."""
    from equisweep.sweep.client_relay import Board, Mirror, Post
    from equisweep.sweep.progress import ProgressBar, RayMetrics
    from equisweep.sweep.trial_lines import TrialLines

    board = Board.remote()
    lines = None if bar else TrialLines(tally, spec.name)
    remote = [ProgressBar(tally, spec.name, enabled=False),  # keeps the tally on the cluster
              RayMetrics(tally, spec.name, plan.planned_flops),
              *([lines] if lines is not None else []),
              Post(board, tally, lines)]
    shown = ProgressBar(tally, spec.name, stream=console.console) if bar else None
    return remote, Mirror(board, tally, bar=shown, stream=None if bar else console.console)


def _note_ray_logs(console) -> None:
    """Trial workers' own output stays in Ray's session logs; say where, in the log."""
    try:
        import ray

        logs = ray._private.worker.global_worker.node.get_logs_dir_path()
    except Exception:  # joined a remote cluster: its logs live on its nodes
        logs = "the cluster nodes' Ray session logs (dashboard: Logs view)"
    console.note(f"equisweep: trial workers' stdout/stderr are in {logs}")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _ray_running() -> bool:
    """Whether this process is already connected to a Ray (e.g. a cluster it built)."""
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _check_folders(store_uri: str, data_dir: str | None) -> None:
    """Refuse a store or data folder that cannot be created (a file on its path) before
    Ray starts, rather than when the first trial writes."""
    from equisweep.task.config import default_cache_dir

    places = [("--data-dir", Path(data_dir).expanduser() if data_dir else default_cache_dir())]
    if not is_uri(store_uri):
        places.append(("results store", Path(store_uri).expanduser()))
    for what, path in places:
        probe = path.absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise UserError(f"{what} {path}: {probe} is a file, not a folder")
        # What the kernel will check when we write (the effective uid; read-only mounts).
        if not os.access(probe, os.W_OK | os.X_OK, effective_ids=True):
            raise UserError(f"{what} {path}: {probe} is not writable by this user")


def _build_dataset(spec, data_dir, progress) -> None:
    """Generate the sweep's dataset once, across the cluster, before any trial needs it.
    A cached one is re-hashed (~0.2 s for the CPU study's 107 MB): a shard damaged in place
    (same size, other bytes) is remade now, rather than failing every trial that loads it."""
    from equisweep.sweep.ray_map import RayExecutor
    from equisweep.task import ensure_dataset

    ensure_dataset(spec.task, cache_dir=data_dir, executor=RayExecutor(), progress=progress,
                   verify=True)


def _exact_planned_flops(spec, plan, data_dir) -> dict[str, float]:
    """Training FLOPs of the planned slots per pace group (a variant at one size,
    `progress.pace_group`: the ETA's unit; their sum is the plan), on the built dataset, each
    step at its batch's
    padded length (`equisweep.train.training_flops`); a WSD branch or forked slot trains
    from its fork step (the steps before are its trunk's, counted there). The batches'
    lengths depend only on (train set, seed, batch size): computed once per such group, to
    its longest run."""
    from equisweep.task.generate import dataset_path
    from equisweep.train import batch_tokens, training_flops

    path = dataset_path(spec.task, data_dir)
    cells = {c.key: c for c in spec.cells()}
    configs = [spec.cell_trial(cells[slot.cell_key], slot.hparams).to_dict()
               for slot in plan.slots]

    def group(config):
        return (config["train_trajectories"], config["seed"], config["training"]["batch_size"])

    longest: dict[tuple, dict] = {}
    for config in configs:
        if config["steps"] > longest.get(group(config), {"steps": 0})["steps"]:
            longest[group(config)] = config
    tokens = {g: batch_tokens(config, path) for g, config in longest.items()}
    from equisweep.sweep.progress import pace_group

    total: dict[str, float] = {}
    for slot, config in zip(plan.slots, configs):
        start = (slot.fork_step or 0) if slot.role in ("branch", "forked") else 0
        v = pace_group(config)
        total[v] = total.get(v, 0.0) + training_flops(config, path, start,
                                                      tokens=tokens[group(config)])
    return total


def record_baselines(spec, store, data_dir) -> list[dict]:
    """Measure the zero-parameter baselines on the sweep's fixed val/test windows and append
    them to the store's `baselines` table unless it already holds these very numbers."""
    from equisweep.task.baselines import baseline_rows
    from equisweep.task.generate import dataset_path

    rows = baseline_rows(dataset_path(spec.task, data_dir), spec.task.delta)
    have = store.baselines(spec.name).to_pylist()
    known = {_baseline_id(r) for r in have}
    if any(_baseline_id(r) not in known for r in rows):
        store.write_baselines(spec.name, rows)
    return rows


def _baseline_id(row: dict) -> tuple:
    return (row["dataset"], row["delta"], row["split"], row["baseline"], row["windows"],
            float(row["loss"]))


def _trainable(spec, store_uri: str, stored: dict[str, int]):
    from ray import tune

    from equisweep.sweep.trainable import run

    res = {"cpu": float(spec.resources.get("cpu", 1))}
    if float(spec.resources.get("gpu", 0)) > 0:
        res["gpu"] = float(spec.resources["gpu"])
    # Interrupted trials continue from their own weights-only checkpoints of earlier runs,
    # never from one past the last row the store holds for them (`reconcile.held`).
    prior = os.path.join(tune_dir(store_uri), spec.name)
    # Resources on the function, then named: `with_resources` on a class would wrap it in
    # its own `ResourceTrainable`, whose qualified name is what Ray shows.
    return _named(tune.with_resources(tune.with_parameters(run, prior=prior, stored=stored),
                                      res), spec.name)


TRIAL_ACTOR = "EquisweepTrial"


def _named(fn, sweep: str):
    """Tune's class for a function trainable, renamed: Ray names an actor after its class,
    and Tune's wrapper is always `ImplicitFunc`, so the dashboard's Actors view showed every
    trial of every sweep as that (issue 20). The repr (`_name`: the Actors view's Repr column
    and the prefix of the worker's log lines) names the sweep; one actor serves several
    trials of it (`reuse_actors`), and each trial's first log line names the trial."""
    from ray.tune.trainable.function_trainable import wrap_function

    named = type(TRIAL_ACTOR, (wrap_function(fn),), {"_name": f"equisweep:{sweep}"})
    named.__qualname__ = TRIAL_ACTOR
    return named


def trial_name(trial) -> str:
    return trial.config.get("label", trial.trial_id)


def trial_dirname(trial) -> str:
    return f"{trial.config.get('label', 'trial')}-{trial.trial_id}"


def _make_tuner(spec, store_uri, searcher, n_trials, verbose, callbacks=(), attempts=None, *,
                stored: dict[str, int]):
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from equisweep.sweep.callback import StoreCallback

    store_cb = StoreCallback(store_uri, spec.name, total=n_trials, progress=False,
                             attempts=attempts)
    tuner = tune.Tuner(
        _trainable(spec, store_uri, stored),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=FIFOScheduler(),
            num_samples=n_trials,
            max_concurrent_trials=spec.max_concurrent,
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=tune_dir(store_uri),
            # The store callback first: the progress bar and metrics read what it has seen.
            callbacks=[store_cb, *callbacks],
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # Tune's own trial table only with -v; its other prints go to the log file.
            verbose=min(int(verbose), 3),
        ),
    )
    tuner.equisweep_store = store_cb  # Tune keeps this very object (a shallow copy of the list)
    return tuner


def resume_sweep(name: str, *, store_uri: str, address: str | None = None,
                 verbose: int = 0) -> dict:
    """Continue an interrupted sweep: its recorded spec is planned again against the store
    (which knows what finished), and the rest runs as a fresh Tune experiment whose
    interrupted trials continue from their weights-only checkpoints.

    Tune's own experiment state is never read: it is a pickle, and whoever can write a
    shared store could plant code in it; a cut one would silently lose trials.
    Everything is found relative to the store given here, and every row is written into
    it, whatever was recorded at submission: a store that was moved or copied resumes
    from its new place and never writes back to the old one.
    """
    from equisweep.store import open_store, validate_sweep_name
    from equisweep.store.naming import absolute_store

    validate_sweep_name(name)
    store_uri = absolute_store(store_uri)
    store = open_store(store_uri)
    known = store.sweeps()
    if name not in known:
        from equisweep.errors import unknown_sweep

        raise unknown_sweep(name, store_uri, known)
    meta = store.read_sweep_meta(name)
    if not meta:
        raise UserError(f"sweep {name!r}: the store at {store_uri} has no record of how it "
                        "was submitted (sweeps/ metadata), so it cannot be resumed")
    spec, data_dir = _recorded_sweep(name, meta, store_uri)
    return run_sweep(spec, store_uri=store_uri, address=address, data_dir=data_dir,
                     verbose=verbose, command="resume")


def _recorded_sweep(name: str, meta: dict, store_uri: str):
    """The sweep's recorded spec, validated as `equisweep run` would, before Ray starts."""
    from equisweep.spec import parse_spec

    where = f"sweep {name!r} in {store_uri}: recorded metadata"
    if meta.get("name") != name:
        raise UserError(f"{where}: field 'name' is {meta.get('name')!r}, not {name!r}")
    if not isinstance(meta.get("spec"), dict):
        raise UserError(f"{where}: field 'spec' is missing or not a mapping")
    data_dir = meta.get("data_dir")
    if data_dir is not None and not (isinstance(data_dir, str) and data_dir.strip()):
        raise UserError(f"{where}: field 'data_dir' is {data_dir!r}, not a folder")
    source = meta.get("source")
    source = source if isinstance(source, str) and source else name
    try:
        spec = parse_spec(meta["spec"], source=source)
    except UserError as err:
        raise UserError(f"{where}: the recorded spec is invalid: {err}") from None
    if spec.name != name:
        raise UserError(f"{where}: its spec is for sweep {spec.name!r}, not {name!r}")
    return spec, data_dir
