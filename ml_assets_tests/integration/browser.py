"""Debian's Chromium driven by Playwright, as a person uses the Dagster UI (never a downloaded browser)."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def browser_page(width: int = 1600, height: int = 1000) -> Iterator:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def open_lineage(page, base_url: str) -> None:
    """The global asset graph."""
    page.goto(f"{base_url}/asset-groups")
    page.get_by_role("button", name="Materialize all").wait_for()


def click_materialize_all(page, base_url: str) -> str:
    """Materialize all → partitions "All" → Launch backfill; returns the backfill id the UI reports."""
    open_lineage(page, base_url)
    page.get_by_role("button", name="Materialize all").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="All", exact=True).click()
    dialog.get_by_text(re.compile(r"^\d+ partitions selected$")).wait_for()
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    toast.wait_for()
    return re.search(r"Created backfill (\w+)", toast.inner_text()).group(1)


def screenshot_expanded_graph(page, base_url: str, path: Path) -> None:
    open_lineage(page, base_url)
    page.keyboard.press("Alt+KeyE")  # "Expand all groups" in the graph's settings menu
    page.get_by_text("production_model").first.wait_for()
    page.wait_for_timeout(1500)  # let the layout settle and the status badges load
    page.screenshot(path=str(path))
