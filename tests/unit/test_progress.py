"""Progress a person can follow: a live status line on a terminal, plain heartbeat lines
elsewhere, what the phase is doing now (Packer step, packages, controls) and an estimate from
previous runs."""

from __future__ import annotations

import io
import time

from bakehouse.progress import PackageWatch, Progress, SuiteWatch, estimates_from


def test_a_silent_phase_still_says_it_is_alive_in_a_log() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, live=False, heartbeat=0.05)
    progress.estimates = {"verify": 70.0}
    with progress.phase("verify", "boot and run tests/hardening"):
        progress.detail("120/306 controls, 2 failed")
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    beats = [line for line in lines if "120/306 controls, 2 failed · 0:00 of about 1:10" in line]
    assert beats and all(line.startswith("[") for line in lines)  # timestamped, plain
    assert "\r" not in out.getvalue() and "\033" not in out.getvalue()
    assert lines[-1].endswith("verify: done in 0.3s")
    time.sleep(0.2)
    assert out.getvalue().splitlines()[-1] == lines[-1]  # no heartbeat once no phase runs


def test_on_a_terminal_the_status_line_is_redrawn_and_cleared_for_each_message() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, live=True)
    with progress.phase("bake", "packer build"):
        progress.detail("packer provision:harden.sh")
        assert out.getvalue().endswith("\r\033[K  … bake: packer provision:harden.sh · 0:00")
        progress.say("packer: provision:manifest.sh")
        shown = out.getvalue()
        # the message replaces the status line, then the status comes back under it
        assert "\r\033[K[" in shown and shown.endswith("· 0:00")
    assert out.getvalue().endswith("bake: done in 0.0s\n")  # no status left after the last phase


def test_no_estimate_without_previous_runs_and_a_slow_run_says_so() -> None:
    progress = Progress(stream=io.StringIO(), live=False)
    with progress.phase("base"):
        assert progress.status() == "base: running · 0:00"
        progress.estimates = {"base": 0.01}
        time.sleep(0.05)
        assert progress.status() == "base: running · 0:00 (longer than usual)"
    assert progress.status() == ""


def test_estimates_are_the_median_of_the_last_three_runs() -> None:
    runs = [{"verify": 500.0}, {"verify": 60.0, "bake": 120.0}, {"verify": 50.0}, {"verify": 70.0}]
    assert estimates_from(runs) == {"verify": 60.0, "bake": 120.0}
    assert estimates_from([]) == {}


def test_the_suite_shows_controls_judged_of_all() -> None:
    progress = Progress(stream=io.StringIO(), live=False)
    watch = SuiteWatch(progress)
    with progress.phase("verify"):
        for line in [
            "collecting ... collected 306 items",
            "tests/hardening/test_accounts.py::test_x[bh-acct-01] PASSED           [  0%]",
            "tests/hardening/test_accounts.py::test_x[bh-acct-02] FAILED           [  1%]",
            "tests/hardening/test_sshd.py::test_s[sshd-01] SKIPPED (no role)       [  1%]",
            "tests/hardening/test_sshd.py::test_s[sshd-02] ERROR                   [  1%]",
            "E   AssertionError: PASSED [ 3%] is text inside a message",
        ]:
            watch(line)
        assert progress.status().startswith("verify: 4/306 controls, 2 failed · ")


def test_package_work_shows_its_stage_and_count() -> None:
    progress = Progress(stream=io.StringIO(), live=False)
    watch = PackageWatch(progress)
    with progress.phase("base"):
        for line in [
            "I: extracting archives...",
            "Unpacking zstd (1.5.6) ...",
            "Unpacking sudo (1.9.16) ...",
            "Setting up zstd (1.5.6) ...",
        ]:
            watch(line)
        assert progress.status().startswith("base: extracting archives · 1 of 2 packages set up · ")


def test_a_phase_right_after_another_still_has_its_heartbeat() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, live=False, heartbeat=0.05)
    with progress.phase("decide"):
        pass
    with progress.phase("nightly"):
        time.sleep(0.3)
    assert [line for line in out.getvalue().splitlines() if "nightly: running · " in line]
