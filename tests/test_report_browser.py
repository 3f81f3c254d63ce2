"""The HTML report in a real browser (Debian's chromium, headless; `scripts/setup.sh
--browser` installs it): it loads without a console error, every section is there, the
drawing holds every node and VIP, and a screenshot of the whole page has a sensible size.
This one opens a fixture report; tests/test_chaos_lab.py opens the report of a real run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hastack.model import Cloud, load_cloud
from hastack.report.availability import load_rates
from hastack.report.html import SECTIONS, gather, write_report
from hastack.report.results import load_results
from tests.browser import Browser, chromium, png_size
from tests.report_fixtures import DEMO_CLOUD, write_demo

pytestmark = pytest.mark.skipif(chromium() is None,
                                reason="chromium is not installed (scripts/setup.sh --browser)")

# What a reader sees, asked of the page itself.
LOOK = """(() => {
  const svg = document.querySelector('svg.architecture');
  const box = svg ? svg.getBoundingClientRect() : null;
  const texts = svg ? [...svg.querySelectorAll('text')].map(t => t.textContent) : [];
  return {
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    headings: [...document.querySelectorAll('section > h2')].map(h => h.textContent),
    nodes: svg ? [...svg.querySelectorAll('g.node')].map(g => g.dataset.node) : [],
    vips: svg ? [...svg.querySelectorAll('g.vip')].map(g => g.dataset.vip) : [],
    texts: texts,
    drawing: box ? [box.width, box.height] : null,
    timelines: [...document.querySelectorAll('svg.timeline')].map(svg => {
      const b = svg.getBoundingClientRect();
      return [b.width, b.height, svg.querySelectorAll('g.lane').length];
    }),
    images: [...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.complete]),
    matrixRows: document.querySelectorAll('table.matrix tbody.scenario').length,
    services: [...document.querySelectorAll('table.services tr td:first-child')]
      .map(td => td.textContent),
  };
})()"""


def look_at(report: Path, screenshot: Path | None = None) -> tuple[dict[str, Any], list[str],
                                                                   tuple[int, int], int]:
    with Browser() as browser:
        page = browser.open(report)
        seen = page.evaluate(LOOK)
        shot = page.screenshot()
        problems = page.problems
    if screenshot is not None:
        screenshot.write_bytes(shot)
    return seen, problems, png_size(shot), len(shot)


def assert_report_reads_well(report: Path, cloud: Cloud, scenarios: int) -> None:
    seen, problems, (width, height), size = look_at(report, report.with_suffix(".png"))
    assert problems == []
    assert seen["sections"] == [sid for sid, _ in SECTIONS]
    assert all(h.strip() for h in seen["headings"])
    assert sorted(seen["nodes"]) == sorted(n.name for n in cloud.nodes)
    assert sorted(seen["vips"]) == sorted(name for name, _ in cloud.vips.items())
    for name, address in cloud.vips.items():
        assert f"VIP {name} {address}" in seen["texts"]
    assert seen["drawing"][0] > 600 and seen["drawing"][1] > 300, seen["drawing"]
    # A timeline per scenario, drawn and wide enough to read, with its lanes.
    assert len(seen["timelines"]) == scenarios and not seen["images"]
    assert all(w > 800 and h > 150 and lanes >= 4 for w, h, lanes in seen["timelines"]), \
        seen["timelines"]
    assert seen["matrixRows"] == scenarios
    assert seen["services"] == list(cloud.services)
    # The whole page: the window's width, taller than a screen, and not a blank image.
    assert 1200 <= width <= 1400 and 2000 < height <= 12000, (width, height)
    assert size > 100_000


def test_fixture_report_in_chromium(tmp_path: Path) -> None:
    directory = write_demo(tmp_path / "demo")
    report = write_report(gather(load_results(directory), load_rates()),
                          directory / "report.html")
    assert_report_reads_well(report, load_cloud(DEMO_CLOUD), scenarios=2)
