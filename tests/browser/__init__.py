"""Helpers for the real-browser test (tests/test_browser.py): Chromium, the editor page, workflows."""
