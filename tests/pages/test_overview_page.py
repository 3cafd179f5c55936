from __future__ import annotations

from streamlit.testing.v1 import AppTest

from mlops_app.warehouse import Warehouse
from tests.pages.apptest import open_page


def _run() -> AppTest:
    return open_page(None, check=False)


def test_overview_shows_the_demo_portfolio(use_demo_home):
    at = _run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    labels = {metric.label: metric.value for metric in at.metric}
    assert labels["Bad apples caught"].endswith("%")
    assert labels["Typical error (MAE)"].endswith("°Bx")
    champions = [metric.value for metric in at.metric if metric.label == "Champion (serving)"]
    assert champions == ["version 2", "version 1"]  # apple-grader, sugar-estimator
    assert labels["Rows"].replace(",", "").isdigit()
    text = " ".join(block.value for block in at.markdown)
    assert "2 of 2 models in service" in text
    # Model and dataset names are links to their pages.
    links = {(link.proto.label, link.proto.page) for link in at.get("page_link")}
    assert any(label == "apple-grader" and page == "models" for label, page in links), links
    assert any(label == "apple_harvest" and page == "data_quality" for label, page in links), links
    activity = at.dataframe[0].value
    assert len(activity) > 0 and set(activity.columns) == {"When", "What", "Who"}
    sidebar = " ".join(caption.value for caption in at.sidebar.caption)
    assert "demo@localhost" in sidebar and "admin" in sidebar


def test_missing_home_guides_instead_of_failing():
    at = _run()
    assert not at.exception
    assert "mlops-app demo" in at.warning[0].value


def test_empty_home_guides(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "empty"))
    Warehouse(tmp_path / "empty" / "warehouse.duckdb").migrate()
    at = _run()
    assert not at.exception
    infos = " ".join(info.value for info in at.info)
    assert "No models are registered yet" in infos and "No datasets yet" in infos


def test_busy_warehouse_shows_a_message_not_a_trace(use_demo_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCK_TIMEOUT_SECONDS", "0.2")
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from mlops_app.warehouse import Warehouse\n"
            "w = Warehouse(sys.argv[1])\n"
            "with w.transaction() as con:\n"
            "    print('held', flush=True); time.sleep(20)\n"
        ), str(use_demo_home / "warehouse.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        # A write bumps nothing here, but a new generation would force a fresh read: clear the cache.
        import streamlit as st

        st.cache_data.clear()
        at = _run()
        assert not at.exception
        assert "busy" in at.warning[0].value and str(holder.pid) in at.warning[0].value
    finally:
        holder.kill()
        holder.wait()
        time.sleep(0.1)


def test_proxy_identity_and_role(use_demo_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_PROXY_HEADER", "X-Forwarded-Email")
    monkeypatch.setenv("MLOPS_APP_APPROVERS", "@quality.example")
    from mlops_app.ui import identity

    monkeypatch.setattr(identity, "request_headers", lambda: {"X-Forwarded-Email": "eve@quality.example"})
    monkeypatch.setattr(identity, "client_address", lambda: "127.0.0.1")
    at = _run()
    assert not at.exception
    sidebar = " ".join(caption.value for caption in at.sidebar.caption)
    assert "eve@quality.example" in sidebar and "approver" in sidebar
    # The same header from an address that is not a trusted proxy is refused, not believed.
    monkeypatch.setattr(identity, "client_address", lambda: "192.0.2.7")
    at = _run()
    assert not at.exception and "not a trusted proxy" in at.error[0].value
    assert not at.title or at.title[0].value != "Overview"
    monkeypatch.setattr(identity, "client_address", lambda: "127.0.0.1")
    monkeypatch.setattr(identity, "request_headers", lambda: {})
    at = _run()
    assert "header is missing" in at.error[0].value


def test_local_identity_answers_only_on_this_machine(use_demo_home, monkeypatch):
    from mlops_app.ui import identity

    monkeypatch.setattr(identity, "client_address", lambda: "192.0.2.7")
    at = _run()
    assert not at.exception and "only answers on this machine" in at.error[0].value
    monkeypatch.setenv("MLOPS_APP_ALLOW_REMOTE_LOCAL_IDENTITY", "true")
    at = _run()
    assert at.title[0].value == "Overview"


def test_a_monitored_model_links_to_its_live_monitoring(use_monitored_home):
    at = _run()
    assert not at.exception, at.exception
    links = {(link.proto.label, link.proto.page) for link in at.get("page_link")}
    assert ("Live monitoring", "monitoring") in links, links
    labels = [metric.label for metric in at.metric]
    assert any(label.startswith("Share of ") and "(as of 2026-09-0" in label for label in labels), labels
