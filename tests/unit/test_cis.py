"""The CIS Level 1 table: complete, pointing only at real controls, rendered into docs/, and
turned into per-recommendation compliance without assuming anything a control did not show."""

from __future__ import annotations

import pytest

from tests.hardening import cis
from tests.unit.replay import checks


def test_every_recommendation_is_settled_by_real_controls_or_a_reason() -> None:
    table = cis.load()
    ids = [r.id for r in table.recommendations]
    assert len(ids) == len(set(ids)) == 230  # the benchmark's automated Level 1 - Server ones
    assert ids == sorted(ids, key=lambda i: [int(p) for p in i.split(".")])
    controls = {c.id for c in checks()}
    unknown = {c for r in (*table.recommendations, *table.manual) for c in r.controls} - controls
    assert unknown == set(), "the table names controls the suite does not have"
    for rec in table.recommendations:
        assert bool(rec.controls) == (rec.kind == "controls"), rec.id
        assert rec.kind == "controls" or len(rec.reason) > 20, f"{rec.id}: say why"
        assert rec.section in table.sections, rec.id


def test_the_document_is_rendered_from_the_table() -> None:
    assert cis.DOC.read_text() == cis.render(cis.load()), (
        "docs/cis-debian-12.md is stale: run python -m tests.hardening.cis"
    )


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
