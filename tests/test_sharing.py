"""Signed share links to one review, and the self-contained HTML export, on a real registry and warehouse."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from mlops_app import promotion, sharing
from mlops_app.errors import ConfigError, NotFoundError, PermissionDeniedError
from mlops_app.sharing import ShareLinkError, make_share_link, review_html, verify_share_token
from tests.test_promotion import ADMIN, APPROVER, MODEL, REVIEWER, VIEWER, World, apples, fitted, world  # noqa: F401 (fixtures)

ISSUED = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
TAMPERED = "This share link is not valid: it was changed, cut short, or not made by this dashboard"


def link_token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["share"][0]


def make(world: World, version: int = 1, **kwargs) -> str:
    return make_share_link(world.settings, MODEL, version, identity=kwargs.pop("identity", REVIEWER), registry=world.registry, now=ISSUED, **kwargs)


def verify(world: World, token: str, model: str = MODEL, version: int = 1, now: datetime | None = None):
    return verify_share_token(world.settings, token, model, version, registry=world.registry, now=now or ISSUED + timedelta(hours=1))


def last_refusal(world: World) -> dict:
    event = world.events()[-1]
    assert event["event"] == "refused" and event["details"]["action"] == "open_share_link"
    return event


def test_a_share_link_opens_exactly_its_review_until_it_expires(world):
    link = make(world)
    assert link.startswith("http://127.0.0.1:8501/model_review?model=grader&version=1&share=")
    payload = verify(world, link_token(link))
    assert (payload.model, payload.version, payload.issued_by) == (MODEL, 1, REVIEWER.email)
    assert payload.expires_at == ISSUED + timedelta(hours=72)
    created = world.events("share_link_created")[-1]
    assert created["actor"] == REVIEWER.email and created["version"] == 1
    assert created["details"]["expires_at"] == "2026-09-04T12:00:00+00:00" and created["details"]["link_id"] == payload.link_id
    assert verify(world, link_token(make(world, hours=2)), now=ISSUED + timedelta(hours=1, minutes=59)).version == 1


def test_a_changed_payload_is_refused_and_logged(world):
    world.register(0.93)
    payload_part, signature = link_token(make(world)).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload_part + "=" * (-len(payload_part) % 4)))
    data["n"], data["exp"] = 2, data["exp"] + 10**6  # another version, a later expiry
    forged = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":"), sort_keys=True).encode()).rstrip(b"=").decode()
    with pytest.raises(ShareLinkError, match=TAMPERED):
        verify(world, f"{forged}.{signature}", version=2)
    event = last_refusal(world)
    assert event["actor"] == "anonymous (share link)" and event["reason"].startswith("This share link is not valid")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # another signature
        lambda token: token.split(".")[0] + ".",  # signature cut off
        lambda token: token.split(".")[0],  # no signature at all
        lambda token: token + ".extra",
        lambda token: token.replace(".", ".!"),
        lambda token: "",
    ],
)
def test_a_changed_or_cut_signature_is_refused(world, mangle):
    token = link_token(make(world))
    with pytest.raises(ShareLinkError, match=TAMPERED):
        verify(world, mangle(token))
    last_refusal(world)


def test_repeated_refusals_reach_the_audit_log_at_most_once_per_interval(world):
    token = link_token(make(world))
    for _ in range(5):
        with pytest.raises(ShareLinkError, match=TAMPERED):
            verify(world, token + "x")
    assert len(world.events("refused")) == 1


def test_an_expired_link_is_refused_with_who_to_ask(world):
    token = link_token(make(world, hours=24))
    assert verify(world, token, now=ISSUED + timedelta(hours=23, minutes=59)).version == 1
    with pytest.raises(ShareLinkError, match=r"This share link expired on 2026-09-02 12:00 UTC. Ask rita@example.com for a new one."):
        verify(world, token, now=ISSUED + timedelta(hours=24))
    assert "expired" in last_refusal(world)["reason"]


def test_a_link_for_another_review_is_refused(world):
    world.register(0.93)
    token = link_token(make(world, version=1))
    with pytest.raises(ShareLinkError, match="opens the review of grader version 1, not grader version 2"):
        verify(world, token, version=2)
    world.register(0.93, model="sorter")
    with pytest.raises(ShareLinkError, match="opens the review of grader version 1, not sorter version 1"):
        verify(world, token, model="sorter")
    assert world.registry.events("sorter")[-1]["event"] == "refused"


def test_a_link_signed_with_another_secret_is_refused(world):
    token = link_token(make(world))
    rotated = world.settings.with_overrides(share_secret="a-new-secret-of-enough-length-0123456789")
    with pytest.raises(ShareLinkError, match=TAMPERED):
        verify_share_token(rotated, token, MODEL, 1, registry=world.registry, now=ISSUED)


def test_making_a_link_needs_a_reviewer_and_an_existing_version(world):
    before = len(world.events())
    with pytest.raises(PermissionDeniedError, match="vic@example.com has the viewer role"):
        make(world, identity=VIEWER)
    with pytest.raises(NotFoundError, match="Model 'grader' has no version 7"):
        make(world, version=7)
    with pytest.raises(Exception, match="A share link lasts more than 0 and at most 8760 hours"):
        make(world, hours=0)
    events = world.events()[before:]
    assert [event["event"] for event in events] == ["refused"] * 3
    assert not world.events("share_link_created")


def test_the_secret_is_made_once_private_and_a_short_configured_one_is_refused(world):
    path = world.settings.home_path / sharing.SECRET_FILE
    assert not path.exists()
    first = sharing.share_secret(world.settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) >= 48
    assert sharing.share_secret(world.settings) == first
    os.chmod(path, 0o644)
    assert sharing.share_secret(world.settings) == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="share_secret is 5 characters long; use at least 16"):
        sharing.share_secret(world.settings.with_overrides(share_secret="short"))


HOSTILE = '<script>alert("x")</script>'
SAFE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "span", "section", "dl", "dt", "dd",
    "table", "thead", "tbody", "tr", "th", "td", "br", "ol", "li", "footer", "svg", "rect",
}  # fmt: skip


class _Tags(HTMLParser):
    """Collects every tag, attribute and the CSS of a page as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.css = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.names.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css += data


