"""report.html in a real browser: every plot renders, no console error, no network request.

Needs Debian's Chromium (scripts/test installs it and sets MOOPT_REQUIRE_BROWSER=1, so that a
missing browser fails the suite there instead of skipping). A screenshot is kept in
test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import moopt

ARTIFACTS = Path(__file__).parents[3] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("MOOPT_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required here (MOOPT_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Chromium is not installed (scripts/test installs Debian's chromium)")
    return path


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    moopt.optimize(
        dataset="iris", families="logreg,knn,rf", trials=8, max_latency_ms=1.0, out=str(out)
    )
    return out


@pytest.mark.slow
def test_report_renders_offline_in_chromium(run_folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    report = run_folder / "report.html"
    expected_plots = report.read_text().count('class="plot"')
    assert expected_plots == 6  # 3 pairs, 3-D, hypervolume, parallel coordinates
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_function(
            f"document.querySelectorAll('.plot-container').length >= {expected_plots}",
            timeout=30_000,
        )
        rendered = page.evaluate(
            """() => Array.from(document.querySelectorAll('.plot')).map(section => {
                const c = section.querySelector('.plot-container');
                return c !== null && c.querySelector('svg.main-svg') !== null;
            })"""
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert rendered == [True] * expected_plots
    assert errors == []
    assert [u for u in requests if not u.startswith("file://")] == []


@pytest.mark.slow
def test_png_export_where_chromium_is_installed(run_folder: Path) -> None:
    _chromium()
    from moopt.cli import main

    assert main(["plot", "--out", str(run_folder), "--format", "png"]) == 0
    pngs = sorted((run_folder / "plots").glob("*.png"))
    assert len(pngs) == 6
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
