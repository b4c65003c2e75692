"""A reader's view: a built sample page in headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, sync_playwright

from kprobe_docs.paths import project_root
from kprobe_docs.render.sphinxext import SYMBOLS, kernel_of, label, matrix_targets
from kprobe_docs.store import results

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


def _records(sample: str) -> list[results.Record]:
    newest = results.newest(ROOT / "results").records
    return sorted((r for (s, _), r in newest.items() if s == sample), key=lambda r: r.target)


def _check_sample_block(block: Locator, records: list[results.Record], snippet: str) -> None:
    """Code with a copy button, one badge per target and each claimed target's captured output."""
    code = block.locator(".kd-code").first
    assert code.is_visible()
    assert snippet in code.inner_text()
    code.hover()
    assert block.locator(".kd-code button.copybtn").first.is_visible()
    badges = block.locator(".kd-badges .kd-badge")
    assert badges.count() == len(records)
    for index, record in enumerate(records):
        badge = badges.nth(index)
        assert badge.is_visible()
        assert badge.locator(".kd-badge-target").inner_text().strip() == record.target
        assert badge.locator(".kd-badge-verdict").inner_text().strip() == label(record)
    shown = [r for r in records if r.verdict != "not-claimed"]
    tabs = block.locator(".kd-captured-tabs label")
    for index, record in enumerate(shown):
        tabs.nth(index).click()
        content = block.locator(".kd-captured-tabs .sd-tab-content").nth(index)
        assert content.is_visible()
        assert record.matched[0] in content.inner_text()


def test_sample_page_shows_module_and_bcc_tabs_with_code_badges_and_output(site: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: kprobe-docs setup installs it (as root)")
    module, twin = _records(SAMPLE), _records(f"{SAMPLE}_bcc")
    if not module or not twin:
        pytest.skip(f"no verification result for {SAMPLE} and its bcc twin yet: run their verify tests first")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((site / "examples" / f"{SAMPLE}.html").as_uri())
        _check_sample_block(page.locator(".kd-sample.kd-kind-kmod").first, module, "register_kprobe(&kp)")
        bcc = page.locator(".kd-sample.kd-kind-bcc").first
        assert not bcc.is_visible()  # behind the "bcc" tab until the reader picks it
        page.locator("label", has_text="bcc").first.click()
        _check_sample_block(bcc, twin, "attach_kprobe(")
        page.screenshot(path=str(ROOT / "build" / "browser-sample-page.png"), full_page=True)
        browser.close()


def _not_claimed_somewhere() -> tuple[str, str] | None:
    """(page, sample) of the first sample some target of the newest results does not claim."""
    newest = results.newest(ROOT / "results").records
    for (sample, _), record in sorted(newest.items()):
        if record.verdict == "not-claimed" and record.page.startswith("docs/"):
            return record.page.removeprefix("docs/").removesuffix(".md"), sample
    return None


def test_badges_of_targets_a_sample_does_not_claim_say_so(site: Path) -> None:
    """Any mix of claimed and not-claimed targets: each badge names its target and its verdict."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: kprobe-docs setup installs it (as root)")
    found = _not_claimed_somewhere()
    if found is None:
        pytest.skip("the results hold no target that a sample does not claim: run the whole matrix first")
    page_name, sample = found
    records = _records(sample)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((site / f"{page_name}.html").as_uri())
        block = page.locator(f".kd-sample.kd-sample-{sample}")
        if not block.is_visible():  # a twin behind its tab
            page.locator("label", has_text="bcc").first.click()
        badges = block.locator(".kd-badges .kd-badge")
        assert badges.count() == len(records)
        verdicts = [badges.nth(i).locator(".kd-badge-verdict").inner_text().strip() for i in range(len(records))]
        assert verdicts == [label(r) for r in records]
        assert "not claimed" in verdicts
        browser.close()


def _violations(axe: Axe, page: Page) -> list[str]:
    """What axe-core finds against WCAG 2 A and AA on the page, a line per rule: rule, impact, first element."""
    found = axe.run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa"]}})
    return [f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:120]}" for v in found.response["violations"]]


def test_the_site_offline_fetches_nothing_passes_axe_and_its_search_works(site: Path) -> None:
    """Every page opened from disk: no request leaves file://, axe-core finds no WCAG 2 A/AA violation;
    then the search page finds an API by name."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: kprobe-docs setup installs it (as root)")
    outside: list[str] = []
    violations: dict[str, list[str]] = {}
    axe = Axe()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page()
        page.on(
            "request", lambda r: None if r.url.split(":", 1)[0] in ("file", "data", "blob") else outside.append(r.url)
        )
        for html in sorted(site.rglob("*.html")):
            page.goto(html.as_uri(), wait_until="load")
            if problems := _violations(axe, page):
                violations[html.relative_to(site).as_posix()] = problems
        assert outside == [], f"pages fetch from outside: {sorted(set(outside))[:10]}"
        assert violations == {}, f"accessibility (axe-core): {violations}"
        page.goto((site / "search.html").as_uri() + "?q=register_kretprobe")
        found = page.locator("#search-results ul.search li")
        found.first.wait_for(timeout=30_000)
        titles = [found.nth(i).inner_text() for i in range(found.count())]
        assert any("register_kretprobe" in title for title in titles), titles
        browser.close()


