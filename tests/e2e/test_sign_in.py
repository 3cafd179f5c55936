"""Signing in as a person does it: a real `mlops-app serve`, Debian's Chromium, and on the
other side a small OpenID Connect issuer, a trusted proxy's header, or nginx itself
(deploy/nginx.conf) with a stand-in for oauth2-proxy. Everything listens on loopback."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mlops_app.testing import EXCEPTION, RENDERED, free_port, serve_dashboard
from tests.conftest import SMALL_DEMO
from tests.test_deploy import NGINX, render_nginx_conf

pytestmark = pytest.mark.e2e

# Two cores run the server, Chromium and the fake issuer at once: wait generously.
WAIT_MS = 90_000
SIDEBAR = '[data-testid="stSidebar"]'
MAIN = '[data-testid="stMain"]'


def _serve_environment(demo_home: Path, **settings: str) -> dict[str, str]:
    return {"MLOPS_APP_HOME": str(demo_home), **SMALL_DEMO, **settings}


def _wait_rendered(page) -> None:
    page.wait_for_selector(RENDERED, timeout=WAIT_MS)


def _sidebar(page) -> str:
    page.wait_for_selector(SIDEBAR, timeout=WAIT_MS)
    return page.locator(SIDEBAR).inner_text()


@contextmanager
def _opened(browser, url: str, **context_options) -> Iterator:
    """A fresh browser context (closed even when the test fails) with ``url`` rendered."""
    context = browser.new_context(**context_options)
    try:
        page = context.new_page()
        page.goto(url, wait_until="commit")
        _wait_rendered(page)
        yield page
    finally:
        context.close()


# --- A small OpenID Connect issuer -------------------------------------------------------------


class FakeIssuer:
    """An OpenID Connect provider on loopback: discovery, a login form, code flow with PKCE,
    RS256-signed ID tokens (key made here with `cryptography`, signed with joserfc), JWKS,
    userinfo and RP-initiated logout. It checks what a real provider checks (client secret,
    single-use code, redirect URI, PKCE verifier) and records what happened."""

    def __init__(self, *, client_id: str, client_secret: str, users: dict[str, dict]) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from joserfc.jwk import RSAKey

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key = RSAKey.import_key(private, {"kid": "fake-issuer-1", "use": "sig", "alg": "RS256"})
        self.client_id, self.client_secret, self.users = client_id, client_secret, users
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, str] = {}
        self.events: list[tuple[str, dict]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[FakeIssuer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()

    def metadata(self) -> dict:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.url + "/jwks",
            "userinfo_endpoint": self.url + "/userinfo",
            "end_session_endpoint": self.url + "/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
        }

    def id_token(self, email: str, nonce: str | None) -> str:
        from joserfc import jwt

        now = int(time.time())
        claims = {"iss": self.url, "sub": email, "aud": self.client_id, "iat": now, "exp": now + 300, **self.users[email]}
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode({"alg": "RS256", "kid": "fake-issuer-1"}, claims, self.key)

    def _handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, data: dict, status: int = 200):
                self._send(status, json.dumps(data).encode())

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("Content-Length", "0"))
                return {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}

            def do_GET(self):  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(issuer.metadata())
                elif url.path == "/jwks":
                    self._json({"keys": [issuer.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    issuer.events.append(("authorize", query))
                    if query.get("client_id") != issuer.client_id or query.get("response_type") != "code":
                        self._send(400, b"unknown client or response type", "text/plain")
                        return
                    hidden = "".join(
                        f'<input type="hidden" name="{html.escape(key)}" value="{html.escape(value)}">' for key, value in query.items()
                    )
                    page = (
                        "<!doctype html><title>Fake issuer</title><h1>Fake issuer sign-in</h1>"
                        f'<form method="post" action="/authorize">{hidden}'
                        '<label>E-mail <input name="email" type="email"></label>'
                        '<button type="submit">Continue</button></form>'
                    )
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif url.path == "/userinfo":
                    email = issuer.access_tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
                    if email is None:
                        self._json({"error": "invalid_token"}, 401)
                    else:
                        self._json({"sub": email, **issuer.users[email]})
                elif url.path == "/logout":
                    issuer.events.append(("logout", query))
                    self._send(302, headers={"Location": query["post_logout_redirect_uri"]})
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self):  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                form = self._form()
                if url.path == "/authorize":
                    email = form.get("email", "").lower()
                    if email not in issuer.users:
                        self._send(403, b"unknown user", "text/plain")
                        return
                    code = secrets.token_urlsafe(16)
                    issuer.codes[code] = {**form, "email": email}
                    target = form["redirect_uri"] + "?" + urlencode({"code": code, "state": form.get("state", "")})
                    self._send(302, headers={"Location": target})
                elif url.path == "/token":
                    self._token(form)
                else:
                    self._send(404, b"not found", "text/plain")

            def _token(self, form: dict[str, str]):
                client_id, client_secret = form.get("client_id"), form.get("client_secret")
                authorization = self.headers.get("Authorization", "")
                if authorization.startswith("Basic "):
                    client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
                issuer.events.append(("token", {"client_id": client_id, "code_verifier": form.get("code_verifier")}))
                if (client_id, client_secret) != (issuer.client_id, issuer.client_secret):
                    self._json({"error": "invalid_client"}, 401)
                    return
                grant = issuer.codes.pop(form.get("code", ""), None)  # a code works once
                if grant is None or form.get("grant_type") != "authorization_code" or form.get("redirect_uri") != grant["redirect_uri"]:
                    self._json({"error": "invalid_grant"}, 400)
                    return
                if grant.get("code_challenge"):
                    digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["code_challenge"]:
                        self._json({"error": "invalid_grant", "error_description": "PKCE verifier does not match"}, 400)
                        return
                access_token = secrets.token_urlsafe(24)
                issuer.access_tokens[access_token] = grant["email"]
                self._json(
                    {
                        "access_token": access_token,
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "scope": grant.get("scope", "openid"),
                        "id_token": issuer.id_token(grant["email"], grant.get("nonce")),
                    }
                )

        return Handler


def test_oidc_sign_in_maps_the_role_and_sign_out_returns_to_the_prompt(demo_home, tmp_path, browser):
    users = {"alice@quality.example": {"email": "alice@quality.example", "email_verified": True, "name": "Alice Apfel", "groups": ["mlops-admins"]}}
    issuer = FakeIssuer(client_id="mlops-app", client_secret="fake-issuer-secret", users=users)
    # Streamlit reads $CWD/.streamlit/secrets.toml; {port} is filled in with the server's port.
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "mlops-app"\n'
        'client_secret = "fake-issuer-secret"\n'
        f'server_metadata_url = "{issuer.url}/.well-known/openid-configuration"\n'
    )
    environment = _serve_environment(demo_home, MLOPS_APP_ADMINS="group:mlops-admins", MLOPS_APP_APPROVERS="@quality.example")
    with issuer.running(), serve_dashboard(environment, tmp_path / "serve.log", cwd=tmp_path) as url:
        with _opened(browser, url + "/") as page:
            page.get_by_role("heading", name="Sign in to mlops-app").wait_for(timeout=WAIT_MS)
            assert page.locator(f"{MAIN} h1", has_text="Overview").count() == 0

            page.locator(".st-key-sign_in button").click()
            page.wait_for_url(issuer.url + "/authorize?*", timeout=WAIT_MS)
            page.fill('input[name="email"]', "Alice@Quality.example")
            page.click('button[type="submit"]')
            page.wait_for_url(url + "/", timeout=WAIT_MS)
            _wait_rendered(page)
            page.locator(f"{MAIN} h1", has_text="Overview").wait_for(timeout=WAIT_MS)

            sidebar = _sidebar(page)
            assert "alice@quality.example" in sidebar and "Alice Apfel" in sidebar
            # Admin through the groups claim, although the e-mail's domain alone makes an approver.
            assert "Role: admin" in sidebar
            assert page.locator(EXCEPTION).count() == 0
            (authorize,) = [details for event, details in issuer.events if event == "authorize"]
            assert authorize["redirect_uri"] == url + "/oauth2callback" and authorize["code_challenge_method"] == "S256"
            assert [details["code_verifier"] is not None for event, details in issuer.events if event == "token"] == [True]

            page.locator(".st-key-sign_out button").click()
            page.get_by_role("heading", name="Sign in to mlops-app").wait_for(timeout=WAIT_MS)
            (logout,) = [details for event, details in issuer.events if event == "logout"]
            assert logout["id_token_hint"] and logout["post_logout_redirect_uri"] == url + "/oauth2callback"
            assert not [cookie for cookie in page.context.cookies() if cookie["name"].startswith("_streamlit_user")]
            assert "alice@quality.example" not in page.locator('[data-testid="stApp"]').inner_text()


# --- The trusted proxy header ------------------------------------------------------------------

PROXY = {"MLOPS_APP_AUTH_MODE": "proxy", "MLOPS_APP_PROXY_HEADER": "X-Forwarded-Email", "MLOPS_APP_APPROVERS": "@quality.example"}


def test_proxy_header_from_a_trusted_proxy_signs_in(demo_home, tmp_path, browser):
    with serve_dashboard(_serve_environment(demo_home, **PROXY), tmp_path / "serve.log", cwd=tmp_path) as url:
        with _opened(browser, url + "/", extra_http_headers={"X-Forwarded-Email": "Carol@Quality.example"}) as page:
            page.locator(f"{MAIN} h1", has_text="Overview").wait_for(timeout=WAIT_MS)
            sidebar = _sidebar(page)
            assert "carol@quality.example" in sidebar and "Role: approver" in sidebar
            assert page.locator(EXCEPTION).count() == 0


def test_proxy_header_from_an_untrusted_address_is_refused(demo_home, tmp_path, browser):
    environment = _serve_environment(demo_home, **PROXY, MLOPS_APP_TRUSTED_PROXIES="10.9.9.9")
    with serve_dashboard(environment, tmp_path / "serve.log", cwd=tmp_path) as url:
        with _opened(browser, url + "/", extra_http_headers={"X-Forwarded-Email": "carol@quality.example"}) as page:
            page.get_by_text("not a trusted proxy").wait_for(timeout=WAIT_MS)
            assert page.locator(f"{MAIN} h1", has_text="Overview").count() == 0
            assert "carol@quality.example" not in page.locator('[data-testid="stApp"]').inner_text()
    assert "refused sign-in header for carol@quality.example" in (tmp_path / "serve.log").read_text()


def test_a_forwarded_for_header_cannot_borrow_a_trusted_proxys_address(demo_home, tmp_path, browser):
    """uvicorn, under Streamlit, believes X-Forwarded-For from loopback by default: a local
    process claiming to come from the trusted proxy must still be refused."""
    environment = _serve_environment(demo_home, **PROXY, MLOPS_APP_TRUSTED_PROXIES="10.9.9.9")
    with serve_dashboard(environment, tmp_path / "serve.log", cwd=tmp_path) as url:
        forged = {"X-Forwarded-Email": "mallory@quality.example", "X-Forwarded-For": "10.9.9.9"}
        with _opened(browser, url + "/", extra_http_headers=forged) as page:
            page.get_by_text("not a trusted proxy").wait_for(timeout=WAIT_MS)
            assert page.locator(f"{MAIN} h1", has_text="Overview").count() == 0


# --- Through nginx (deploy/nginx.conf) ---------------------------------------------------------


class FakeOauth2Proxy:
    """What nginx asks of oauth2-proxy: /oauth2/auth answers 202 with the user's e-mail and
    groups for a signed-in cookie, 401 otherwise; /oauth2/sign_in stands for the whole
    provider round trip and sets that cookie. Records the URI of every auth sub-request."""

    COOKIE = "_oauth2_proxy"

    def __init__(self, email: str, groups: str) -> None:
        self.session = secrets.token_urlsafe(16)
        self.checked: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                path = urlsplit(self.path).path
                cookie = SimpleCookie(self.headers.get("Cookie", ""))
                signed_in = proxy.COOKIE in cookie and cookie[proxy.COOKIE].value == proxy.session
                if path == "/oauth2/auth":
                    proxy.checked.append(self.headers.get("X-Forwarded-Uri", ""))
                    self.send_response(202 if signed_in else 401)
                    if signed_in:
                        self.send_header("X-Auth-Request-Email", email)
                        self.send_header("X-Auth-Request-Groups", groups)
                elif path == "/oauth2/sign_in":
                    self.send_response(302)
                    self.send_header("Set-Cookie", f"{proxy.COOKIE}={proxy.session}; Path=/; Secure; HttpOnly; SameSite=Lax")
                    self.send_header("Location", self.headers.get("X-Auth-Request-Redirect") or "/")
                else:
                    self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    @contextmanager
    def running(self) -> Iterator[FakeOauth2Proxy]:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@contextmanager
def running_nginx(folder: Path, *, app_port: int, auth_port: int) -> Iterator[str]:
    """deploy/nginx.conf served by a real nginx on free loopback ports; yields the https url."""
    https_port, http_port = free_port(), free_port()
    main = render_nginx_conf(
        folder,
        replacements={
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "listen [::]:443 ssl;": "",
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen [::]:80;": "",
            "127.0.0.1:8501": f"127.0.0.1:{app_port}",
            "127.0.0.1:4180": f"127.0.0.1:{auth_port}",
        },
    )
    if os.geteuid() == 0:
        # As root nginx would run its workers as nobody, who cannot enter pytest's temp folder.
        main.write_text("user root;\n" + main.read_text())
    log = folder / "nginx.out"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(main), "-g", "daemon off;"],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"nginx exited: {log.read_text()}\n{(folder / 'error.log').read_text()}"
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.2)
        yield f"https://127.0.0.1:{https_port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed: `apt-get install nginx` (Debian) to run deploy/nginx.conf")
def test_nginx_recipe_signs_in_on_the_websocket_and_overrides_a_forged_header(demo_home, tmp_path, browser):
    environment = _serve_environment(
        demo_home,
        MLOPS_APP_AUTH_MODE="proxy",
        MLOPS_APP_PROXY_HEADER="X-Forwarded-Email",
        MLOPS_APP_PROXY_GROUPS_HEADER="X-Forwarded-Groups",
        MLOPS_APP_ADMINS="group:mlops-admins",
    )
    oauth2_proxy = FakeOauth2Proxy("dora@quality.example", "mlops-admins,staff")
    nginx_folder = tmp_path / "nginx"
    nginx_folder.mkdir()
    with serve_dashboard(environment, tmp_path / "serve.log", cwd=tmp_path) as url, oauth2_proxy.running():
        with running_nginx(nginx_folder, app_port=urlsplit(url).port, auth_port=oauth2_proxy.port) as public:
            # Without signing in, nginx sends the browser to sign in; health needs no sign-in.
            self_signed = ssl.create_default_context()
            self_signed.check_hostname, self_signed.verify_mode = False, ssl.CERT_NONE
            with urllib.request.urlopen(public + "/_stcore/health", context=self_signed, timeout=10) as response:
                assert response.read().strip() == b"ok"
            opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self_signed), _NoRedirect)
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open(public + "/", timeout=10)
            assert refused.value.code == 302 and refused.value.headers["Location"] == "/"
            assert "_oauth2_proxy=" in refused.value.headers["Set-Cookie"]

            # The browser forges the sign-in header; nginx must replace it with oauth2-proxy's answer.
            forged = {"X-Forwarded-Email": "mallory@quality.example"}
            with _opened(browser, public + "/", ignore_https_errors=True, extra_http_headers=forged) as page:
                page.locator(f"{MAIN} h1", has_text="Overview").wait_for(timeout=WAIT_MS)
                sidebar = _sidebar(page)
                assert "dora@quality.example" in sidebar and "Role: admin" in sidebar
                assert "mallory" not in page.locator('[data-testid="stApp"]').inner_text()
                assert "/_stcore/stream" in oauth2_proxy.checked, "the websocket went through the auth sub-request"


# --- Hardened defaults -------------------------------------------------------------------------


def test_upload_endpoint_refuses_a_request_without_the_xsrf_token(demo_home, tmp_path):
    with serve_dashboard(_serve_environment(demo_home), tmp_path / "serve.log", cwd=tmp_path) as url:
        upload = url + "/_stcore/upload_file/some-session/some-file"
        body = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na,b\r\n--x--\r\n"
        headers = {"Content-Type": "multipart/form-data; boundary=x"}

        def put(extra: dict[str, str]) -> int:
            request = urllib.request.Request(upload, data=body, method="PUT", headers={**headers, **extra})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        with urllib.request.urlopen(url + "/_stcore/health", timeout=10) as response:
            token = SimpleCookie(response.headers["Set-Cookie"])["_streamlit_xsrf"].value
        assert put({}) == 403
        assert put({"Cookie": f"_streamlit_xsrf={token}", "X-Xsrftoken": "forged"}) == 403
        # The control: with the cookie and the matching header the XSRF check passes and the
        # request fails further on, on the made-up session.
        assert put({"Cookie": f"_streamlit_xsrf={token}", "X-Xsrftoken": token}) == 400


def test_local_identity_refuses_to_serve_on_every_interface(tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_APP_")}
    environment["MLOPS_APP_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mlops-app"), "serve", "--address", "0.0.0.0", "--port", str(free_port())],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Refusing to serve the local demo identity on 0.0.0.0" in result.stderr
    assert "MLOPS_APP_ALLOW_REMOTE_LOCAL_IDENTITY" in result.stderr

