"""The `mlops-app` command. Every command only parses its arguments and calls the library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlops_app import __version__
from mlops_app.auth import check_serving_allowed, choose_mode, local_identity, oidc_configured_in
from mlops_app.config import SETTINGS, Settings, load_settings, parse_list
from mlops_app.errors import MlopsError

APP_ENTRY = Path(__file__).resolve().parents[2] / "app" / "main.py"

app = typer.Typer(
    name="mlops-app",
    help="Self-hosted MLOps dashboard: data quality, features, experiments, promotion and drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    return load_settings()


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlops-app {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Settings come from MLOPS_APP_* environment variables or a TOML file; see `mlops-app settings`."""


@app.command()
def init() -> None:
    """Create an empty home (warehouse with its tables, registry folder) at MLOPS_APP_HOME."""
    from mlops_app.warehouse import Warehouse

    try:
        settings = _settings()
        settings.home_path.mkdir(parents=True, exist_ok=True)
        settings.registry_path.mkdir(exist_ok=True)
        applied = Warehouse.from_settings(settings).migrate()
    except (MlopsError, OSError) as error:
        _fail(error)
    typer.echo(f"Home ready at {settings.home_path} ({len(applied)} migration(s) applied).")


@app.command()
def demo(
    reset: Annotated[bool, typer.Option("--reset", help="Delete the demo home and build it again.")] = False,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the dashboard when the home is ready.")] = True,
    history: Annotated[
        bool,
        typer.Option(
            "--history/--no-history",
            help="Replay the season's monitoring (scoring, drift, alerts, retraining): in the background while "
            "the dashboard serves, else before the command returns.",
        ),
    ] = True,
    live: Annotated[
        bool, typer.Option("--live", help="Replay the season live: a new day is scored and monitored every few seconds.")
    ] = False,
    seconds_per_day: Annotated[float, typer.Option(help="With --live: seconds between replayed days.", min=0.5)] = 5.0,
) -> None:
    """Build the demo orchard home (first run only, or with --reset), replay its monitoring, then serve the dashboard."""
    from mlops_app import demo_monitoring
    from mlops_app.demo import build_demo

    try:
        settings = _settings()
        summary = build_demo(
            settings,
            local_identity(settings),
            reset=reset,
            progress=lambda message: typer.echo(f"  {message}..."),
        )
    except MlopsError as error:
        _fail(error)
    if summary.built:
        typer.echo(
            f"Demo home built at {summary.home} in {summary.seconds:.1f} s: {summary.rows:,} apples over "
            f"{summary.days} days, models {', '.join(summary.models)}."
        )
    else:
        typer.echo(f"Demo home already present at {summary.home} (use --reset to rebuild it).")
    say = lambda message: typer.echo(f"  {message}")  # noqa: E731
    try:
        if live and serve_after:
            # Beside the dashboard, in this terminal's process group: Ctrl+C stops both.
            process = subprocess.Popen(
                demo_monitoring.live_command(settings, seconds_per_day), env={**os.environ, "MLOPS_APP_HOME": str(settings.home_path)}
            )
            typer.echo(f"Live replay started (pid {process.pid}): a new day every {seconds_per_day:g} s; watch it at /monitoring.")
        elif live:
            typer.echo(f"Live replay: a new day every {seconds_per_day:g} s (Ctrl+C to stop).")
            demo_monitoring.live_replay(settings, seconds_per_day, progress=say)
        elif history and serve_after:
            pid = demo_monitoring.start_history_in_background(settings)
            if pid is not None:
                typer.echo(
                    f"Replaying the season's monitoring in the background (pid {pid}, about 2 minutes; log in "
                    f"{settings.home_path / demo_monitoring.LOG_FILE}). The Monitoring page shows its progress."
                )
        elif history:
            current = demo_monitoring.history_progress(settings)
            if current is not None and current.status in ("building", demo_monitoring.LIVE):
                raise MlopsError(
                    f"A monitoring replay (pid {current.pid}) is already writing this home's history "
                    f"({current.days_done} of {current.days_total} days); let it finish, or stop it, then run this again."
                )
            if current is None or current.status != "complete":
                state = demo_monitoring.build_monitoring_history(settings, progress=say)
                typer.echo(f"Monitoring history: {state.message}")
    except MlopsError as error:
        _fail(error)
    if serve_after:
        serve()


