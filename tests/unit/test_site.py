"""The report site's guards, each on its own: evidence that cannot be read is never shown as
passed, a role's own benchmark is not counted in the OS benchmark's sections, a report that
does not parse is named, and --out never replaces a folder that is not a site."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bakehouse.project import Project
from bakehouse.site import (
    Image,
    Site,
    Version,
    build,
    control_groups,
    read_runs,
    svg,
    timings,
    write,
)
from bakehouse.spec import Catalog
from bakehouse.targets import get
from tests.conftest import ROOT, TODAY
from tests.recorded import record_version

V1, V2 = "20261101.000000", "20261102.000000"
BIN = Path(ROOT / ".venv" / "bin")


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    return get("local", Project(ROOT))


def web():  # type: ignore[no-untyped-def]
    return Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)


def test_evidence_that_does_not_match_its_record_is_shown_as_missing(local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = web()
    record_version(local, spec, V1, tmp_path, evidence="web-debian-13")
    record_version(local, spec, V2, tmp_path, evidence="web-debian-13")
    report = local.catalogue.image_dir("web", V2) / "report.json"
    data = json.loads(report.read_text())
    data["verify"]["controls"] = [dict(c, outcome="passed") for c in data["verify"]["controls"]]
    report.write_text(json.dumps(data))  # changed after the record named its sha256
    out = tmp_path / "site"
    build(Project(ROOT), [local], out, [], images=["web"], pending=False)
    page = (out / "local" / "web" / V2 / "index.html").read_text()
    assert "Evidence missing: the bake report is unreadable" in page
    assert "does not match the sha256" in page
    assert "data-control=" not in page  # no control is shown, least of all as passed
    intact = (out / "local" / "web" / V1 / "index.html").read_text()
    assert "Evidence missing" not in intact and intact.count("data-control=") == 306


def test_a_role_benchmark_is_not_a_section_of_the_os_benchmark() -> None:
    controls = [
        {"id": "a", "title": "t", "reference": "dev-sec; CIS Debian 12 5.1.1, 5.1.2",
         "outcome": "passed", "message": ""},
        {"id": "b", "title": "t", "reference": "bakehouse role: web; CIS nginx 2.1.1",
         "outcome": "failed", "message": "no"},
        {"id": "c", "title": "t", "reference": "CIS Ubuntu 24.04 1.5.5",
         "outcome": "skipped", "message": ""},
        {"id": "d", "title": "t", "reference": "dev-sec linux-baseline",
         "outcome": "odd", "message": ""},
        {"id": "e", "title": "t", "reference": "role: db; CIS PostgreSQL 16 3.1.2",
         "outcome": "passed", "message": ""},
    ]  # fmt: skip
    report = {"verify": {"controls": controls, "compliance": {"benchmark": "CIS X"}}}
    version = Version("local", "web", {"version": V1}, report)
    groups = control_groups(version)
    assert [(g["title"].split(":")[0], [c["id"] for c in g["controls"]]) for g in groups] == [
        ("CIS X section 1", ["c"]),
        ("CIS X section 5", ["a"]),
        ("Beyond the OS benchmark", ["b", "d", "e"]),
    ]
    beyond = groups[2]["controls"]
    assert [(c["status"], c["outcome"]) for c in beyond] == [
        ("FAILED", "failed"),
        ("unknown (odd)", "failed"),  # an outcome the site does not know is never a pass
        ("passed", "passed"),
    ]
    assert groups[0]["counts"] == {"not applicable": 1}


def test_a_report_that_does_not_parse_is_named(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "deploy.json").write_text(
        json.dumps(
            {
                "kind": "deploy",
                "target": "aws",
                "at": "2026-11-01T00:00:00+00:00",
                "image": "web",
                "channel": "stable",
                "steps": [{"step": "decide", "ok": True}],
            }
        )
    )
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "nightly.json").write_text("[]")  # the shape before reports named kind
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "nightly.json").write_text("{")
    runs, problems = read_runs([tmp_path, tmp_path / "nosuch"])
    assert [(r.kind, r.target) for r in runs] == [("deploy", "aws")]
    assert sorted(Path(p.split(":")[0]).parent.name for p in problems) == ["broken", "old"]


def test_out_never_replaces_a_folder_that_is_not_a_site(tmp_path: Path) -> None:
    keep = tmp_path / "docs"
    keep.mkdir()
    (keep / "index.html").write_text("someone else's page")
    opened = tmp_path / "opened"
    browser = f'{sys.executable} -c \'import sys; open("{opened}", "w").write(sys.argv[1])\' %s'
    env = {"BAKEHOUSE_STATE_DIR": str(tmp_path / "state"), "PATH": str(BIN), "BROWSER": browser}
    argv = [str(BIN / "bakehouse"), "report", "--no-pending", "--image", "web"]

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )

    refused = report("--out", str(keep))
    assert refused.returncode == 2, refused.stderr
    assert "holds something other than a report site" in refused.stderr
    assert (keep / "index.html").read_text() == "someone else's page"
    missing = report("--out", str(tmp_path / "site"), "--runs", str(tmp_path / "nosuch"))
    assert missing.returncode == 2 and "--runs" in missing.stderr, missing.stderr
    site = tmp_path / "site"
    for _ in range(2):  # a second run replaces the first site
        done = report("--out", str(site), "--open")
        assert done.returncode == 0, done.stderr
    assert "1 image(s), 0 version(s)" in done.stdout and (site / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "opened", "site"]  # no leftovers
    assert opened.read_text() == (site / "index.html").resolve().as_uri()  # --open shows it


def test_a_run_report_of_another_shape_is_named_not_shown(tmp_path: Path) -> None:
    def report(name: str, data: object) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "nightly.json").write_text(json.dumps(data))

    at = {"target": "aws", "at": "2026-11-01T00:00:00+00:00"}
    row = {"image": "web", "bake": True, "reason": "forced", "ran": True, "ok": True}
    report("good", {"kind": "nightly", **at, "images": [row]})
    report("no-kind", {**at, "images": [row]})
    report("deploy-kind", {"kind": "deploy", **at, "images": [row]})
    report("row-without-ran", {"kind": "nightly", **at, "images": [dict(row, ran=None)]})
    report("seconds-as-text", {"kind": "nightly", **at, "images": [dict(row, seconds="9")]})
    runs, problems = read_runs([tmp_path])
    assert [r.folder.name for r in runs] == ["good"]
    named = sorted(Path(p.split(":")[0]).parent.name for p in problems)
    assert named == ["deploy-kind", "no-kind", "row-without-ran", "seconds-as-text"]


def test_svg_text_is_escaped() -> None:
    picture = svg.Lineage()
    picture.column("<b>release</b>").append(svg.Node("a", "</text><script>x</script>", "&"))
    drawn = str(svg.lineage(picture, "t<"))
    assert "<script>" not in drawn and "<b>" not in drawn
    assert "&lt;/text&gt;&lt;script&gt;" in drawn and "<title>t&lt;</title>" in drawn


def test_records_the_site_cannot_show_are_named_and_never_passed(tmp_path: Path) -> None:
    spec = web()
    fine = {"version": V1, "state": "published", "verify": {"summary": {"passed": 3}}}
    odd = {"version": V2, "state": "published", "verify": "3 passed", "amis": [{}]}
    report = {"diff": {"against": None, "changes": [], "error": "the previous manifest is gone"}}
    versions = [Version("aws", "web", fine, report), Version("aws", "web", odd, {"verify": 1})]
    image = Image("aws", spec, versions, {"latest": {"history": [{}]}}, [])
    site = Site(dt.datetime(2026, 11, 30, tzinfo=dt.UTC), [image], [])
    write(site, tmp_path)
    shown = (tmp_path / "aws" / "web" / V1 / "index.html").read_text()
    assert "The package diff could not be made: the previous manifest is gone" in shown
    unreadable = (tmp_path / "aws" / "web" / V2 / "index.html").read_text()
    main = unreadable[unreadable.index("<main>") :]
    assert "This page cannot be shown" in main and "3 passed" not in main
    assert any(p.startswith(f"aws/web/{V2}/index.html: cannot be shown") for p in site.problems)
    assert "Not shown as it should be: aws/web/" in (tmp_path / "index.html").read_text()


def test_a_total_is_left_out_only_where_its_parts_are_shown() -> None:
    local = {"timings": {"base": 60.0, "bake": 150.0, "packer:boot": 30.0, "packer:total": 148.0}}
    aws = {"timings": {"base": 2.0, "bake": 600.0, "verify": 120.0}}
    assert timings(Version("local", "web", {}, local)) == [("base", 60.0), ("packer:boot", 30.0)]
    assert timings(Version("aws", "web", {}, aws)) == [
        ("base", 2.0),
        ("bake", 600.0),
        ("verify", 120.0),
    ]


def test_a_version_that_is_not_one_is_not_used_as_a_path(local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = web()
    record_version(local, spec, V1, tmp_path)
    local.catalogue.update("web", V1, lambda r: r.update(version="../../escape"))
    out = tmp_path / "site"
    result = build(Project(ROOT), [local], out, [], images=["web"], pending=False)
    assert result.versions == 0
    assert any("'../../escape' is not shown" in p for p in result.problems)
    assert not (tmp_path / "escape").exists()


def test_a_waived_control_shows_its_reason_and_expiry_and_security_updates_are_marked(
    local, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web-noble", TODAY)
    record_version(local, spec, V1, tmp_path, evidence="web-ubuntu-24.04")
    out = tmp_path / "site"
    build(Project(ROOT), [local], out, [], images=["web-noble"], pending=False)
    page = (out / "local" / "web-noble" / V1 / "index.html").read_text()
    row = page[page.index('data-control="os-10.squashfs"') :].split("</tr>")[0]
    assert ">waived<" in row and "snaps are squashfs images" in row
    assert "(expires 2027-05-31)" in row
    # a diff with a security update, as a bake records it
    report = {
        "diff": {
            "against": "20261031.000000",
            "changes": [
                {"name": "openssl", "change": "upgraded", "from": "3.5.1-1", "to": "3.5.4-1",
                 "security": True},
                {"name": "curl", "change": "upgraded", "from": "8.1-1", "to": "8.2-1",
                 "security": False},
            ],
        }
    }  # fmt: skip
    site = Site(dt.datetime(2026, 11, 30, tzinfo=dt.UTC), [], [])
    image = Image("local", spec, [Version("local", "web-noble", {"version": V2}, report)], {}, [])
    site.images.append(image)
    write(site, tmp_path / "diff")
    shown = (tmp_path / "diff" / "local" / "web-noble" / V2 / "index.html").read_text()
    assert "2 change(s), 1 security." in shown
    rows = shown[shown.index('<table class="diff">') :].split("</table>")[0].split("<tr>")
    assert [("SECURITY" in r) for r in rows if "upgraded" in r] == [True, False]
