"""The HTML report in a real browser (headless Chromium): every image loads, and at a phone's width
nothing overflows the page (wide tables scroll inside their own box, images shrink).

Needs Debian's `chromium` (`apt-get install chromium`; `.ci/run` installs it); skipped without.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from edgeprune.recipe import load_recipe, run_recipe, write_report

from .conftest import FAST, QUICKSTART

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: the report's browser check needs Debian's "
                             "chromium package (apt-get install chromium)")

# Appended to a copy of the report: after load, records what the browser laid out in <pre>.
CHECK = """<script>
window.addEventListener('load', function () {
  var width = window.innerWidth;
  var out = {width: width, scrollWidth: document.documentElement.scrollWidth,
    images: Array.from(document.images).map(function (i) {
      return {alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
              right: i.getBoundingClientRect().right}; }),
    overflowing: Array.from(document.body.querySelectorAll('*')).filter(function (e) {
      return e.getBoundingClientRect().right > width + 1 && !e.closest('.scroll');
    }).map(function (e) { return e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''); })};
  var pre = document.createElement('pre');
  pre.id = 'layout-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def layout(page, tmp_path, width):
    """What Chromium lays out for the HTML file `page` in a window `width` pixels wide."""
    checked = tmp_path / f"checked-{width}.html"
    checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    profile = tmp_path / f"chromium-profile-{width}"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--window-size={width},900",
         "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', result.stdout, re.S)
    assert found, f"chromium printed no layout (status {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A real quickstart run's report, and a report comparing it with a second run."""
    folder = tmp_path_factory.mktemp("browser")
    run = folder / "run"
    run_recipe(load_recipe(QUICKSTART, FAST), run)
    other = folder / "other"
    shutil.copytree(run, other)
    write_report([run, other], folder / "compare")
    return run / "report" / "report.html", folder / "compare" / "report.html"


@pytest.mark.parametrize("which", ["one run", "two runs compared"])
@pytest.mark.parametrize("width", [500, 1280])
def test_every_image_loads_and_nothing_overflows(reports, tmp_path, which, width):
    page = reports[0] if which == "one run" else reports[1]
    seen = layout(page, tmp_path, width)
    assert len(seen["images"]) >= 2
    assert [image["alt"] for image in seen["images"] if not image["loaded"]] == []
    assert all(image["right"] <= seen["width"] for image in seen["images"]), seen["images"]
    assert seen["overflowing"] == [] and seen["scrollWidth"] <= seen["width"], seen
    if which == "two runs compared":
        assert "Runs compared" in page.read_text()


def test_the_check_sees_an_overflow(reports, tmp_path):
    """The same check on a page with a 2000 px wide block reports it (the check can fail)."""
    page = tmp_path / "wide.html"
    page.write_text(reports[0].read_text().replace(
        "</h1>", "</h1><div class='wide' style='width:2000px'>wide</div>", 1))
    seen = layout(page, tmp_path, 500)
    assert "div.wide" in seen["overflowing"] and seen["scrollWidth"] > seen["width"]


def test_a_broken_image_is_reported(reports, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(re.sub(r'src="data:image/png;base64,[^"]{20}', 'src="data:image/png;base64,AAAA',
                           reports[0].read_text(), count=1))
    seen = layout(page, tmp_path, 1280)
    assert [image["loaded"] for image in seen["images"]].count(False) == 1
    assert os.path.getsize(reports[0]) > 10_000
