"""`hastack report` on results directories as chaos and demo write them (synthetic runs): the
HTML's structure, its self-containment, byte-identical re-runs; `hastack availability`'s
output; the demo's closing summary in 80 columns."""

from __future__ import annotations

import io
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from hastack.cli import cli
from hastack.errors import ReportError
from hastack.model import load_cloud
from hastack.report.availability import load_rates
from hastack.report.html import SECTIONS, gather, render_report, sections_present
from hastack.report.results import load_results
from hastack.report.tables import demo_summary
from tests.conftest import example_plan
from tests.report_fixtures import DEMO_CLOUD, EXAMPLES, write_demo, write_repeat

SVG_NS = "{http://www.w3.org/2000/svg}"


def report_of(directory: Path) -> str:
    return render_report(gather(load_results(directory), load_rates()))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory.mktemp("results") / "20260101-120000-demo")


@pytest.fixture(scope="module")
def demo_html(demo_dir: Path) -> str:
    return report_of(demo_dir)


def architecture(html: str) -> ET.Element:
    svg = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="architecture".*?</svg>',
                    html, re.S)
    assert svg, "no architecture drawing"
    return ET.fromstring(svg.group(0))


def test_every_section_in_order(demo_html: str) -> None:
    assert sections_present(demo_html) == [sid for sid, _ in SECTIONS]
    positions = [demo_html.index(f'<section id="{sid}"') for sid, _ in SECTIONS]
    assert positions == sorted(positions)
    assert "<title>hastack report — demo: 20260101-120000-demo</title>" in demo_html


def test_drawing_has_every_node_vip_and_process(demo_html: str) -> None:
    root = architecture(demo_html)
    groups = list(root.iter(f"{SVG_NS}g"))
    nodes = {g.get("data-node") for g in groups if g.get("class") == "node"}
    vips = {g.get("data-vip") for g in groups if g.get("class") == "vip"}
    assert nodes == {"ctl1", "ctl2", "ctl3", "cmp1"} and vips == {"internal", "public"}
    text = " ".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))
    assert "VIP internal 198.18.0.100" in text and "VIP public 198.18.0.101" in text
    # The synthetic run starts with ctl1 holding the VIPs: the drawing says so.
    assert "held by ctl1" in text
    chips = [g for g in groups if g.get("class") == "process"]
    plan = example_plan("demo")
    assert len(chips) == sum(len(plan.nodes_of(n.name)) for n in plan.cloud.nodes)
    keepalived = [g for g in chips if g.findtext(f"{SVG_NS}text", "").startswith("keepalived")]
    assert {g.get("data-mode") for g in keepalived} == {"A/P"}
    assert {g.get("data-strategy") for g in chips} >= {"haproxy-vip", "app-cluster", "rpc"}


def test_drawing_of_split_roles_groups_nodes_by_role(tmp_path: Path) -> None:
    directory = write_demo(tmp_path / "split", ("vip-holder-crash",),
                           cloud_file=EXAMPLES / "split-roles.yaml", plot=False)
    html = report_of(directory)
    root = architecture(html)
    groups = [t.text or "" for t in root.iter(f"{SVG_NS}text") if t.get("class") == "group"]
    assert groups[:3] == ["loadbalancer (2 nodes)", "controller (3 nodes)",
                          "database (3 nodes)"]
    nodes = {g.get("data-node") for g in root.iter(f"{SVG_NS}g") if g.get("class") == "node"}
    assert nodes == {n.name for n in load_cloud(EXAMPLES / "split-roles.yaml").nodes}
    # The synthetic timeline names the demo's ctl1, which this cloud does not have.
    text = " ".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))
    assert "holder not observed" in text and "ctl1" not in text


