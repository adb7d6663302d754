"""Opening the report site in a real headless browser: Debian's chromium, driven by Playwright
(its own browser downloads are not used: the system browser is named explicitly).

:func:`visit` opens every page of a site from disk and reports what a person would meet:
console errors and failed loads, links that lead nowhere (files and #anchors), the page's size
and how long it took to load, its inline SVG pictures and the controls it shows. Screenshots go
to ``BAKEHOUSE_TEST_ARTIFACTS`` (default: build/test-artifacts) for CI to keep.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT

LINKS_JS = """() => Array.from(document.querySelectorAll('a[href]')).map(a =>
    new URL(a.getAttribute('href'), document.baseURI).href)"""
LOAD_MS_JS = """() => { const n = performance.getEntriesByType('navigation')[0];
    return n.loadEventEnd - n.startTime; }"""


@dataclass
class Page:
    path: Path
    size: int
    load_ms: float
    errors: list[str] = field(default_factory=list)  # console errors, page errors, failed loads
    broken: list[str] = field(default_factory=list)  # links to no file, or to no such anchor
    svgs: int = 0
    controls: list[str] = field(default_factory=list)  # data-control of every control row
    text: str = ""  # what a person reads (innerText)
    rows: list[list[str]] = field(default_factory=list)  # every table body row, cell by cell
    printed_nav: bool | None = None  # whether the navigation shows when printed (if checked)


def artifacts() -> Path:
    folder = Path(os.environ.get("BAKEHOUSE_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise AssertionError(
            "Debian's chromium is not installed: `./run test` installs it (apt install chromium)"
        )
    return found


def _target(url: str) -> tuple[Path, str]:
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.parse.unquote(parsed.path)), urllib.parse.unquote(parsed.fragment)


def visit(site: Path, screenshots: dict[str, str] | None = None) -> dict[str, Page]:
    """Every .html page under ``site``, by path relative to it. ``screenshots``: {page's
    relative path: file name} to capture (full page) into :func:`artifacts`, with the page
    printed to PDF beside it (print stylesheet) and whether its navigation shows in print."""
    from playwright.sync_api import sync_playwright

    pages: dict[str, Page] = {}
    links: dict[str, list[str]] = {}
    anchors: dict[Path, set[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}"))
            for path in sorted(site.rglob("*.html")):
                rel = str(path.relative_to(site))
                errors.clear()
                tab.goto(path.resolve().as_uri(), wait_until="load")
                page = Page(path, path.stat().st_size, float(tab.evaluate(LOAD_MS_JS)))
                page.svgs = tab.locator("svg").count()
                page.controls = tab.eval_on_selector_all(
                    "tr[data-control]", "rows => rows.map(r => r.dataset.control)"
                )
                page.text = tab.inner_text("body")
                page.rows = tab.eval_on_selector_all(
                    "tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))"
                )
                anchors[path.resolve()] = set(
                    tab.eval_on_selector_all("[id]", "nodes => nodes.map(n => n.id)")
                )
                links[rel] = list(tab.evaluate(LINKS_JS))
                if screenshots and rel in screenshots:
                    shot = artifacts() / screenshots[rel]
                    tab.screenshot(path=str(shot), full_page=True)
                    tab.emulate_media(media="print")
                    page.printed_nav = tab.is_visible("nav")
                    tab.pdf(path=str(shot.with_suffix(".pdf")))
                    tab.emulate_media(media="screen")
                page.errors = list(errors)
                pages[rel] = page
        finally:
            browser.close()
    for rel, urls in links.items():
        for url in urls:
            if not url.startswith("file:"):
                pages[rel].broken.append(f"{url} (leaves the site)")
                continue
            dest, fragment = _target(url)
            if not dest.is_file():
                pages[rel].broken.append(url)
            elif fragment and dest.suffix == ".html" and fragment not in anchors.get(dest, set()):
                pages[rel].broken.append(f"{url} (no such anchor)")
    return pages
