"""The app in a real browser (headless Debian Chromium via Playwright)."""

from .browser import visit


def test_feature_page_in_chromium(served, tmp_path):
    seen = visit(served[0], tmp_path)
    assert seen["tokens"] > 10 and seen["highlighted"] >= 1 and seen["bold"] >= 1
    assert float(seen["hover"]) >= 0  # hovering a token shows its activation
    assert seen["histogram_bars"] >= 1 and "density" in seen["histogram_title"]
    assert seen["scripts_in_page"] == 0
    assert seen["circuit_traces"] > 1 and seen["change_bars"] >= 1
    assert (tmp_path / "app-features.png").stat().st_size > 10_000
    assert (tmp_path / "app-circuits.png").stat().st_size > 10_000
    # the Diffusion tab: a curve per strategy in each of its 8 panels, and the first trajectory's table
    assert seen["order_traces"] == 4 * 8 and seen["trajectory_cells"] == 5 * 4
    assert (tmp_path / "app-diffusion.png").stat().st_size > 10_000