TIDY_FAULTS = ("Error:", "inserting implicit", "discarding unexpected", "missing </", "unexpected </", "nested")


def test_every_page_is_valid_html_to_tidy(site: Path) -> None:
    """HTML Tidy reads every page: no error, and no element it must close, open or drop to make sense of it."""
    if shutil.which("tidy") is None:
        pytest.skip("HTML Tidy is not installed: kprobe-docs setup installs it (as root)")
    faults: dict[str, list[str]] = {}
    for html in sorted(site.rglob("*.html")):
        done = subprocess.run(["tidy", "-q", "-e", str(html)], capture_output=True, text=True, check=False)
        found = [line for line in done.stderr.splitlines() if any(f in line for f in TIDY_FAULTS)]
        if done.returncode >= 2 or found:
            faults[html.relative_to(site).as_posix()] = found or done.stderr.splitlines()[:5]
    assert faults == {}, f"tidy: {faults}"


READABLE = """el => {
    const r = el.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    return r.width > 0 && x >= 0 && y >= 0 && x <= innerWidth && y <= innerHeight && hit !== null && el.contains(hit);
}"""


NEAREST = "el => el.scrollIntoView({block: 'nearest', inline: 'nearest'})"  # the least scrolling that shows it


def _readable(element: Locator) -> bool:
    """In the window, and the topmost thing at its centre (not under the sticky header row or sample column),
    within 3 s: the theme scrolls smoothly."""
    for _ in range(30):
        if element.evaluate(READABLE):
            return True
        element.page.wait_for_timeout(100)
    return False


def _shown_columns(page: Page) -> list[str]:
    """The targets whose matrix columns the filters leave shown, in order."""
    shown: list[str] = page.locator("table.kd-matrix thead th abbr").evaluate_all(
        "els => els.filter(e => e.offsetParent !== null).map(e => e.title)"
    )
    return shown


def _column_of(page: Page, target: str) -> int:
    """The index among the header cells of the column whose header names ``target``."""
    names: list[str] = page.locator("table.kd-matrix thead th abbr").evaluate_all("els => els.map(e => e.title)")
    return names.index(target) + 1  # the sample column comes first


def test_every_target_column_of_the_matrix_can_be_reached_and_read_at_1280x800(site: Path) -> None:
    """At 1280 x 800, each target's column scrolls into view with its header and a cell readable, the header
    row and sample column stay in view while the table scrolls, and the filters hide the other columns."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: kprobe-docs setup installs it (as root)")
    newest = results.newest(ROOT / "results")
    if len(newest.targets) < 2:
        pytest.skip("the results hold fewer than two targets: run the whole matrix first")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto((site / "matrix.html").as_uri())
        table = page.locator("table.kd-matrix")
        wrapper = page.locator(".table-wrapper.kd-matrix")
        wrapper.scroll_into_view_if_needed()  # the table's box in the window, then scrolled inside, as a reader does
        for target, facts in sorted(newest.targets.items()):
            index = _column_of(page, target)
            header = table.locator("thead th").nth(index)
            header.evaluate(NEAREST)
            assert header.is_visible() and _readable(header), target
            assert header.locator(".kd-col-kernel").inner_text().strip().endswith(str(facts.get("arch"))), target
            last = table.locator("tbody tr").last.locator("td").nth(index)
            last.evaluate(NEAREST)
            assert _readable(last), target
            assert _readable(header), f"{target}: the header row scrolled out of view"
            assert _readable(table.locator("tbody tr").last.locator("td").first), "the sample column scrolled away"
            words = last.locator(".kd-sr").inner_text().strip()
            assert last.locator(".kd-sym").inner_text().strip() == SYMBOLS[words], target
        page.screenshot(path=str(ROOT / "build" / "browser-matrix.png"))
        arches = sorted({str(f.get("arch")) for f in newest.targets.values()})
        page.get_by_label("Architecture").select_option(arches[-1])
        shown = _shown_columns(page)
        assert shown == [t for t in matrix_targets(newest) if newest.targets[t].get("arch") == arches[-1]]
        page.get_by_label("Architecture").select_option("")
        major, minor = kernel_of(newest.targets[shown[0]])
        page.get_by_label("Kernel").select_option(f"{major}-{minor}")
        shown = _shown_columns(page)
        assert shown == [t for t in matrix_targets(newest) if kernel_of(newest.targets[t]) == (major, minor)]
        browser.close()
