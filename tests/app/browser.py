"""Drive the app in headless Debian Chromium with Playwright (no browser download): open the feature page, the
circuit view and the decoding-order view, check what a person would see, save screenshots. Also a script for
the pictures in docs/app.md:

    python tests/app/browser.py runs/ docs/
"""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# as root, no sandbox; no background networking, which this offline machine refuses
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def visit(url: str, out: Path) -> dict:
    """Screenshots of three views (out/app-features.png, app-circuits.png, app-diffusion.png) and what they show."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium (.ci/run does)")
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url)
        page.wait_for_selector("#feature-page .tok", timeout=60_000)
        page.wait_for_selector("#feature-histogram .js-plotly-plot .bars path", state="attached", timeout=60_000)
        seen = {
            "tokens": page.locator("#feature-page .tok").count(),
            "highlighted": page.locator("#feature-page .tok:not([style*='rgba(255,140,0,0.00)'])").count(),
            "bold": page.locator("#feature-page .tok[style*='font-weight:700']").count(),
            "hover": page.locator("#feature-page .tok").first.get_attribute("title"),
            "histogram_bars": page.locator("#feature-histogram .bars path").count(),
            "histogram_title": page.locator("#feature-histogram .gtitle").text_content(),
            "scripts_in_page": page.locator("#feature-page script").count(),
        }
        page.screenshot(path=str(out / "app-features.png"), full_page=False)
        page.get_by_role("tab", name="Circuits").click()
        page.wait_for_selector("#circuit-graph .js-plotly-plot .scatterlayer .trace", state="attached", timeout=60_000)
        seen["circuit_traces"] = page.locator("#circuit-graph .scatterlayer .trace").count()
        page.get_by_role("button", name="compare", exact=True).click()
        page.wait_for_selector("#change-bars .js-plotly-plot .bars path", state="attached", timeout=60_000)
        seen["change_bars"] = page.locator("#change-bars .bars path").count()
        page.screenshot(path=str(out / "app-circuits.png"), full_page=True)
        page.get_by_role("tab", name="Diffusion").click()
        page.wait_for_selector("#order-curves .js-plotly-plot .scatterlayer .trace", state="attached", timeout=60_000)
        page.wait_for_selector("#order-trajectory td", timeout=60_000)
        seen["order_traces"] = page.locator("#order-curves .scatterlayer .trace").count()
        seen["trajectory_cells"] = page.locator("#order-trajectory td").count()
        page.screenshot(path=str(out / "app-diffusion.png"), full_page=True)
        browser.close()
    return seen


if __name__ == "__main__":
    from apps.app import launch

    app = launch(sys.argv[1], port=7870, block=False)
    print(visit("http://127.0.0.1:7870/", Path(sys.argv[2])))
    app.close()