def secrets_files() -> list[Path]:
    """Where Streamlit looks for secrets (st.login's [auth] section among them)."""
    from streamlit import config as streamlit_config

    return [Path(p) for p in streamlit_config.get_option("secrets.files")] + [APP_ENTRY.parent / ".streamlit" / "secrets.toml"]


def streamlit_command(settings: Settings, *, address: str | None = None, port: int | None = None, base_url_path: str | None = None) -> list[str]:
    """The command line that runs the dashboard with the server settings applied.

    Raises:
        ConfigError: the settings would expose the dashboard unsafely (see auth.check_serving_allowed).
    """
    address = address or settings.server_address
    mode = choose_mode(settings, oidc_configured=oidc_configured_in(secrets_files()))
    check_serving_allowed(settings, address=address, mode=mode)
    if not APP_ENTRY.is_file():
        raise MlopsError(
            f"The dashboard entry {APP_ENTRY} is missing. Install mlops-app from a checkout of its repository "
            "(pip install -e .), which keeps app/ and pages/ beside the package."
        )
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_ENTRY),
        "--server.address",
        address,
        "--server.port",
        str(port or settings.server_port),
        "--server.baseUrlPath",
        base_url_path if base_url_path is not None else settings.base_url_path,
        "--server.headless",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--server.maxUploadSize",
        str(settings.max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
    ]


def streamlit_environment(settings: Settings) -> dict[str, str]:
    """The server's environment: the cookie secret travels here, never on the command line (ps shows that)."""
    environment = dict(os.environ)
    # uvicorn (under Streamlit) replaces the connection's address with X-Forwarded-For when
    # the connection comes from loopback; the trusted-proxy check must see the real peer.
    environment["FORWARDED_ALLOW_IPS"] = ""
    if settings.cookie_secret:
        environment["STREAMLIT_SERVER_COOKIE_SECRET"] = settings.cookie_secret
    return environment


@app.command()
def serve(
    address: Annotated[str | None, typer.Option(help="Listen address (default: setting server_address).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: setting server_port).")] = None,
    base_url_path: Annotated[str | None, typer.Option(help="URL prefix behind a proxy (default: setting base_url_path).")] = None,
) -> None:
    """Run the dashboard (health check at /_stcore/health)."""
    try:
        settings = _settings()
        command = streamlit_command(settings, address=address, port=port, base_url_path=base_url_path)
    except MlopsError as error:
        _fail(error)
    shown_port = port or settings.server_port
    typer.echo(f"Serving {settings.home_path} at http://{address or settings.server_address}:{shown_port}/ (Ctrl+C to stop)")
    sys.stdout.flush()
    # Replace this process, so a service manager's signals reach Streamlit directly.
    os.execve(sys.executable, command, streamlit_environment(settings))


def _warehouse(settings: Settings):
    from mlops_app.warehouse import Warehouse

    return Warehouse.from_settings(settings)


@app.command()
def ingest(
    dataset: Annotated[str, typer.Argument(help="Name of a registered dataset, e.g. apple_harvest.")],
    file: Annotated[Path, typer.Argument(help="A CSV or Parquet file with the delivery.")],
    source_name: Annotated[str | None, typer.Option(help="Name to record for the delivery (default: the file name).")] = None,
) -> None:
    """Check a delivery against the dataset's declared checks and load it; bad rows go to quarantine.

    Exits 2 when the batch is rejected (nothing loaded; the reason is recorded).
    """
    from mlops_app.ingest import ingest_file

    try:
        settings = _settings()
        result = ingest_file(
            _warehouse(settings),
            dataset,
            file,
            identity=local_identity(settings),
            home=settings.home_path,
            source_name=source_name,
            max_file_bytes=settings.max_ingest_mb * 1024 * 1024,
        )
    except MlopsError as error:
        _fail(error)
    typer.echo(result.message)


@app.command()
def check(dataset: Annotated[str, typer.Argument(help="Name of a registered dataset.")]) -> None:
    """Run the dataset's declared checks again on all its stored rows and record the results."""
    from mlops_app.ingest import recheck_dataset

    try:
        settings = _settings()
        result = recheck_dataset(_warehouse(settings), dataset, identity=local_identity(settings), home=settings.home_path)
    except MlopsError as error:
        _fail(error)
    typer.echo(result.message)


