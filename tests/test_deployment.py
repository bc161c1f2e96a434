"""Production settings: hardened server config, health endpoint, optional sign-in, clean logs."""

import io
import json
import logging
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "s" * 40,
    "client_id": "lucid",
    "client_secret": "secret",
    "server_metadata_url": "https://idp.example.invalid/.well-known/openid-configuration",
}


def test_server_config_is_hardened():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["enableXsrfProtection"] is True
    assert 0 < server["maxUploadSize"] <= 200
    assert server["enableStaticServing"] is False
    assert config["browser"]["gatherUsageStats"] is False
    assert config["global"]["developmentMode"] is False
    assert config["client"]["toolbarMode"] == "viewer"
    assert config["client"]["showErrorDetails"] == "none"
    assert not (ROOT / "static").exists()


def test_health_endpoint_and_no_static_files(live_app):
    assert urllib.request.urlopen(f"{live_app}/_stcore/health", timeout=5).read() == b"ok"
    # The repository is never served: any path gives the app shell (or 404), never a file's content.
    for path in ("/app/static/app.py", "/app.py", "/app/static/README.md", "/.streamlit/config.toml"):
        try:
            body = urllib.request.urlopen(live_app + path, timeout=5).read().decode()
        except urllib.error.HTTPError as err:
            assert err.code == 404
            continue
        assert "st.navigation" not in body and "Explainable AI dashboards" not in body
        assert "enableXsrfProtection" not in body


def test_sign_in_off_by_default(app_test):
    at = app_test()
    assert not at.exception
    assert "Sign in" not in [b.label for b in at.button]
    assert at.metric[0].label == "Compute device"


def test_sign_in_required_when_auth_configured():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = AUTH
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert len(at.metric) == 0  # nothing of the app is shown before sign-in


def test_sign_in_rule():
    from lucid.core.auth import sign_in_required

    assert not sign_in_required(None)
    assert not sign_in_required({"auth": {"redirect_uri": "x"}})  # no cookie secret: not usable
    assert sign_in_required({"auth": AUTH})


def test_logs_are_json_without_user_data():
    from lucid.core.errors import InvalidInputError
    from lucid.core.logs import JsonFormatter
    from lucid.ui.widgets import guard

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("lucid")
    logger.addHandler(handler)
    try:
        with guard("scoring applicants"):
            raise ValueError("applicant John Smith, IBAN DE89 3704 0044 0532 0130 00")
        with guard("scoring applicants"):
            raise InvalidInputError("column 'salary' missing")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1  # expected errors are shown to the user, not logged as failures
    assert lines[0]["level"] == "ERROR" and lines[0]["error_type"] == "ValueError"
    assert lines[0]["where"].startswith("test_deployment.py:")
    assert "scoring applicants" in lines[0]["message"]
    assert "John Smith" not in stream.getvalue() and "DE89" not in stream.getvalue()