def test_findings_budget_matrix_timelines_and_availability(demo_html: str) -> None:
    findings = demo_html.split('<section id="findings">')[1].split("</section>")[0]
    assert "vrrp-split-brain" in findings
    assert "RDO keepalived HA architecture (Architecture limitations" in findings
    budget = demo_html.split('<section id="budget">')[1].split("</section>")[0]
    for needle in ("keepalived VRRP", "advert_int 0.2", "advert_int 1.0", "Kolla-Ansible",
                   "inter 2000ms fall 5 rise 2", "did not run here"):
        assert needle in budget, needle
    matrix = demo_html.split('<section id="faults">')[1].split("</section>")[0]
    assert matrix.count('<tbody class="scenario">') == 2
    for needle in ("vip-holder-crash", "galera-writer-crash", "standin-api", "0 / 1 / 1",
                   "PASS"):
        assert needle in matrix, needle
    timelines = demo_html.split('<section id="timelines">')[1].split("</section>")[0]
    assert timelines.count('class="timeline" role="img"') == 2
    assert "kill ctl1 at +0.00 s, undone at +15.00 s" in timelines
    availability = demo_html.split('<section id="availability">')[1].split("</section>")[0]
    for service in load_cloud(DEMO_CLOUD).services:
        assert f"<tr><td>{service}</td>" in availability, service
    assert "unknown" in availability
    assert re.search(r"<b>Not measured</b>.*rabbit-node-crash", availability, re.S)
    assert "J. Dean" in availability and "no more than 5 minutes" in availability


def test_self_contained_no_script_no_network(demo_html: str) -> None:
    assert "<script" not in demo_html and "<link" not in demo_html
    references = re.findall(r'(?:src|href)="([^"]*)"', demo_html)
    assert references and all(r.startswith(("#", "data:")) for r in references), \
        [r for r in references if not r.startswith(("#", "data:"))]
    assert "@media print" in demo_html
    ids = re.findall(r'id="([^"]+)"', demo_html)
    assert len(ids) == len(set(ids))
    for anchor in re.findall(r'href="#([^"]+)"', demo_html):
        assert anchor in ids, anchor


def test_same_results_same_bytes_wherever_they_are(demo_dir: Path, demo_html: str,
                                                   tmp_path: Path) -> None:
    assert report_of(demo_dir) == demo_html
    moved = tmp_path / "elsewhere" / demo_dir.name
    shutil.copytree(demo_dir, moved)
    assert report_of(moved) == demo_html


def test_repeats_show_median_min_max(tmp_path: Path) -> None:
    directory = write_repeat(tmp_path / "repeat", runs=3)
    results = load_results(directory)
    assert results.kind == "repeat" and results.scenarios[0].runs == 3
    html = report_of(directory)
    matrix = html.split('<section id="faults">')[1].split("</section>")[0]
    assert "3 runs" in matrix
    assert re.search(r"\d+\.\d\d s \(\d+\.\d\d–\d+\.\d\d\)", matrix), matrix
    assert "(run 1 of 3)" in html


def test_results_without_a_cloud_copy_ask_for_one(tmp_path: Path) -> None:
    directory = write_demo(tmp_path / "old", plot=False)
    (directory / "cloud.yaml").unlink()
    with pytest.raises(ReportError, match="pass --cloud FILE"):
        gather(load_results(directory), load_rates())
    assert "ctl1" in render_report(gather(load_results(directory, DEMO_CLOUD), load_rates()))
    with pytest.raises(ReportError, match="is this what `hastack chaos`"):
        load_results(tmp_path)


