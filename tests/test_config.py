from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops_app.config import SETTINGS, load_settings
from mlops_app.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text()
    from mlops_app.config import settings_table_markdown

    assert settings_table_markdown() in text, "README settings table is stale: run scripts/readme_tables.py"
    table_rows = {match.group(1) for match in re.finditer(r"^\| `([a-z_]+)` \|", text, re.MULTILINE)}
    missing = [s.name for s in SETTINGS if s.name not in table_rows or s.env_var not in text]
    assert not missing, f"settings missing from the README settings table: {missing}"
    unknown = table_rows - {s.name for s in SETTINGS}
    assert not unknown, f"README documents settings that do not exist: {sorted(unknown)}"


def test_every_env_var_the_code_reads_is_a_setting():
    source = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "src").rglob("*.py"))
    used = set(re.findall(r"MLOPS_APP_[A-Z_]+", source))
    known = {s.env_var for s in SETTINGS}
    assert used <= known, f"environment variables read outside the settings table: {sorted(used - known)}"


def test_defaults_then_file_then_environment(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlops-app.toml").write_text('server_port = 9000\nadmins = "a@x.org"\n')
    settings = load_settings({"MLOPS_APP_HOME": str(home), "MLOPS_APP_ADMINS": "b@x.org"})
    assert settings.server_port == 9000
    assert settings.sources["server_port"].endswith("mlops-app.toml")
    assert settings.admins == "b@x.org"
    assert settings.sources["admins"] == "MLOPS_APP_ADMINS"
    assert settings.server_address == "127.0.0.1"
    assert settings.warehouse_path == home.resolve() / "warehouse.duckdb"


def test_explicit_config_file_with_a_table(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[mlops_app]\nlock_timeout_seconds = 5\n')
    settings = load_settings({"MLOPS_APP_CONFIG_FILE": str(path)})
    assert settings.lock_timeout_seconds == 5.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MLOPS_APP_SERVER_PORT": "eighty"}, r"server_port .* must be a int, got 'eighty'"),
        ({"MLOPS_APP_AUTH_MODE": "magic"}, r"auth_mode .* must be one of auto, oidc, proxy, local"),
        ({"MLOPS_APP_LOCK_TIMEOUT_SECONDS": "-1"}, r"must not be negative"),
        ({"MLOPS_APP_CONFIG_FILE": "/nonexistent/x.toml"}, r"does not exist"),
    ],
)
def test_bad_values_are_refused_with_the_reason(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ)


def test_unknown_and_malformed_file_keys(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("servr_port = 1\n")
    with pytest.raises(ConfigError, match="unknown keys: servr_port"):
        load_settings({"MLOPS_APP_CONFIG_FILE": str(path)})
    path.write_text("server_port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"MLOPS_APP_CONFIG_FILE": str(path)})


def test_overrides_are_validated():
    settings = load_settings({})
    assert settings.with_overrides(server_port="8600").server_port == 8600
    with pytest.raises(ConfigError, match="Unknown setting 'nope'"):
        settings.with_overrides(nope=1)
