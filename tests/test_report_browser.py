"""The report page in a real browser: Debian's headless chromium, kept off the network, loads index.html from disk.

Needs ``chromium`` and ``chromium-driver`` (Debian packages; ``.ci/run`` installs them when missing)
and selenium (the test extra). Skipped only when the browser cannot be found, i.e. where it could
not be installed.
"""

import io
import shutil

import pytest

from raysweep.cli import main

from tests.test_report import EXPERIMENT, SWEEP, store  # noqa: F401  (the fabricated MLflow store fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no chromium/chromedriver: apt-get install -y chromium chromium-driver (.ci/run does)")

# Off the network: every request goes to a proxy that is not there, host names resolve to nothing,
# and Chromium's own background traffic (updates, sync, metrics, field trials) is off.
OFFLINE_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2000",
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--no-first-run", "--no-default-browser-check", "--metrics-recording-only", "--disable-features=OptimizationHints,MediaRouter",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in OFFLINE_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))  # given paths: no Selenium Manager
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(store, tmp_path_factory):  # noqa: F811
    uri, _ = store
    out = tmp_path_factory.mktemp("browser") / "report"
    assert main(["report", "--experiment", EXPERIMENT, "--sweep", SWEEP, "--out", str(out), "--tracking-uri", uri,
                 "--mlflow-ui", "http://127.0.0.1:5000"]) == 0  # fmt: skip
    return out / "index.html"


def test_page_renders_from_disk_offline(browser, page, tmp_path):
    browser.get(page.resolve().as_uri())
    assert browser.title == f"Sweep {SWEEP}"
    tables = browser.execute_script("return Array.from(document.querySelectorAll('table[data-table]')).map(t => [t.dataset.table, t.rows.length])")
    found = dict(tables)
    for slug in ("models", "per_area", "trials", "seeds"):
        assert found.get(slug, 0) > 1, (slug, found)  # a header row and at least one row
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.getAttribute('src').slice(0, 22)])"
    )
    assert len(images) >= 3
    for complete, width, height, src in images:
        assert complete and width > 0 and height > 0 and src == "data:image/png;base64,"
    external = browser.execute_script(
        "return Array.from(document.querySelectorAll('[src],link[href],iframe,object,embed'))"
        ".map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !u.startsWith('data:'))"
    )
    assert external == []
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith(("data:", "file:")) for u in fetched), fetched

    from PIL import Image, ImageStat

    png = browser.get_screenshot_as_png()
    (tmp_path / "screenshot.png").write_bytes(png)
    shot = Image.open(io.BytesIO(png)).convert("L")
    assert shot.size[0] >= 800
    # not blank: a white page has one grey level and no spread; text, tables and figures give many
    assert len(shot.getcolors(256) or []) > 20 and ImageStat.Stat(shot).stddev[0] > 10
