"""The overview in a real browser (issue #14 part 4): Debian's chromium, headless, driven by
Selenium through Debian's chromium-driver, against `mailbot web` serving the cases of an
end-to-end run (real IMAP and SMTP servers, `run --once`). Each page loads with the expected
cases and words and no console error, a `<script>` in a case title stays text, an
unauthenticated request is refused, and every page is photographed at a desktop's and a
phone's width into the test's folder (its path is printed: `pytest -s` shows it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import World, _env
from tests.e2e.test_agenda import at, ready_case

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "Sommer i Ærø 2027"
SIZES = {"desktop": (1366, 900), "laptop": (1280, 800), "telefon": (390, 844)}
# every table fits its box at every size: no sideways scrolling (a .scroll box wider inside
# than outside, or the page itself wider than the window)
OVERFLOWING = """return [document.documentElement, ...document.querySelectorAll('.scroll')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.closest('section')?.getAttribute('aria-labelledby') || e.tagName);"""
XSS_TITLE = "Booking <script>alert('xss')</script>"


def _browser(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Headless chromium with its console log kept; skipped without chromium, failed on CI
    (where .ci/run installs it). Selenium Manager is told to stay offline besides."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the browser tests need chromium and chromium-driver "
                        "(apt-get install chromium chromium-driver)")
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--lang=da"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver's path given: Selenium Manager has nothing to look up or download
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                            options=options)


@pytest.fixture
def overview(world: World) -> Iterator[str]:
    """`mailbot web` on a free port over a database with a queued case whose title holds
    `<script>` (its agenda sent) and an incomplete one; users added with
    `mailbot web add-user`. Yields the overview's address."""
    world.write_config(web={"listen": "127.0.0.1:0"})
    ready_case(world, at(11, 0), subject=f"Projektforslag: {XSS_TITLE}")
    world.deliver(world.brief(subject="Projektforslag: Chatbot på hjemmesiden",
                              attachments=("Teknisk beskrivelse.pdf",)))
    world.run_once(at(11, 30))
    world.run_once(at(12, 5))  # the deadline: the agenda of 8 March goes out
    for name, role in (("sekretær", "secretary"), ("rådet", "council")):
        added = subprocess.run(
            [sys.executable, "-m", "mailbot.cli", "--config", str(world.config_path), "web",
             "add-user", name, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n", capture_output=True, text=True, env=_env(None), timeout=60)
        assert added.returncode == 0, added.stderr
        assert PASSWORD not in added.stdout + added.stderr
    server = world.spawn("--now", "2027-03-01T12:10", "web")
    try:
        address = _address(server)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=20)


def _address(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    for _ in range(50):
        line = server.stdout.readline()
        found = re.search(r"the overview is at (http://\S+?)/ ", line)
        if found:
            return found[1]
        assert line, "mailbot web ended without serving"
    raise AssertionError("mailbot web never said where it serves")


def test_pages_in_a_real_browser(overview: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # no user: a page is refused (303 to the sign-in page), the sign-in page is there
    refused = httpx.get(f"{overview}/sager", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"] == "/login"
    assert httpx.get(f"{overview}/drift", follow_redirects=False).status_code == 303
    browser = _browser(monkeypatch)
    shots = tmp_path / "skærmbilleder"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    try:
        browser.get(f"{overview}/sager")
        assert browser.current_url.endswith("/login")
        _look(browser, "login", shots, "Log ind", "Brugernavn", "Adgangskode")
        _sign_in(browser, overview, "sekretær")
        sager = _look(browser, "sager", shots, "ITP-2027-0001", "ITP-2027-0002",
                      "Chatbot på hjemmesiden", "Næste skridt", "på dagsorden",
                      "mangler noget", "2027-03-08")
        assert XSS_TITLE in sager  # shown as text, not run
        assert "<script>alert" not in browser.page_source  # the DOM holds text only
        sag = _look(browser, "sag", shots, "Forløb", "Dokumenter", "Vurderinger",
                    "Sendte mails", "CET", "Teknisk beskrivelse.pdf", "godkendt", "sag oprettet",
                    path="/sager/ITP-2027-0001")
        assert XSS_TITLE in sag
        links = browser.find_elements("css selector", "a[href*='/dokumenter/']")
        assert links, "the secretary gets download links"
        download = httpx.get(links[0].get_attribute("href"),
                             cookies={c["name"]: c["value"] for c in browser.get_cookies()})
        assert download.status_code == 200
        assert download.headers["content-disposition"].startswith("attachment;")
        _look(browser, "moeder", shots, "De næste møder", "Næste dagsorden, som den vil blive",
              "Dagsordener, der er sendt", "ITP-2027-0001", path="/moeder")
        frame = browser.find_element("css selector", "iframe.agenda")
        browser.switch_to.frame(frame)
        assert "Dagsorden" in browser.find_element("tag name", "body").text
        browser.switch_to.default_content()
        _look(browser, "drift", shots, "Tilstand", "database", "Udbakke", "Karantæne",
              path="/drift")
        # the council reads cases but not Drift
        browser.delete_all_cookies()
        _sign_in(browser, overview, "rådet")
        _look(browser, "sager-raadet", shots, "ITP-2027-0001")
        browser.get(f"{overview}/drift")
        assert "Ingen adgang" in browser.find_element("tag name", "h1").text
    finally:
        browser.quit()
    assert len(list(shots.glob("*.png"))) == len(SIZES) * 6


def _sign_in(browser: Any, overview: str, name: str) -> None:
    browser.get(f"{overview}/login")
    browser.find_element("id", "navn").send_keys(name)
    browser.find_element("id", "adgangskode").send_keys(PASSWORD)
    browser.find_element("css selector", "form.login button").click()
    from selenium.webdriver.support.ui import WebDriverWait

    # the click returns before the POST's answer has loaded
    WebDriverWait(browser, 30).until(lambda b: not b.current_url.endswith("/login"),
                                     "the sign-in failed")


def _look(browser: Any, name: str, shots: Path, *texts: str, path: str = "") -> str:
    """Open `path` (or stay), check its texts and that the console is clean, and save a
    full-height screenshot at each of SIZES, where no table may scroll sideways. Returns
    the page's visible text."""
    if path:
        base = browser.current_url.split("/", 3)
        browser.get(f"{base[0]}//{base[2]}{path}")
    text: str = browser.find_element("tag name", "body").text
    for expected in texts:
        assert expected in text, f"{name}: {expected!r} is not on the page"
    assert browser.find_element("tag name", "html").get_attribute("lang") == "da"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"{name}: console errors {errors}"
    for device, (width, height) in SIZES.items():
        browser.set_window_size(width, height)
        full = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, min(max(int(full), height), 8000))
        browser.save_screenshot(str(shots / f"{name}-{device}.png"))
        wide = browser.execute_script(OVERFLOWING)
        assert not wide, f"{name} at {width} px scrolls sideways: {wide}"
    browser.set_window_size(*SIZES["desktop"])
    return text
