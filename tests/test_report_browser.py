"""The report as a reviewer sees it: rendered by headless Chromium, offline, from the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.spec.phase_order import PHASES

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

    from tests.conftest import MiniProject

CHROMIUM = Path("/usr/bin/chromium")
torch = pytest.importorskip("torch")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"{CHROMIUM} is not installed (apt-get install chromium, or make browser)",
    ),
]

# Flags that keep the browser itself quiet: no updates, sync or other background traffic.
QUIET = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Every URL the page loaded or points a resource element at; anchors are navigation, not loads.
RESOURCE_URLS = """() => {
    const sources = ['script', 'img', 'iframe', 'source', 'video', 'audio', 'embed']
        .map((tag) => `${tag}[src]`).join(', ');
    const attribute = (selector, name) =>
        [...document.querySelectorAll(selector)].map((element) => element.getAttribute(name));
    return [
        ...performance.getEntriesByType('resource').map((entry) => entry.name),
        ...attribute(sources, 'src'),
        ...attribute('link[href]', 'href'),
        ...attribute('object[data]', 'data'),
    ];
}"""

PAGE_FACTS = """() => {
    const environment = Object.fromEntries([...document.querySelectorAll('#environment tr')]
        .map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent.trim())));
    const bodies = [...document.querySelectorAll('#results-table tbody.results-table-row')];
    const rows = bodies.map((body) => ({
        test: body.querySelector('.col-testId')?.textContent ?? '',
        result: body.querySelector('.col-result')?.textContent ?? '',
        phase: body.querySelector('.col-phase-outcome')?.textContent ?? '',
        images: [...body.querySelectorAll('.media img')]
            .filter((image) => image.getAttribute('src')?.startsWith('data:image/png;base64,'))
            .map((image) => ({complete: image.complete, width: image.naturalWidth})),
        predictions: body.querySelectorAll('table.predictions tr').length,
    }));
    const verdict = [...document.querySelectorAll('.tunix-verdict')].map((section) => ({
        heading: section.querySelector('h2')?.textContent ?? '',
        top: section.getBoundingClientRect().top,
        plots: [...section.querySelectorAll('img')]
            .map((image) => ({complete: image.complete, width: image.naturalWidth})),
    }));
    const table = document.querySelector('#results-table').getBoundingClientRect().top;
    return {environment, rows, verdict, table};
}"""


def render(report: Path) -> tuple[dict[str, Any], list[str], list[str]]:
    """The page's facts, the resource URLs it names, and every non-file request it tried."""
    attempted: list[str] = []

    def only_files(route: Route) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=QUIET)
        try:
            page: Page = browser.new_page()
            page.route("**/*", only_files)
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("() => [...document.images].every((image) => image.complete)")
            return page.evaluate(PAGE_FACTS), page.evaluate(RESOURCE_URLS), attempted
        finally:
            browser.close()


def test_the_report_renders_offline_with_environment_phases_plot_and_predictions(
    mini: MiniProject,
) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    report = mini.bundle("mini_v1") / "report.html"
    facts, urls, attempted = render(report)

    assert attempted == [], f"the report tried to fetch {attempted}"
    remote = [url for url in urls if url and url.startswith(("http://", "https://", "//"))]
    assert remote == [], f"the report names remote resources {remote}"

    environment = facts["environment"]
    assert environment["commit"] == mini.git("rev-parse", "HEAD").strip()
    assert environment["torch"] == torch.__version__

    rows = {row["test"].split("::")[1].split("[")[0]: row for row in facts["rows"]}
    assert list(rows) == [f"test_{phase.replace('-', '_')}" for phase in PHASES]
    for row in rows.values():
        assert row["result"] == "Passed" and row["phase"] == "passed", row

    # The verdict and its plots come first, above the table of phases, shown without a click.
    [verdict] = facts["verdict"]
    assert verdict["heading"] == "mini mini_v1: passed" and verdict["top"] < facts["table"]
    assert len(verdict["plots"]) == 3  # the loss curve, accuracy per category, resources
    assert all(image["complete"] and image["width"] > 0 for image in verdict["plots"])

    plots = rows["test_train"]["images"]
    assert plots and all(image["complete"] and image["width"] > 0 for image in plots), plots
    assert rows["test_evaluate"]["predictions"] == 1 + 5
