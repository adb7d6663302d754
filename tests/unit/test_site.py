"""The report site's guards, each on its own: evidence that cannot be read is never shown as
passed, a role's own benchmark is not counted in the OS benchmark's sections, a report that
does not parse is named, and --out never replaces a folder that is not a site."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bakehouse.project import Project
from bakehouse.site import Version, build, control_groups, read_runs
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
    ]  # fmt: skip
    report = {"verify": {"controls": controls, "compliance": {"benchmark": "CIS X"}}}
    version = Version("local", "web", {"version": V1}, report)
    groups = control_groups(version)
    assert [(g["title"].split(":")[0], [c["id"] for c in g["controls"]]) for g in groups] == [
        ("CIS X section 1", ["c"]),
        ("CIS X section 5", ["a"]),
        ("Beyond the OS benchmark", ["b", "d"]),
    ]
    beyond = groups[2]["controls"]
    assert [(c["status"], c["outcome"]) for c in beyond] == [
        ("FAILED", "failed"),
        ("unknown (odd)", "failed"),  # an outcome the site does not know is never a pass
    ]
    assert groups[0]["counts"] == {"not applicable": 1}


def test_a_report_that_does_not_parse_is_named(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "deploy.json").write_text(
        json.dumps({"kind": "deploy", "target": "aws", "at": "2026-11-01T00:00:00+00:00"})
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
    (keep / "notes.txt").write_text("mine")
    env = {"BAKEHOUSE_STATE_DIR": str(tmp_path / "state"), "PATH": str(BIN)}
    argv = [str(BIN / "bakehouse"), "report", "--no-pending", "--image", "web", "--out"]

    def report(out: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )

    refused = report(keep)
    assert refused.returncode == 2, refused.stderr
    assert "holds something other than a report site" in refused.stderr
    assert (keep / "notes.txt").read_text() == "mine"
    site = tmp_path / "site"
    for _ in range(2):  # a second run replaces the first site
        done = report(site)
        assert done.returncode == 0, done.stderr
    assert "1 image(s), 0 version(s)" in done.stdout and (site / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "site"]  # nothing left over