@app.command("register-dataset")
def register_dataset_command(
    name: Annotated[str, typer.Argument(help="New dataset name: lowercase letters, digits and _.")],
    file: Annotated[Path, typer.Argument(help="A first CSV or Parquet file; its columns become the schema (rows are not loaded).")],
    id_column: Annotated[str | None, typer.Option(help="Column that identifies a row.")] = None,
    time_column: Annotated[str | None, typer.Option(help="Column with the event time.")] = None,
    target: Annotated[str | None, typer.Option(help="Column a model learns to predict.")] = None,
    description: Annotated[str, typer.Option(help="What the dataset holds, in plain words.")] = "",
    owner: Annotated[str, typer.Option(help="Who answers questions about it (an e-mail).")] = "",
    freshness_hours: Annotated[float | None, typer.Option(help="New data is expected at least this often.")] = None,
    suggest_checks: Annotated[bool, typer.Option("--suggest-checks/--no-suggest-checks", help="Write a starting set of checks learnt from the file.")] = True,
) -> None:
    """Register a dataset from a first file, and optionally write suggested checks to edit."""
    from mlops_app.ingest import register_dataset_from_file, suggest_checks_from_file
    from mlops_app.quality import save_checks

    try:
        settings = _settings()
        warehouse = _warehouse(settings)
        identity = local_identity(settings)
        dataset = register_dataset_from_file(
            warehouse, name, file, identity=identity, description=description, owner=owner,
            id_column=id_column, time_column=time_column, target=target, freshness_hours=freshness_hours,
        )  # fmt: skip
        typer.echo(f"Registered dataset {dataset.name} with {len(dataset.columns)} columns.")
        if suggest_checks:
            path = save_checks(settings.home_path, suggest_checks_from_file(warehouse, name, file), identity=identity)
            typer.echo(f"Suggested checks written to {path}; review them, then `mlops-app ingest {name} {file}`.")
    except MlopsError as error:
        _fail(error)


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="Registered dataset to learn from.")],
    experiment: Annotated[str, typer.Option(help="Experiment the runs are logged under.")],
    target: Annotated[str | None, typer.Option(help="Column to predict (default: the dataset's target).")] = None,
    trials: Annotated[int, typer.Option(help="Model configurations to try.")] = 20,
    time_budget: Annotated[float | None, typer.Option(help="Stop starting new trials after this many seconds.")] = None,
    metric: Annotated[str | None, typer.Option(help="Selection metric, e.g. roc_auc, f1, recall_bad, mae.")] = None,
    max_rows: Annotated[int | None, typer.Option(help="Train on a time-spread sample of at most this many rows.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the search.")] = 0,
    since: Annotated[str | None, typer.Option(help="Learn only from rows at or after this date/time (UTC), e.g. 2026-08-20.")] = None,
    until: Annotated[str | None, typer.Option(help="Learn only from rows before this date/time (UTC) whose labels were known by then.")] = None,
) -> None:
    """Search scikit-learn model families with cross-validation; the winner is tested once on a holdout."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mlops_app.training import train as run_search

    try:
        settings = _settings()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn()) as bar:
            task = bar.add_task("Searching", total=trials + 1)
            result = run_search(
                _warehouse(settings), dataset=dataset, target=target, experiment=experiment,
                identity=local_identity(settings), trials=trials, time_budget_s=time_budget, metric=metric,
                max_rows=max_rows, seed=seed, since=since, until=until,
                progress=lambda done, total, message: bar.update(task, completed=done, total=total, description=message[:60]),
            )  # fmt: skip
    except MlopsError as error:
        _fail(error)
    typer.echo(
        f"Winner: {result.family} ({result.metric} {result.validation_score:.3f} on validation), "
        f"run {result.winner_run_id}; {len(result.trials)} trials, {result.failed_trials} failed, {result.seconds:.0f} s."
    )
    typer.echo("Holdout (tested once): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.holdout_metrics.items())))
    typer.echo("Register it from the Experiments page, or with mlops_app.experiments.register_run_model.")


def _registry(settings: Settings):
    from mlops_app.registry import Registry

    return Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds, extra_trusted_types=parse_list(settings.trusted_model_types))


def _print_request(request) -> None:
    typer.echo(f"{request.id}: {request.summary}")
    for gate in request.gates:
        typer.echo(f"  {'passed' if gate.passed else 'FAILED'}  {gate.detail}")


@app.command()
def promote(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    reason: Annotated[str, typer.Option(help="Why this version should serve (shown to the approver).")],
    alias: Annotated[str, typer.Option(help="Alias to move: champion or challenger.")] = "champion",
) -> None:
    """Ask for a version to become champion (or challenger); the gates run at once and an approver decides."""
    from mlops_app.promotion import request_promotion

    try:
        settings = _settings()
        request = request_promotion(
            settings, _registry(settings), _warehouse(settings), model, version, alias, local_identity(settings), reason=reason
        )
    except MlopsError as error:
        _fail(error)
    _print_request(request)


@app.command()
def approve(
    model: Annotated[str, typer.Argument(help="Model name.")],
    request_id: Annotated[str, typer.Argument(help="Request id, as `mlops-app requests` lists it.")],
    comment: Annotated[str, typer.Option(help="Note for the record.")] = "",
    override_reason: Annotated[str | None, typer.Option(help="Admins only: approve despite failed gates, and say why.")] = None,
) -> None:
    """Approve a promotion request: the alias moves at once and the webhook is told."""
    from mlops_app.promotion import approve as approve_request

    try:
        settings = _settings()
        request = approve_request(
            settings, _registry(settings), model, request_id, local_identity(settings), comment=comment, override_reason=override_reason
        )
    except MlopsError as error:
        _fail(error)
    _print_request(request)


@app.command()
def reject(
    model: Annotated[str, typer.Argument(help="Model name.")],
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    comment: Annotated[str, typer.Option(help="What the requester should change.")],
) -> None:
    """Reject a promotion request with a comment; nothing moves."""
    from mlops_app.promotion import reject as reject_request

    try:
        settings = _settings()
        request = reject_request(settings, _registry(settings), model, request_id, local_identity(settings), comment=comment)
    except MlopsError as error:
        _fail(error)
    _print_request(request)


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why the previous champion should serve again.")],
) -> None:
    """Ask to put the previous champion back; an approver approves it like any request."""
    from mlops_app.promotion import request_rollback

    try:
        settings = _settings()
        request = request_rollback(settings, _registry(settings), _warehouse(settings), model, local_identity(settings), reason=reason)
    except MlopsError as error:
        _fail(error)
    _print_request(request)


@app.command()
def requests(model: Annotated[str | None, typer.Argument(help="Model name (default: every model).")] = None) -> None:
    """List pending promotion requests."""
    from mlops_app.promotion import list_requests, pending_requests

    try:
        settings = _settings()
        registry = _registry(settings)
        found = list_requests(registry, model, status="pending") if model else pending_requests(registry)
    except MlopsError as error:
        _fail(error)
    if not found:
        typer.echo("No pending requests.")
    for request in found:
        _print_request(request)


@app.command("deliver-webhooks")
def deliver_webhooks() -> None:
    """Retry webhook messages waiting in the outbox (the monitoring job does this too)."""
    from mlops_app.webhooks import deliver_pending

    try:
        report = deliver_pending(_settings())
    except MlopsError as error:
        _fail(error)
    typer.echo(f"Delivered {report.delivered}, failed {report.failed}, not yet due {report.not_due}.")
    for line in report.errors:
        typer.echo(f"  {line}")


@app.command()
def score(
    model: Annotated[str, typer.Argument(help="MODEL, MODEL@alias or MODEL/VERSION (default: the champion).")],
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON-lines file with one row per item to score.")],
    id_column: Annotated[str | None, typer.Option(help="Column identifying each row (labels refer to it later).")] = None,
    time_column: Annotated[str | None, typer.Option(help="Column with each row's event time.")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the predictions to this file.")] = None,
) -> None:
    """Score a file with a registered version and log every prediction (all rows or none)."""
    from mlops_app.scoring import score_file

    try:
        settings = _settings()
        result = score_file(
            _warehouse(settings), _registry(settings), model, file, local_identity(settings),
            id_column=id_column, time_column=time_column, output=output,
        )  # fmt: skip
    except MlopsError as error:
        _fail(error)
    typer.echo(result.message)


@app.command()
def labels(
    model: Annotated[str, typer.Argument(help="Model the ground truth is for.")],
    file: Annotated[Path, typer.Argument(help="File with ids and their true outcome.")],
    id_column: Annotated[str | None, typer.Option(help="Column with the ids that were scored.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Column with the true outcome.")] = None,
) -> None:
    """Record ground truth that arrived after scoring; labels for unknown ids are kept aside and reported."""
    from mlops_app.scoring import record_labels_file

    try:
        settings = _settings()
        result = record_labels_file(
            _warehouse(settings), _registry(settings), model, file, local_identity(settings),
            id_column=id_column, label_column=label_column,
        )  # fmt: skip
    except MlopsError as error:
        _fail(error)
    typer.echo(result.message)


@app.command()
def monitor(
    model: Annotated[str | None, typer.Argument(help="Model to monitor (default: every model with predictions).")] = None,
    max_windows: Annotated[int | None, typer.Option(help="Compute at most this many new windows in this run.")] = None,
    retrain: Annotated[bool, typer.Option("--retrain/--no-retrain", help="Let an alert start retraining a challenger.")] = True,
) -> None:
    """Compute drift, performance and KPIs for each new window, raise alerts; safe to run from cron.

    Exits 1 when a model could not be monitored.
    """
    from mlops_app.monitoring import run_monitor

    try:
        report = run_monitor(_settings(), model, max_windows=max_windows, retrain=retrain)
    except MlopsError as error:
        _fail(error)
    typer.echo(report.message)
    if not report.ok:
        raise typer.Exit(code=1)


features_app = typer.Typer(help="The feature store: definitions as YAML under <home>/features, values in the warehouse.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("apply")
def features_apply(
    prune: Annotated[bool, typer.Option("--prune", help="Also remove registered features no file defines any more.")] = False,
    check_only: Annotated[bool, typer.Option("--check", help="Only validate the definitions; register nothing.")] = False,
) -> None:
    """Validate the definitions in <home>/features/*.yaml and register them, all or nothing."""
    from mlops_app.features import apply_features, check_definitions, features_folder, load_definitions

    try:
        settings = _settings()
        warehouse = _warehouse(settings)
        feature_set = load_definitions(features_folder(settings))
        if check_only:
            check_definitions(warehouse, feature_set)
            typer.echo(f"All {len(feature_set.features)} definitions are valid; nothing was registered.")
            return
        result = apply_features(warehouse, feature_set, local_identity(settings), prune=prune)
    except MlopsError as error:
        _fail(error)
    typer.echo(
        f"Added {len(result.added)}, changed {len(result.changed)}, unchanged {len(result.unchanged)}, "
        f"removed {len(result.removed)} features."
    )
    if result.needs_materialize:
        typer.echo("Compute their values with `mlops-app features materialize`.")


@features_app.command("materialize")
def features_materialize(
    names: Annotated[list[str] | None, typer.Argument(help="Features to compute (default: all).")] = None,
) -> None:
    """Compute feature values in the warehouse, ready for point-in-time training sets."""
    from mlops_app.features import materialize

    try:
        settings = _settings()
        result = materialize(_warehouse(settings), local_identity(settings), names or None)
    except MlopsError as error:
        _fail(error)
    typer.echo(f"Materialised {len(result.features)} features into {len(result.tables)} tables in {result.seconds:.1f} s.")


@app.command("settings")
def show_settings() -> None:
    """Show every setting, its value and where the value came from."""
    try:
        settings = _settings()
    except MlopsError as error:
        _fail(error)
    for setting in SETTINGS:
        typer.echo(f"{setting.name} = {settings.display_value(setting.name)}  ({settings.sources[setting.name]}; {setting.env_var})")


@app.command()
def models() -> None:
    """List registered models with their aliases and latest version."""
    try:
        settings = _settings()
        infos = _registry(settings).list_models()
    except MlopsError as error:
        _fail(error)
    if not infos:
        typer.echo("No models registered yet. Run `mlops-app demo` for an example.")
    for info in infos:
        aliases = ", ".join(f"{alias}=v{version}" for alias, version in sorted(info.aliases.items())) or "no aliases"
        typer.echo(f"{info.name}  latest v{info.latest_version}  {aliases}  owner {info.owner or '-'}")


def main() -> None:
    app()
