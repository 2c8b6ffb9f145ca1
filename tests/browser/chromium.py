"""Where the browser test's Chromium and Playwright come from, and why the test is skipped without them.

Debian's ``chromium`` package (``/usr/bin/chromium``) is driven by the ``playwright`` Python
package; no Playwright browser build is ever downloaded (never run ``playwright install``).
Install both with ``scripts/install_browser.sh``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("STYLE_GUIDANCE_CHROMIUM", "/usr/bin/chromium"))

# The machine's network may be closed: without these, Chromium keeps retrying Google services.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--metrics-recording-only",
    "--password-store=basic",
]


def missing_reason() -> str | None:
    """Why the browser test cannot run here, or None when Chromium and Playwright are installed."""
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (Debian package 'chromium'; or set STYLE_GUIDANCE_CHROMIUM)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the 'playwright' Python package")
    if not missing:
        return None
    return "browser test needs " + " and ".join(missing) + ": run scripts/install_browser.sh"
