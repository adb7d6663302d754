"""The hardening suite: plain testinfra tests, one control per test, run against a booted image.

Run it against any Debian 12 or 13, or Ubuntu 22.04 or 24.04 host::

    pytest tests/hardening --hosts=ssh://admin@host --sudo

Without ``--hosts`` it refuses to run: it must never judge the machine it runs on by accident.
bakehouse's verify stage passes ``--bakehouse-context=FILE`` (JSON) with the image's role
checks, its waivers, the verify key and the host-side package indexes; without it the suite
runs standalone (the patch check then refreshes apt in the guest, which is slower).

Every test is parametrized by control: its id (dev-sec ``sshd-*``, ``os-*``, ``package-*``,
``sysctl-*``, or bakehouse's own ``bh-*``), a title and a reference (the section of the CIS
benchmark of the image's release where one applies: the context's ``release``, Debian 12
standalone). Facts are read once per run and shared: ``sshd -T``,
``sysctl -a``, the package list and a single batch of file metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.hardening import cis
from tests.hardening.controls import Control
from tests.hardening.facts import FactError, Facts


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bakehouse")
    group.addoption(
        "--bakehouse-context",
        default=None,
        help="JSON written by bakehouse verify: roles, waivers, indexes",
    )
    group.addoption(
        "--bakehouse-stats",
        default=None,
        help="write the number of commands sent to the host (and their time) to this file",
    )
    group.addoption(
        "--bakehouse-compliance",
        default=None,
        help="write the CIS compliance per recommendation and per section (JSON) to this file",
    )
    group.addoption(
        "--bakehouse-prefetch",
        type=int,
        default=1,
        help="read every fact before the first control, this many commands at a time (each "
        "its own channel of the one SSH connection); 1: each when a control first needs it",
    )
    group.addoption(
        "--bakehouse-facts",
        default=None,
        help="write every command sent to the host and its answer (JSON) to this file",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "role(name): a check that applies to one image role")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    hosts = config.getoption("hosts", default=None)
    if not hosts:
        raise pytest.UsageError(
            "tests/hardening judges a remote machine: pass --hosts=ssh://user@host "
            "(refusing to run against the local machine)"
        )
    benchmark = _benchmark(config)
    config.stash[BENCHMARK] = benchmark
    cis_ids = benchmark.by_control()
    for item in items:
        control = _control(item)
        if control is not None:
            refs = [control.ref] if control.ref else []
            if control.id in cis_ids:
                refs.append(f"{benchmark.short} " + ", ".join(cis_ids[control.id]))
            item.user_properties.extend(
                [("control", control.id), ("title", control.title), ("reference", "; ".join(refs))]
            )


BENCHMARK = pytest.StashKey[cis.Benchmark]()


def _benchmark(config: pytest.Config) -> cis.Benchmark:
    """The CIS table of the release bakehouse names in the context; Debian 12's standalone."""
    path = config.getoption("--bakehouse-context", default=None)
    release = json.loads(Path(path).read_text()).get("release") if path else None
    if release is None:
        return cis.load()
    try:
        return cis.for_release(release)
    except LookupError as e:
        raise pytest.UsageError(str(e)) from None


def _control(item: pytest.Item) -> Control | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for value in callspec.params.values():
        if isinstance(value, Control):
            return value
    return None


@pytest.fixture(scope="session")
def context(request: pytest.FixtureRequest) -> dict[str, Any]:
    path = request.config.getoption("--bakehouse-context")
    if not path:
        return {"standalone": True, "waivers": {}, "role_checks": None}
    data: dict[str, Any] = json.loads(Path(path).read_text())
    data.setdefault("waivers", {})
    data["standalone"] = False
    return data


@pytest.fixture(scope="session")
def facts(request: pytest.FixtureRequest) -> Facts:
    """One Facts object per run (testinfra's own ``host`` fixture is per module)."""
    import testinfra

    opt = request.config.option
    hosts = (
        [h for spec in opt.hosts.split(",") for h in [spec.strip()] if h]
        if isinstance(opt.hosts, str)
        else list(opt.hosts)
    )
    if len(hosts) != 1:
        raise pytest.UsageError("tests/hardening checks one host per run")
    host = testinfra.get_host(
        hosts[0],
        connection=opt.connection,
        ssh_config=opt.ssh_config,
        ssh_identity_file=opt.ssh_identity_file,
        sudo=opt.sudo,
        sudo_user=opt.sudo_user,
    )
    facts = Facts(host)
    workers = request.config.getoption("--bakehouse-prefetch")
    if workers > 1:
        facts.prefetch(workers)
    stats = request.config.getoption("--bakehouse-stats")
    if stats:
        request.addfinalizer(lambda: Path(stats).write_text(json.dumps(facts.stats_summary())))
    record = request.config.getoption("--bakehouse-facts")
    if record:
        request.addfinalizer(lambda: Path(record).write_text(json.dumps(facts.record, indent=1)))
    return facts


@pytest.fixture(autouse=True)
def _role_filter(request: pytest.FixtureRequest, context: dict[str, Any]) -> None:
    marker = request.node.get_closest_marker("role")
    if marker is None:
        return
    roles = context.get("role_checks")
    if roles is not None and marker.args[0] not in roles:
        pytest.skip(f"role check {marker.args[0]!r} does not apply to this image")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    control = _control(item)
    if control is None or report.when != "call" or not report.failed:
        return
    if call.excinfo is not None and call.excinfo.errisinstance(FactError):
        # not a verdict: what the control judges could not be read (never waived either)
        item.user_properties.append(("error", str(call.excinfo.value)[:300]))
        report.user_properties.append(("error", str(call.excinfo.value)[:300]))
        return
    waivers = item.config.stash.get(_WAIVERS, None)
    if waivers is None:
        path = item.config.getoption("--bakehouse-context")
        waivers = json.loads(Path(path).read_text()).get("waivers", {}) if path else {}
        item.config.stash[_WAIVERS] = waivers
    if control.id in waivers:
        report.outcome = "skipped"
        report.wasxfail = f"waived: {waivers[control.id]}"


_WAIVERS = pytest.StashKey[dict[str, str]]()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each control's outcome, for the compliance summary: passed, failed, error (a fact could
    not be read, or a fixture broke), waived, or skipped (not applicable to this image)."""
    control = dict(report.user_properties).get("control")
    if control is None:
        return
    if report.when == "call":
        if report.passed:
            outcome = "passed"
        elif report.skipped:
            outcome = "waived" if "waived:" in str(getattr(report, "wasxfail", "")) else "skipped"
        else:
            outcome = "error" if "error" in dict(report.user_properties) else "failed"
    elif report.skipped:
        outcome = "skipped"
    elif report.failed:
        outcome = "error"
    else:
        return
    # a teardown error after a pass still counts against the control
    if _session_outcomes.get(control) in (None, "passed"):
        _session_outcomes[control] = outcome


_session_outcomes: dict[str, str] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--bakehouse-compliance", default=None)
    if not path:
        return
    benchmark = session.config.stash.get(BENCHMARK, None)
    if benchmark is None:  # collection was refused: nothing was judged
        return
    result = cis.compliance(benchmark, _session_outcomes)
    Path(path).write_text(json.dumps(result, indent=1))