def test_the_review_html_is_self_contained_and_escapes_every_value(world):
    world.registry.create_model("hostile", description=HOSTILE, owner="<b>owner</b>", actor=ADMIN.email)
    world.register(0.90, model="hostile")
    world.registry.set_alias("hostile", "champion", 1, actor=ADMIN.email)
    world.register(
        0.93, model="hostile",
        extra={"predicts": "</dd><img src=x onerror=alert(1)>", "limits": "a & b", "metric_units": {"recall_bad": "%"}},
        slices=[{"column": "<i>", "value": '"><svg onload=alert(1)>', "rows": 50, "metrics": {"recall_bad": 0.9}}],
    )  # fmt: skip
    promotion.request_promotion(
        world.settings, world.registry, world.warehouse, "hostile", 2, "champion", REVIEWER, reason="<a href='https://evil.example'>click</a>"
    )
    text = review_html(world.registry, world.warehouse, "hostile", 2)

    assert text.startswith("<!DOCTYPE html>")
    tags = _Tags()
    tags.feed(text)
    # Only plain structure, inline CSS and inline SVG: no scripts, links, images or frames.
    assert set(tags.names) <= SAFE_TAGS, set(tags.names) - SAFE_TAGS
    assert all(name not in ("src", "href") and not name.startswith("on") and "url(" not in value for name, value in tags.attributes)
    assert not any("http:" in value or "https:" in value for _, value in tags.attributes)
    assert "url(" not in tags.css and "@import" not in tags.css and "http" not in tags.css
    assert "https://" not in text.replace("&#x27;https://evil.example&#x27;", "") and "http://" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;/dd&gt;&lt;img src=x onerror=alert(1)&gt;" in text and "a &amp; b" in text
    assert "&quot;&gt;&lt;svg onload=alert(1)&gt;" in text and "&lt;b&gt;owner&lt;/b&gt;" in text
    # The content a reviewer needs is there.
    for expected in ("Model review: hostile version 2", "Bad apples caught", "93.0%", "90.0%", "+3 points better",
                     "Loads and predicts on real rows", "Waiting for approval", "asked to make version 2 champion", "<svg "):  # fmt: skip
        assert expected in text


def test_the_review_html_of_an_approved_version_tells_the_decision(world):
    version = world.register(0.93)
    request = world.request(version.version)
    promotion.approve(world.settings, world.registry, MODEL, request.id, APPROVER, comment="Ship it")
    text = review_html(world.registry, world.warehouse, MODEL, version.version, generated_at=ISSUED)
    assert "Approved by alan@example.com" in text and "Now serving as champion." in text
    assert "approved by alan@example.com on" in text and ": Ship it" in text
    assert "Made by mlops-app on 2026-09-01 12:00 UTC" in text and "the approval above is final" in text
