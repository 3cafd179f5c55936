from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.pages.apptest import open_page


def _run_access() -> AppTest:
    return open_page("access", check=False)


def test_admin_sees_who_has_which_role(use_demo_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_APPROVERS", "@quality.example, group:release-managers")
    monkeypatch.setenv("MLOPS_APP_REVIEWERS", "ann@orchard.example")
    at = _run_access()
    assert not at.exception
    assert at.title[0].value == "Access"
    rules = at.dataframe[0].value
    assert list(rules["Who"]) == ["everyone at @quality.example", "release-managers", "ann@orchard.example"]
    assert list(rules["Role"]) == ["approver", "approver", "reviewer"]
    roles = at.dataframe[1].value
    assert "approve promotion" in roles.set_index("Role").loc["approver", "Actions it adds"]
    assert "local demo identity" in at.markdown[0].value


def test_no_rules_guides(use_demo_home):
    at = _run_access()
    assert "No role rules are set" in at.info[0].value


def test_non_admins_are_refused_on_the_server(use_demo_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "approver")
    at = _run_access()
    assert not at.exception
    assert "needs the admin role" in at.error[0].value
    assert not at.dataframe
