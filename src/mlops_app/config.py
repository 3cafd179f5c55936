"""The one table of settings.

Every setting has a name, a default, a help text and an environment variable
(``MLOPS_APP_<NAME>``). Values come from, lowest priority first: the default, a TOML file
(``MLOPS_APP_CONFIG_FILE``, or ``mlops-app.toml`` in the home folder when it exists), then
the environment. ``tests/test_config.py`` fails when a setting is missing from the README.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_app.errors import ConfigError

ENV_PREFIX = "MLOPS_APP_"
CONFIG_FILE_NAME = "mlops-app.toml"
ROLES = ("viewer", "reviewer", "approver", "admin")
AUTH_MODES = ("auto", "oidc", "proxy", "local")


@dataclass(frozen=True)
class Setting:
    """One configurable value: its name, type, default and what it is for."""

    name: str
    default: Any
    help: str
    kind: type = str
    choices: tuple[str, ...] = ()
    secret: bool = False  # never printed or logged; shown as "(set)" / "(empty)"

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("home", "./data", "Folder that holds everything: the warehouse, the model registry and saved reports."),
    Setting(
        "config_file",
        "",
        "Path of a TOML file with settings (keys are the setting names). Empty: `mlops-app.toml` in the home folder, if present.",
    ),
    Setting("server_address", "127.0.0.1", "Address `mlops-app serve` listens on. Loopback by default; set 0.0.0.0 only behind a proxy."),
    Setting("server_port", 8501, "Port `mlops-app serve` listens on.", int),
    Setting("base_url_path", "", "URL prefix when served under a path of a reverse proxy, e.g. `mlops`."),
    Setting(
        "auth_mode",
        "auto",
        "How users are identified: `oidc` (Streamlit st.login), `proxy` (trusted reverse-proxy header), `local` (one local demo identity), or `auto` (OIDC when configured in secrets, else the proxy header when set, else local).",
        str,
        AUTH_MODES,
    ),
    Setting("proxy_header", "", "Header holding the signed-in user's e-mail, set by a trusted reverse proxy (e.g. `X-Forwarded-Email`). Empty: proxy sign-in is off."),
    Setting("proxy_groups_header", "", "Header holding the user's groups (comma separated), set by the same proxy. Optional."),
    Setting(
        "trusted_proxies",
        "127.0.0.1,::1",
        "Addresses or networks (comma separated, e.g. `10.0.0.5, 10.1.0.0/16`) of the reverse proxies whose sign-in header is believed. A request from anywhere else is refused.",
    ),
    Setting(
        "allow_remote_local_identity",
        False,
        "Let the local demo identity (everyone is `local_user`) be used on a non-loopback address. Off: the dashboard refuses to serve the local identity beyond this machine.",
        bool,
    ),
    Setting(
        "cookie_secret",
        "",
        "Secret that signs Streamlit's cookies and XSRF tokens. Required (the same on every replica) when `replicas` is above 1; keep it in the environment or a secrets manager, never in the repository.",
        secret=True,
    ),
    Setting("replicas", 1, "Number of dashboard processes behind a load balancer sharing this home.", int),
    Setting("max_upload_mb", 200, "Largest file, in MB, a page accepts as an upload. Bigger files go through `mlops-app ingest`.", int),
    Setting("max_ingest_mb", 1024, "Largest data file, in MB, `mlops-app ingest` accepts; split bigger deliveries into several files.", int),
    Setting("local_user", "demo@localhost", "E-mail of the local demo identity used when no sign-in is configured."),
    Setting("local_user_role", "admin", "Role of the local demo identity.", str, ROLES),
    Setting("default_role", "viewer", "Role of a signed-in user who matches no rule below.", str, ROLES),
    Setting("reviewers", "", "Who is a reviewer: comma-separated e-mails, `@domain` or `group:NAME` entries."),
    Setting("approvers", "", "Who is an approver (may approve promotions): same format as `reviewers`."),
    Setting("admins", "", "Who is an admin (may override gates and edit checks): same format as `reviewers`."),
    Setting("lock_timeout_seconds", 60.0, "How long a unit of work waits for another process to release the warehouse before it gives up with an error naming the holder.", float),
    Setting("write_chunk_rows", 100_000, "Rows per transaction for long writes; the lock is released between chunks so the dashboard stays responsive.", int),
    Setting(
        "public_url",
        "http://127.0.0.1:8501",
        "Address people use to open the dashboard; links in webhooks, alerts and share links start with it.",
    ),
    Setting(
        "share_secret",
        "",
        "Secret that signs read-only share links to a model review. Empty: a random secret is created in the home (`.share-secret`), so links survive restarts but not a new home.",
        secret=True,
    ),
    Setting("share_link_hours", 72, "How long a share link to a model review stays valid.", int),
    Setting(
        "allow_self_approval",
        False,
        "Let the person who requested a promotion approve it too. Off: a second person must approve.",
        bool,
    ),
    Setting(
        "webhook_url",
        "",
        "Address that receives a JSON POST (Slack-compatible `text` included) when an alias moves or an alert opens. Empty: no webhook.",
        secret=True,
    ),
    Setting(
        "monitoring_refresh_seconds",
        10.0,
        "How often an open Monitoring page checks for new monitoring results and redraws itself (0: only on reload).",
        float,
    ),
    Setting("webhook_timeout_seconds", 5.0, "How long one webhook delivery may take before it is retried later.", float),
    Setting("demo_seed", 7, "Random seed of the demo generator; the same seed builds the same demo.", int),
    Setting("demo_days", 150, "Number of daily harvest batches the demo generates (the season starts on 1 June).", int),
    Setting("demo_apples_per_day", 1500, "Apples graded per day in the demo (before the seasonal variation).", int),
    Setting("demo_trials", 24, "Model configurations the demo's AutoML search tries (about 1.5 s each here).", int),
    Setting(
        "trusted_model_types",
        "",
        "Extra fully qualified Python types (comma separated) that model artifacts may contain, beyond the vetted scikit-learn allow-list.",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    """Turn a raw value (a string from the environment, or a TOML value) into the setting's type."""
    try:
        if setting.kind is bool:
            value: Any = raw if isinstance(raw, bool) else str(raw).strip().lower() in {"1", "true", "yes", "on"}
        elif setting.kind is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = int(str(raw).replace("_", "").strip())
        elif setting.kind is float:
            value = float(str(raw).strip())
        else:
            value = str(raw).strip()
    except ValueError:
        raise ConfigError(
            f"Setting {setting.name} from {source} must be a {setting.kind.__name__}, got {raw!r}. "
            f"Fix {setting.env_var} or the `{setting.name}` key of the settings file."
        ) from None
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"Setting {setting.name} from {source} must be one of {', '.join(setting.choices)}, got {value!r}."
        )
    if setting.kind in (int, float) and value < 0:
        raise ConfigError(f"Setting {setting.name} from {source} must not be negative, got {value!r}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Read values as attributes: ``settings.home``, ``settings.server_port``."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"unknown setting {name!r}") from None

    @property
    def home_path(self) -> Path:
        return Path(self.values["home"]).expanduser().resolve()

    @property
    def warehouse_path(self) -> Path:
        return self.home_path / "warehouse.duckdb"

    @property
    def registry_path(self) -> Path:
        return self.home_path / "registry"

    @property
    def reports_path(self) -> Path:
        return self.home_path / "reports"

    def display_value(self, name: str) -> str:
        """The value as it may be shown to a person: secrets are masked."""
        value = self.values[name]
        if _BY_NAME[name].secret:
            return "(set)" if value else "(empty)"
        return repr(value)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some values replaced (validated like any other source)."""
        values = dict(self.values)
        sources = dict(self.sources)
        for name, raw in overrides.items():
            if name not in _BY_NAME:
                raise ConfigError(f"Unknown setting {name!r}. Known settings: {', '.join(_BY_NAME)}.")
            values[name] = _coerce(_BY_NAME[name], raw, "an override")
            sources[name] = "override"
        return Settings(values, sources)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"Settings file {path} does not exist. Create it or unset MLOPS_APP_CONFIG_FILE.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"Settings file {path} is not valid TOML: {error}.") from None
    # Accept either top-level keys or a [mlops_app] table, so the file can be shared.
    data = data.get("mlops_app", data)
    unknown = sorted(set(data) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"Settings file {path} has unknown keys: {', '.join(unknown)}. Known settings are listed in the README."
        )
    return data


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting from defaults, the TOML file and the environment.

    Args:
        environ: the environment to read; ``os.environ`` when omitted.

    Raises:
        ConfigError: a value has the wrong type, is outside its choices, or the file is bad.
    """
    environ = os.environ if environ is None else environ
    values = {setting.name: setting.default for setting in SETTINGS}
    sources = {setting.name: "default" for setting in SETTINGS}

    env_values = {s.name: environ[s.env_var] for s in SETTINGS if environ.get(s.env_var, "") != ""}
    file_name = env_values.get("config_file", "")
    if file_name:
        file_path: Path | None = Path(file_name).expanduser()
    else:
        home = Path(env_values.get("home", values["home"])).expanduser()
        file_path = home / CONFIG_FILE_NAME if (home / CONFIG_FILE_NAME).is_file() else None
    if file_path is not None:
        for name, raw in _read_toml(file_path).items():
            values[name] = _coerce(_BY_NAME[name], raw, str(file_path))
            sources[name] = str(file_path)
    for name, raw in env_values.items():
        setting = _BY_NAME[name]
        values[name] = _coerce(setting, raw, setting.env_var)
        sources[name] = setting.env_var
    return Settings(values, sources)


def parse_list(raw: str) -> list[str]:
    """Split a comma-separated setting into trimmed, non-empty entries."""
    return [item.strip() for item in raw.split(",") if item.strip()]


def settings_table_markdown() -> str:
    """The README's settings table, generated from :data:`SETTINGS` (``scripts/readme_tables.py`` writes it)."""
    lines = ["| Setting | Environment variable | Default | Meaning |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        default = "(empty)" if setting.default == "" else str(setting.default).lower() if setting.kind is bool else setting.default
        lines.append(f"| `{setting.name}` | `{setting.env_var}` | `{default}` | {setting.help} |")
    return "\n".join(lines)