def test_cli_report_and_availability(demo_dir: Path, demo_html: str, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.html"
    result = runner.invoke(cli, ["report", str(demo_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == demo_html and str(out) in result.output
    result = runner.invoke(cli, ["availability", str(DEMO_CLOUD), "--results", str(demo_dir),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    keystone = next(s for s in data["services"] if s["service"] == "keystone")
    assert keystone["downtime_per_year_s"] is None and keystone["known_downtime_per_year_s"] > 0
    assert "rabbit-node-crash" in keystone["unknown"]
    rates = tmp_path / "rates.yaml"
    rates.write_text("components:\n  node-crsh: {rate_per_year: 1}\n")
    result = runner.invoke(cli, ["availability", str(DEMO_CLOUD), "--results", str(demo_dir),
                                 "--rates", str(rates)])
    assert result.exit_code == 2
    assert f"{rates}:2: components.node-crsh: unknown component" in result.output


def test_availability_text_fits_80_columns(demo_dir: Path) -> None:
    from hastack.cli.report import availability_text

    report = gather(load_results(demo_dir), load_rates()).availability
    out = io.StringIO()
    Console(width=80, file=out).print(availability_text(report))
    lines = out.getvalue().splitlines()
    assert not [line for line in lines if len(line) > 80]
    text = "\n".join(lines)
    assert "…" not in text
    assert "unknown" in text and "≥ " in text and "not run" in text
    assert "galera-writer-crash" in text and "keystone" in text


def test_demo_summary_fits_80_columns_without_cutting_names(demo_dir: Path) -> None:
    from hastack.chaos.scenarios import demo_suite

    summaries = [dict(json.loads((demo_dir / "vip-holder-crash" / "summary.json").read_text()),
                      scenario=s.name) for s in demo_suite()]
    summaries[-1]["verdict"] = "fail"
    base = "/tmp/results/20260101-120000-demo"
    out = io.StringIO()
    Console(width=80, file=out).print(demo_summary(summaries, base, f"{base}/report.html",
                                                   412.0))
    lines = out.getvalue().splitlines()
    assert not [line for line in lines if len(line) > 80], lines
    text = "\n".join(lines)
    assert "…" not in text
    rows = {line.split()[0] for line in lines if line.strip()}
    for s in demo_suite():
        assert s.name in rows, s.name
    assert f"  {base}/report.html" in lines and f"  {base}" in lines
    assert f"{len(summaries) - 1} of {len(summaries)} scenarios passed in 412 s" in text


def test_bench_results_compare_the_profiles(tmp_path: Path) -> None:
    from tests.report_fixtures import write_bench

    directory = write_bench(tmp_path / "bench")
    results = load_results(directory)
    assert results.kind == "bench"
    assert [s.label for s in results.scenarios] == ["vip-holder-crash (budget)",
                                                    "vip-holder-crash (kolla-ansible)"]
    html = report_of(directory)
    budget = html.split('<section id="budget">')[1].split("</section>")[0]
    assert "Measured by the bench" in budget and "4.2×" in budget
    matrix = html.split('<section id="faults">')[1].split("</section>")[0]
    assert "vip-holder-crash (kolla-ansible)" in matrix and "2 runs" in matrix
    # Availability counts the cloud's own profile (budget) only.
    inputs = gather(results, load_rates())
    vip = next(f for f in inputs.availability.faults if f.scenario == "vip-holder-crash")
    budget_runs = [s.summary for s in results.scenarios if s.profile == "budget"]
    assert vip.measured == {w: v["downtime_s"]["median"]
                            for w, v in budget_runs[0]["workloads"].items()}


def test_a_scenario_that_never_ran_is_reported_as_such(tmp_path: Path) -> None:
    directory = write_demo(tmp_path / "demo", ("vip-holder-crash",), plot=False)
    suite = json.loads((directory / "suite.json").read_text())
    suite.append({"scenario": "rabbit-node-crash", "verdict": "fail", "workloads": {},
                  "reasons": ["the lab is not healthy, not starting rabbit-node-crash"]})
    (directory / "suite.json").write_text(json.dumps(suite))
    html = report_of(directory)
    matrix = html.split('<section id="faults">')[1].split("</section>")[0]
    assert "no workload measured" in matrix and "the lab is not healthy" in matrix
    assert "No timeline was saved" in html
    inputs = gather(load_results(directory), load_rates())
    rabbit = next(f for f in inputs.availability.faults if f.scenario == "rabbit-node-crash")
    assert rabbit.measured == {}
    assert all("rabbit-node-crash" in s.unknown for s in inputs.availability.services)


def test_timeline_lanes_from_the_saved_events(demo_html: str, tmp_path: Path) -> None:
    timelines = demo_html.split('<section id="timelines">')[1].split("</section>")[0]
    first = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="timeline".*?</svg>',
                      timelines, re.S)
    assert first
    root = ET.fromstring(first.group(0))
    lanes = [g.get("data-lane") for g in root.iter(f"{SVG_NS}g") if g.get("class") == "lane"]
    assert lanes == ["sql", "amqp", "api", "cache", "VIP internal", "VIP public"]
    titles = [t.text or "" for t in root.iter(f"{SVG_NS}title")]
    # The synthetic SQL lane: a commit in flight at the kill ends indeterminate, then writes
    # are refused until +3.5 s; the fault window is the kill of ctl1, undone at +15 s; two
    # nodes held the VIP for a moment.
    assert any(re.fullmatch(r"sql: \d+ fail requests, \+[23]\.\d\d s … \+3\.5\d s — "
                            r"connect refused ×\d+", t) for t in titles), titles
    assert any(re.match(r"sql: 1 indeterminate request, [+-]0\.\d\d s … \+[12]\.\d\d s — "
                        r"commit: 2013 timed out", t) for t in titles), titles
    assert "kill ctl1 +0.00 s … undone +15.00 s" in titles
    assert any(t.startswith("VIP public: ctl1 + ctl2") for t in titles), titles
    # Without the JSONL, the report falls back on the saved timeline.png.
    directory = write_demo(tmp_path / "png", ("vip-holder-crash",))
    (directory / "vip-holder-crash" / "faults.jsonl").unlink()
    html = report_of(directory)
    assert html.count('src="data:image/png;base64,') == 1
    assert 'class="timeline" role="img"' not in html


def test_availability_figures_never_round_up_to_certainty() -> None:
    from hastack.report.availability import SECONDS_PER_YEAR
    from hastack.report.html import per_year, percent

    assert percent(1 - 1.5 / SECONDS_PER_YEAR) == "99.9999952 %"
    assert percent(0.999) == "99.900 %" and percent(1.0) == "100 %"
    assert percent(None) == "unknown" and per_year(None) == "unknown"
    assert (per_year(59.94), per_year(300), per_year(3 * 3600)) == ("59.9 s", "5.0 min",
                                                                    "3.0 h")


def test_a_service_whose_known_faults_cost_nothing_yet_is_plainly_unknown(tmp_path: Path
                                                                         ) -> None:
    directory = write_demo(tmp_path / "calm", ("vip-holder-crash",), plot=False)
    summary_file = directory / "vip-holder-crash" / "summary.json"
    summary = json.loads(summary_file.read_text())
    for w in summary["workloads"].values():
        w["downtime_s"] = 0.0
    summary_file.write_text(json.dumps(summary))
    html = report_of(directory)
    services = html.split('<table class="services">')[1].split("</table>")[0]
    row = services.split("<tr><td>keystone</td>")[1].split("</tr>")[0]
    assert "≤" not in row and "∞" not in row and row.count("unknown") >= 3, row


def test_demo_writes_its_report_or_says_why_not(demo_dir: Path, demo_html: str,
                                               tmp_path: Path) -> None:
    from hastack.cli.chaos import _html_report

    copy = tmp_path / demo_dir.name
    shutil.copytree(demo_dir, copy)
    path, why = _html_report(copy)
    assert path == str(copy / "report.html") and why == ""
    assert Path(path).read_text() == demo_html
    (copy / "cloud.yaml").unlink()
    path, why = _html_report(copy)
    assert path is None and "no cloud.yaml" in why


def test_the_drawing_groups_nodes_by_region_and_zone_when_the_cloud_declares_them() -> None:
    from hastack.model import load_cloud
    from hastack.plan import make_plan
    from hastack.report.drawing import host_groups

    examples = Path(__file__).resolve().parent.parent / "hastack" / "examples"
    groups = dict(host_groups(make_plan(load_cloud(examples / "regions.yaml"))))
    assert groups["phx / phx-az1 / controller"] == ["phx-ctl1"]
    assert groups["phx / phx-az2 / compute"] == ["phx-cmp2"]
    assert list(dict(host_groups(make_plan(load_cloud(examples / "demo.yaml"))))) == \
        ["controller", "compute"]
