"""The self-hosting recipes in deploy/ are checked, not trusted: parsed, and run where a
tool exists here (nginx -t, systemd-analyze verify, the health-check command, the backup
command of docs/self-hosting.md)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_app import cli
from mlops_app.auth import check_serving_allowed, choose_mode, oidc_configured_in
from mlops_app.config import SETTINGS, load_settings
from mlops_app.errors import ConfigError, WarehouseBusyError
from mlops_app.warehouse import LOCK_SUFFIX, Warehouse

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs" / "self-hosting.md"
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Every ENV key=value of the image (later ENV lines win)."""
    environment: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                environment[key] = value
    return environment


def _only(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for found, arguments in instructions if found == keyword]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((DEPLOY / "Dockerfile").read_text())


def test_dockerfile_builds_the_app_only_on_a_slim_python_image(dockerfile):
    (base,) = _only(dockerfile, "FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base
    runs = " ".join(_only(dockerfile, "RUN"))
    assert "pip install -e ." in runs, "editable install: app/main.py and pages/ live beside the package"
    assert "chromium" not in runs.lower() and "playwright" not in runs.lower(), "browsers are for tests, not the image"
    copied = [arguments.split()[0] for arguments in _only(dockerfile, "COPY")]
    # Copying the whole context would put data/ and any local secrets.toml into a layer.
    assert "." not in copied, copied
    assert {"src", "app", "pages"} <= set(copied)


def test_dockerfile_runs_unprivileged_with_a_home_volume_port_and_health_check(dockerfile):
    users = _only(dockerfile, "USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    environment = dockerfile_env(dockerfile)
    home = environment["MLOPS_APP_HOME"]
    (volume,) = _only(dockerfile, "VOLUME")
    assert home in json.loads(volume)
    assert _only(dockerfile, "EXPOSE") == [str(DEFAULTS["server_port"])]
    (health,) = _only(dockerfile, "HEALTHCHECK")
    assert "/_stcore/health" in health and "CMD" in health


def test_dockerfile_command_is_serve_on_every_interface(dockerfile):
    (command,) = _only(dockerfile, "CMD")
    assert json.loads(command) == ["mlops-app", "serve", "--address", "0.0.0.0"]
    assert not _only(dockerfile, "ENTRYPOINT")


def _container_settings(dockerfile, **extra: str):
    environment = {key: value for key, value in dockerfile_env(dockerfile).items() if key.startswith("MLOPS_APP_")}
    environment.update(extra)
    return load_settings(environment)


@pytest.fixture
def no_secrets_files(monkeypatch, tmp_path):
    """Keep a developer's own ~/.streamlit or app/.streamlit secrets out of the decision."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "secrets_files", lambda: [])


def test_container_configuration_passes_the_serving_checks(dockerfile, no_secrets_files):
    settings = _container_settings(dockerfile)
    (command,) = _only(dockerfile, "CMD")
    address = json.loads(command)[json.loads(command).index("--address") + 1]
    assert choose_mode(settings, oidc_configured=False) == "proxy"
    argv = cli.streamlit_command(settings, address=address)
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0"
    assert argv[argv.index("--server.enableXsrfProtection") + 1] == "true"
    # The control: the same image without a sign-in header would serve the local identity
    # to the network, and is refused.
    without_header = settings.with_overrides(proxy_header="")
    with pytest.raises(ConfigError, match="Refusing to serve the local demo identity on 0.0.0.0"):
        cli.streamlit_command(without_header, address=address)


def test_container_command_line_reaches_streamlit_with_the_secret_in_the_environment(dockerfile, no_secrets_files, monkeypatch):
    """The CMD as the CLI parses it; a replica's cookie secret travels by environment, not argv."""
    captured: dict[str, object] = {}

    def fake_execve(path, argv, environment):
        captured.update(path=path, argv=argv, environment=environment)
        raise SystemExit(0)

    monkeypatch.setattr(cli.os, "execve", fake_execve)
    secret = "s3cret-cookie-value-for-every-replica"
    environment = {key: value for key, value in dockerfile_env(dockerfile).items() if key.startswith("MLOPS_APP_")}
    environment.update(MLOPS_APP_REPLICAS="2", MLOPS_APP_COOKIE_SECRET=secret)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    (command,) = _only(dockerfile, "CMD")
    result = CliRunner().invoke(cli.app, json.loads(command)[1:])
    assert result.exit_code == 0, result.output
    argv = captured["argv"]
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0"
    assert not any(secret in argument for argument in captured["argv"])
    assert captured["environment"]["STREAMLIT_SERVER_COOKIE_SECRET"] == secret


def test_container_in_oidc_mode_passes_the_serving_checks(dockerfile, tmp_path):
    """Mounting secrets.toml at WORKDIR/.streamlit switches the same image to OIDC."""
    workdir = _only(dockerfile, "WORKDIR")[-1]
    # Streamlit reads $CWD/.streamlit/secrets.toml: the documented mount point is the final WORKDIR.
    assert f"{workdir}/.streamlit/secrets.toml" in (DEPLOY / "Dockerfile").read_text()
    assert f"{workdir}/.streamlit/secrets.toml" in DOCS.read_text()
    mounted = tmp_path / ".streamlit" / "secrets.toml"
    mounted.parent.mkdir()
    shutil.copy(DEPLOY / "secrets.toml.example", mounted)
    settings = _container_settings(dockerfile)
    mode = choose_mode(settings, oidc_configured=oidc_configured_in([mounted]))
    assert mode == "oidc"
    check_serving_allowed(settings, address="0.0.0.0", mode=mode)


def test_dockerignore_keeps_secrets_and_data_out_of_the_build_context():
    patterns = {
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"**/.streamlit/secrets.toml", "data/", ".venv/", ".git/"} <= patterns


class _HealthHandler(BaseHTTPRequestHandler):
    answer = b"ok"

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = self.answer if self.path == "/_stcore/health" else b"not found"
        self.send_response(200 if self.path == "/_stcore/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(("answer", "healthy"), [(b"ok", True), (b"starting", False)])
def test_dockerfile_health_check_command_runs(dockerfile, answer, healthy):
    handler = type("Handler", (_HealthHandler,), {"answer": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (health,) = _only(dockerfile, "HEALTHCHECK")
        command = json.loads(health[health.index("CMD") + 3 :])
        command[0] = sys.executable  # the image's python, here the venv's
        environment = {**os.environ, "MLOPS_APP_SERVER_PORT": str(server.server_address[1])}
        result = subprocess.run(command, env=environment, capture_output=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.returncode == 0) is healthy, result.stderr


# --- systemd -------------------------------------------------------------------------------


class _RepeatedKeys(dict):
    """configparser keeps values as lists while reading: repeated keys (Environment=) add lines."""

    def __setitem__(self, key, value):
        if key in self and isinstance(value, list) and isinstance(self[key], list):
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def read_unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(dict_type=_RepeatedKeys, strict=False, empty_lines_in_values=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text(), source=name)
    return parser


def _unit_environment(service: configparser.SectionProxy) -> dict[str, str]:
    pairs = [shlex.split(line) for line in service.get("Environment", "").splitlines()]
    return dict(word.split("=", 1) for line in pairs for word in line)


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}


@pytest.mark.parametrize(("unit", "subcommand"), [("mlops-app.service", "serve"), ("mlops-app-monitor.service", "monitor")])
def test_service_units_run_mlops_app_unprivileged_and_hardened(unit, subcommand):
    service = read_unit(unit)["Service"]
    executable, *arguments = shlex.split(service["ExecStart"])
    assert executable.startswith("/") and executable.endswith("/bin/mlops-app")
    assert arguments == [subcommand], "listen address and port come from the settings (loopback by default)"
    assert service["User"] not in {"root", "0"} and service["Group"] not in {"root", "0"}
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{unit}: {key}"
    home = _unit_environment(service)["MLOPS_APP_HOME"]
    assert home in service["ReadWritePaths"].split(), "the home is the one writable place"
    # Secrets come from a root-owned file, never from the unit (units are world-readable).
    assert service["EnvironmentFile"].startswith("/etc/")
    assert "SECRET" not in service.get("Environment", "").upper()
    # WorkingDirectory is where Streamlit finds .streamlit/secrets.toml; the docs say so.
    assert f"{service['WorkingDirectory']}/.streamlit/secrets.toml" in DOCS.read_text()


def test_dashboard_unit_configuration_passes_the_serving_checks(no_secrets_files):
    service = read_unit("mlops-app.service")["Service"]
    settings = load_settings(_unit_environment(service))
    argv = cli.streamlit_command(settings)
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert read_unit("mlops-app.service")["Service"]["Restart"] == "on-failure"


def test_monitor_unit_is_a_oneshot_that_shares_the_dashboards_settings():
    dashboard = read_unit("mlops-app.service")["Service"]
    monitor = read_unit("mlops-app-monitor.service")["Service"]
    assert monitor["Type"] == "oneshot", "a oneshot never overlaps itself when the timer fires"
    for key in ("User", "Group", "WorkingDirectory", "EnvironmentFile", "ReadWritePaths", "Environment"):
        assert monitor[key] == dashboard[key], key
    if "monitor" in {command.name or command.callback.__name__ for command in cli.app.registered_commands}:
        result = CliRunner().invoke(cli.app, ["monitor", "--help"])
        assert result.exit_code == 0, result.output


def test_monitor_timer_fires_every_ten_minutes():
    timer = read_unit("mlops-app-monitor.timer")
    assert timer["Timer"]["Unit"] == "mlops-app-monitor.service"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    calendar = timer["Timer"]["OnCalendar"]
    if shutil.which("systemd-analyze") is None:
        assert calendar == "*:0/10"
        return
    result = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True, check=True)
    assert "Normalized form: *-*-* *:00/10:00" in result.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_accepts_every_unit(tmp_path):
    for unit in ("mlops-app.service", "mlops-app-monitor.service", "mlops-app-monitor.timer"):
        shutil.copy(DEPLOY / unit, tmp_path / unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(path) for path in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # The one expected complaint: the app is not installed at /opt/mlops-app on this machine.
        if line.strip() and not re.search(r"Command /opt/mlops-app/\.venv/bin/mlops-app is not executable", line)
    ]
    assert complaints == []


# --- nginx ---------------------------------------------------------------------------------


def parse_nginx(text: str) -> list:
    """nginx configuration as a tree: [(directive, [arguments], children or None)]."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[{};]|[^\s{};"\']+', re.sub(r"#[^\n]*", "", text))

    def block(position: int) -> tuple[list, int]:
        items: list = []
        words: list[str] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                items.append((words[0], words[1:], None))
                words = []
            elif token == "{":
                children, position = block(position)
                items.append((words[0], words[1:], children))
                words = []
            elif token == "}":
                return items, position
            else:
                words.append(token.strip("\"'") if token[0] in "\"'" else token)
        return items, position

    tree, _ = block(0)
    return tree


def _find(items: list, name: str) -> list:
    return [item for item in items if item[0] == name]


def _locations(tree: list) -> dict[str, list]:
    servers = [children for name, _, children in _find(tree, "server") if any(args[0].startswith("443") for _, args, _ in _find(children, "listen"))]
    (server,) = servers
    return {" ".join(args): children for name, args, children in _find(server, "location")}, server


def _headers(children: list) -> dict[str, str]:
    return {args[0].lower(): " ".join(args[1:]) for _, args, _ in _find(children, "proxy_set_header")}


@pytest.fixture(scope="module")
def nginx_tree() -> list:
    return parse_nginx((DEPLOY / "nginx.conf").read_text())


def test_nginx_sets_the_sign_in_header_on_pages_and_on_the_websocket(nginx_tree):
    locations, _ = _locations(nginx_tree)
    for path in ("/", "/_stcore/stream"):
        children = locations[path]
        assert [args for _, args, _ in _find(children, "proxy_pass")] == [["http://127.0.0.1:8501"]]
        assert [args for _, args, _ in _find(children, "auth_request")] == [["/oauth2/auth"]]
        assert ["$email", "$upstream_http_x_auth_request_email"] in [args for _, args, _ in _find(children, "auth_request_set")]
        assert ["$groups", "$upstream_http_x_auth_request_groups"] in [args for _, args, _ in _find(children, "auth_request_set")]
        headers = _headers(children)
        assert headers["x-forwarded-email"] == "$email" and headers["x-forwarded-groups"] == "$groups"
        # The app trusts the connection's address; uvicorn would swap it for X-Forwarded-For.
        assert "x-forwarded-for" not in headers and "x-real-ip" not in headers


def test_nginx_upgrades_the_websocket(nginx_tree):
    locations, _ = _locations(nginx_tree)
    stream = locations["/_stcore/stream"]
    assert [args for _, args, _ in _find(stream, "proxy_http_version")] == [["1.1"]]
    headers = _headers(stream)
    assert headers["upgrade"] == "$http_upgrade"
    (mapping,) = _find(nginx_tree, "map")
    assert mapping[1] == ["$http_upgrade", headers["connection"]]
    assert dict((name, args[0]) for name, args, _ in mapping[2]) == {"default": "upgrade", "": "close"}


def test_nginx_every_route_to_the_app_but_health_needs_sign_in(nginx_tree):
    locations, _ = _locations(nginx_tree)
    to_app = {path: children for path, children in locations.items() if ["http://127.0.0.1:8501"] in [args for _, args, _ in _find(children, "proxy_pass")]}
    assert set(to_app) == {"= /_stcore/health", "/_stcore/stream", "/"}
    assert not _find(to_app["= /_stcore/health"], "auth_request")
    assert _find(locations["= /oauth2/auth"], "internal"), "the auth sub-request is not reachable from outside"


def test_nginx_body_limit_matches_the_upload_limit(nginx_tree):
    _, server = _locations(nginx_tree)
    assert [args for _, args, _ in _find(server, "client_max_body_size")] == [[f"{DEFAULTS['max_upload_mb']}m"]]


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = folder / "cert.pem", folder / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certificate_path, key_path


def render_nginx_conf(folder: Path, *, replacements: dict[str, str] | None = None) -> Path:
    """A main nginx.conf in ``folder`` that includes deploy/nginx.conf as Debian's would,
    with the certificate, log (and any ``replacements``) paths moved into ``folder``.
    Every replaced string must occur, so a change to the recipe cannot silently skip a test."""
    certificate, key = _self_signed_certificate(folder)
    text = (DEPLOY / "nginx.conf").read_text()
    moves = {
        "/etc/ssl/mlops-app/fullchain.pem": str(certificate),
        "/etc/ssl/mlops-app/privkey.pem": str(key),
        "/var/log/nginx/mlops-app.access.log": str(folder / "access.log"),
        "/var/log/nginx/mlops-app.error.log": str(folder / "error.log"),
        **(replacements or {}),
    }
    for old, new in moves.items():
        assert old in text, f"deploy/nginx.conf no longer contains {old!r}"
        text = text.replace(old, new)
    (folder / "mlops-app.conf").write_text(text)
    temp_paths = "".join(f"    {kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = folder / "nginx.conf"
    main.write_text(
        f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'};\nevents {{ worker_connections 256; }}\n"
        f"http {{\n{temp_paths}    access_log {folder / 'access.log'};\n    include {folder / 'mlops-app.conf'};\n}}\n"
    )
    return main


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed: `apt-get install nginx` (Debian) to test deploy/nginx.conf with nginx -t")
def test_nginx_accepts_the_configuration(tmp_path):
    main = render_nginx_conf(tmp_path)
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(main)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


# --- Secrets, oauth2-proxy, .gitignore -----------------------------------------------------


def test_secrets_example_is_a_complete_st_login_configuration(monkeypatch):
    from streamlit import auth_util
    from streamlit.errors import StreamlitAuthError
    from streamlit.runtime.secrets import AttrDict

    secrets = tomllib.loads((DEPLOY / "secrets.toml.example").read_text())
    auth = secrets["auth"]
    assert auth["redirect_uri"].startswith("https://") and auth["redirect_uri"].endswith("/oauth2callback")
    assert "CHANGE-ME" in auth["cookie_secret"] and "CHANGE-ME" in auth["client_secret"]
    assert auth["server_metadata_url"].endswith("/.well-known/openid-configuration")

    # Streamlit's own check, the one st.login runs, on the example and on a broken copy.
    def use(data):
        fake = type("FakeSecrets", (), {"load_if_toml_exists": lambda self: True, "get": lambda self, key, default=None: AttrDict(data).get(key, default)})
        monkeypatch.setattr(auth_util, "secrets_singleton", fake())

    use(secrets)
    auth_util.validate_auth_credentials("default")
    use({"auth": {key: value for key, value in auth.items() if key != "client_secret"}})
    with pytest.raises(StreamlitAuthError, match="client_secret"):
        auth_util.validate_auth_credentials("default")


def test_secrets_example_names_each_providers_discovery_document():
    text = (DEPLOY / "secrets.toml.example").read_text()
    urls = re.findall(r'server_metadata_url = "([^"]+)"', text)
    assert len(urls) == 4  # Keycloak, Okta, Entra ID, Google
    assert all(url.startswith("https://") and url.endswith("/.well-known/openid-configuration") for url in urls)


def test_oauth2_proxy_example_answers_nginx_with_the_user(nginx_tree):
    proxy = tomllib.loads((DEPLOY / "oauth2-proxy.cfg.example").read_text())
    locations, server = _locations(nginx_tree)
    assert [["http://" + proxy["http_address"]]] == [args for _, args, _ in _find(locations["/oauth2/"], "proxy_pass")]
    assert proxy["set_xauthrequest"] is True and proxy["reverse_proxy"] is True
    (server_name,) = [args[0] for _, args, _ in _find(server, "server_name")]
    assert proxy["redirect_url"] == f"https://{server_name}/oauth2/callback"
    assert proxy["cookie_secure"] is True and "CHANGE-ME" in proxy["cookie_secret"]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and the repository")
@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".streamlit/secrets.toml", True),
        ("app/.streamlit/secrets.toml", True),
        ("deploy/.streamlit/secrets.toml", True),
        ("deploy/secrets.toml.example", False),
        ("deploy/oauth2-proxy.cfg.example", False),
    ],
)
def test_gitignore_keeps_real_secrets_out_of_the_repository(path, ignored):
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert (result.returncode == 0) is ignored


# --- Backups (docs/self-hosting.md) --------------------------------------------------------


def _documented_backup_command(home: Path, backups: Path) -> str:
    """The backup command of docs/self-hosting.md, pointed at a test home."""
    match = re.search(r"```bash\n# backup\n(.*?)```", DOCS.read_text(), re.S)
    assert match, "docs/self-hosting.md lost its '# backup' command block"
    command = match.group(1).replace("sudo -u mlops-app ", "")
    assert "/var/lib/mlops-app" in command and "/var/backups/mlops-app" in command
    return command.replace("/var/lib/mlops-app", str(home)).replace("/var/backups/mlops-app", str(backups))


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock(1) is not installed (Debian package util-linux)")
def test_holding_the_warehouse_lock_with_flock_pauses_every_writer(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", lock_timeout=0.5)
    warehouse.migrate()
    lock = str(warehouse.path) + LOCK_SUFFIX
    # Its own process group: flock runs `sleep` as a child that inherits the lock.
    holder = subprocess.Popen(["flock", lock, "sleep", "30"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["flock", "-n", lock, "true"]).returncode == 0:
            assert time.monotonic() < deadline, "flock never took the lock"
            time.sleep(0.05)
        with pytest.raises(WarehouseBusyError):
            warehouse.execute("CREATE TABLE written_during_backup (x INTEGER)")
    finally:
        os.killpg(holder.pid, signal.SIGTERM)
        holder.wait()
    warehouse.execute("CREATE TABLE written_after_backup (x INTEGER)")


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock(1) is not installed (Debian package util-linux)")
def test_documented_backup_restores_a_working_home(tmp_path):
    home, backups, restored = tmp_path / "home", tmp_path / "backups", tmp_path / "restored"
    backups.mkdir()
    warehouse = Warehouse(home / "warehouse.duckdb")
    warehouse.migrate()
    warehouse.execute("CREATE TABLE apples AS SELECT range AS id FROM range(1000)")
    (home / "registry" / "apple-grader").mkdir(parents=True)
    (home / "registry" / "apple-grader" / "model.json").write_text('{"aliases": {"champion": 1}}')
    (home / "registry" / "apple-grader" / ".lock").touch()

    subprocess.run(["bash", "-euo", "pipefail", "-c", _documented_backup_command(home, backups)], check=True, timeout=120)

    (archive,) = backups.iterdir()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert not [name for name in names if name.endswith(".lock") or ".lock." in name], names
        tar.extractall(restored, filter="data")
    copy = Warehouse(restored / "warehouse.duckdb")
    assert copy.query_one("SELECT count(*) FROM apples") == (1000,)
    assert copy.schema_version() == warehouse.schema_version()
    assert json.loads((restored / "registry" / "apple-grader" / "model.json").read_text())["aliases"] == {"champion": 1}
