"""The CIS Level 1 table: complete, pointing only at real controls, rendered into docs/, and
turned into per-recommendation compliance without assuming anything a control did not show."""

from __future__ import annotations

import pytest

from bakehouse import distro
from tests.hardening import cis
from tests.unit.replay import checks

COUNTS = {"cis-debian-12.yaml": 230, "cis-ubuntu-24.04.yaml": 232}  # automated, L1 - Server


@pytest.mark.parametrize("table", cis.tables(), ids=lambda t: t.path.name)
def test_every_recommendation_is_settled_by_real_controls_or_a_reason(
    table: cis.Benchmark,
) -> None:
    ids = [r.id for r in table.recommendations]
    assert len(ids) == len(set(ids)) == COUNTS[table.path.name]
    assert ids == sorted(ids, key=lambda i: [int(p) for p in i.split(".")])
    controls = {c.id for c in checks()}
    unknown = {c for r in (*table.recommendations, *table.manual) for c in r.controls} - controls
    assert unknown == set(), "the table names controls the suite does not have"
    for rec in table.recommendations:
        assert bool(rec.controls) == (rec.kind == "controls"), rec.id
        assert rec.kind == "controls" or len(rec.reason) > 20, f"{rec.id}: say why"
        assert rec.section in table.sections, rec.id


@pytest.mark.parametrize("table", cis.tables(), ids=lambda t: t.path.name)
def test_the_document_is_rendered_from_the_table(table: cis.Benchmark) -> None:
    assert table.doc.read_text() == cis.render(table), (
        f"{table.doc.name} is stale: run python -m tests.hardening.cis"
    )


def test_every_release_is_reported_against_exactly_one_table() -> None:
    assert sorted(COUNTS) == sorted(t.path.name for t in cis.tables())
    for rel in distro.RELEASES.values():
        assert cis.for_release(rel.id).reports.count(rel.id) == 1
    assert cis.for_release("debian-13").short == "CIS Debian 12"  # none for Debian 13 yet
    assert cis.for_release("ubuntu-22.04").short == "CIS Ubuntu 24.04"
    with pytest.raises(LookupError, match="'fedora-41'"):
        cis.for_release("fedora-41")  # never another distribution's table


def test_ubuntu_adds_prelink_and_apport_to_the_debian_recommendations() -> None:
    debian, ubuntu = cis.for_release("debian-12"), cis.for_release("ubuntu-24.04")
    extra = {(r.id, r.title) for r in ubuntu.recommendations} - {
        (r.id, r.title) for r in debian.recommendations
    }
    assert extra == {
        ("1.5.4", "Ensure prelink is not installed"),
        ("1.5.5", "Ensure Automatic Error Reporting is not enabled"),
    }
    by_id = {r.id: r for r in ubuntu.recommendations}
    assert by_id["1.5.4"].controls == ("package-10",)
    assert by_id["1.5.5"].controls == ("bh-pkg-31",)


REC = cis.Recommendation("9.9.9", "Ensure something", ("a", "b"), "controls", "")


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        ({"a": "passed", "b": "passed"}, "passed"),
        ({"a": "passed", "b": "failed"}, "failed"),
        ({"a": "passed", "b": "error"}, "failed"),  # a fact that could not be read
        ({"a": "passed"}, "failed"),  # b did not run: nothing is assumed
        ({"a": "skipped", "b": "skipped"}, "not applicable"),
        ({"a": "passed", "b": "skipped"}, "passed"),
        ({"a": "passed", "b": "waived"}, "waived"),
        ({"a": "waived", "b": "failed"}, "failed"),
    ],
)
def test_a_recommendation_passes_only_when_each_of_its_controls_passed(
    outcomes: dict[str, str], status: str
) -> None:
    assert cis.status(REC, outcomes) == status


def test_compliance_counts_every_recommendation_once_per_section() -> None:
    table = cis.load()
    everything_passed = {c.id: "passed" for c in checks()}
    result = cis.compliance(table, everything_passed)
    assert sum(s[k] for s in result["sections"] for k in cis.STATUSES) == 230
    by_id = {r["id"]: r["status"] for r in result["recommendations"]}
    assert by_id["5.1.20"] == "passed"  # PermitRootLogin
    assert by_id["1.4.1"] == "waived" and by_id["1.7.2"] == "not applicable"
    one_failed = dict(everything_passed, **{"sshd-06": "failed"})
    again = {r["id"]: r["status"] for r in cis.compliance(table, one_failed)["recommendations"]}
    assert {k for k in by_id if by_id[k] != again[k]} == {"5.1.20"}
