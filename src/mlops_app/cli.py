"""The `mlops-app` command. Every command only parses its arguments and calls the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlops_app import __version__
from mlops_app.auth import check_serving_allowed, choose_mode, local_identity, oidc_configured_in
from mlops_app.config import SETTINGS, Settings, load_settings
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
) -> None:
    """Build the demo orchard home (first run only, or with --reset), then serve the dashboard."""
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
    from mlops_app.registry import Registry

    try:
        settings = _settings()
        registry = Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds)
        infos = registry.list_models()
    except MlopsError as error:
        _fail(error)
    if not infos:
        typer.echo("No models registered yet. Run `mlops-app demo` for an example.")
    for info in infos:
        aliases = ", ".join(f"{alias}=v{version}" for alias, version in sorted(info.aliases.items())) or "no aliases"
        typer.echo(f"{info.name}  latest v{info.latest_version}  {aliases}  owner {info.owner or '-'}")


def main() -> None:
    app()
