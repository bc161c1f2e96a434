"""Whether sign-in is required: on only when an ``[auth]`` section is configured in secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def sign_in_required(secrets: Mapping[str, Any] | None) -> bool:
    """True when the deployment configured OpenID Connect sign-in (``[auth]`` with a redirect URI).

    Args:
        secrets: the app's secrets (``st.secrets``), or ``None`` when there is no secrets file.
    """
    if not secrets:
        return False
    try:
        auth = secrets.get("auth")
    except (KeyError, FileNotFoundError):
        return False
    if not isinstance(auth, Mapping):
        return False
    return bool(auth.get("redirect_uri")) and bool(auth.get("cookie_secret"))
