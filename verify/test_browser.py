"""A reader's view: a built sample page in headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from kprobe_docs import results
from kprobe_docs.paths import project_root
from kprobe_docs.sphinxext import label

ROOT = project_root(Path(__file__).parent)
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
FLAGS += ["--disable-component-update", "--disable-sync"]
SAMPLE = "kprobe_example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html")
    argv = [sys.executable, "-m", "sphinx", "-E", "-q", "-b", "html", "-c", str(ROOT), str(ROOT / "docs"), str(out)]
    subprocess.run(argv, check=True, cwd=ROOT)
    return out


def test_sample_page_shows_code_copy_button_badges_and_captured_output(site: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: kprobe-docs setup installs it (as root)")
    newest = results.newest(ROOT / "results").records
    records = sorted((r for (s, _), r in newest.items() if s == SAMPLE), key=lambda r: r.target)
    if not records:
        pytest.skip(f"no verification result for {SAMPLE} yet: run its verify tests first")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((site / "examples" / f"{SAMPLE}.html").as_uri())
        code = page.locator(".kd-code").first
        assert code.is_visible()
        assert "register_kprobe(&kp)" in code.inner_text()
        code.hover()
        assert page.locator(".kd-code button.copybtn").first.is_visible()
        badges = page.locator(".kd-badges .kd-badge")
        assert badges.count() == len(records)
        for index, record in enumerate(records):
            assert badges.nth(index).is_visible()
            assert badges.nth(index).inner_text().split() == [record.target, label(record)]
        tabs = page.locator(".kd-captured-tabs label")
        for index, record in enumerate(records):
            tabs.nth(index).click()
            shown = page.locator(".kd-captured-tabs .sd-tab-content").nth(index)
            assert shown.is_visible()
            assert record.matched[0] in shown.inner_text()
        page.screenshot(path=str(ROOT / "build" / "browser-sample-page.png"), full_page=True)
        browser.close()
