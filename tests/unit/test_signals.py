"""Stop signals: the first unwinds, later ones cannot cut the cleanup short; a roll rolls back
and is recorded on SIGTERM; a stopped nightly stops the bakes it started (they run in their
own sessions, where neither a terminal's Ctrl-C nor a CI runner's SIGTERM reaches them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bakehouse import plan, proc
from bakehouse.errors import Terminated
from bakehouse.lifecycle import nightly
from bakehouse.project import Project
from bakehouse.runs import terminate_as_exception
from bakehouse.targets import get
from tests.conftest import ROOT

# a child that ignores SIGINT: only the cleanup's later SIGTERM (or SIGKILL) ends it
STUBBORN = "import signal, time; signal.signal(2, signal.SIG_IGN); time.sleep(300)"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_repeated_sigterm_cannot_cut_the_cleanup_short(tmp_path: Path) -> None:
    """The parent is stopped with SIGTERM, then SIGTERMed again and again while it waits for
    the child to stop: the cleanup still runs to the end and the child's group is gone."""
    pidfile = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from bakehouse import proc
        from bakehouse.runs import terminate_as_exception
        from bakehouse.errors import Terminated

        try:
            with terminate_as_exception():
                proc.stream(
                    [sys.executable, "-c", {STUBBORN!r}],
                    log=Path({str(tmp_path / "log")!r}),
                    started=lambda p: Path({str(pidfile)!r}).write_text(str(p.pid)),
                    grace=1.0,
                )
        except Terminated:
            print("cleaned up", flush=True)
            sys.exit(143)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    parent.send_signal(signal.SIGTERM)
    # a CI runner losing patience: three more, well inside the child's 1 s grace (after the
    # cleanup the default handler is back, and a signal then would only end the process early)
    for _ in range(3):
        time.sleep(0.2)
        parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=60)
    assert parent.returncode == 143 and "cleaned up" in out, (parent.returncode, out)
    assert not alive(child)


def test_a_second_ctrl_c_is_only_noted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(KeyboardInterrupt), terminate_as_exception():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # during the cleanup: no second exception
            time.sleep(0.1)
    assert "SIGINT again: still stopping" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class NoHandler(Exception):
    pass


@pytest.fixture
def sigterm_fails_the_test() -> Iterator[None]:
    """Without bakehouse's own handler, SIGTERM raises NoHandler (instead of killing pytest)."""

    def handler(signum: int, frame: object) -> None:
        raise NoHandler

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_stopped_nightly_stops_its_bakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_fails_the_test: None
) -> None:
    cleaned = tmp_path / "cleaned"
    cleaned.mkdir()

    def bake(image: str, target: object, channels: list[str]) -> list[str]:
        code = (
            "import os, signal, sys, time\n"
            "def stop(*a):\n"
            f"    open(os.path.join({str(cleaned)!r}, {image!r}), 'w').close(); sys.exit(130)\n"
            "signal.signal(signal.SIGINT, stop)\n"
            "print('baking', flush=True); time.sleep(30)\n"
        )
        return [sys.executable, "-c", code]

    monkeypatch.setattr(nightly, "bake_argv", bake)
    children: list[subprocess.Popen[bytes]] = []
    real_stream = proc.stream

    def stream(*args: object, **kwargs: object) -> int:
        given = kwargs["started"]

        def started(p: subprocess.Popen[bytes]) -> None:
            children.append(p)
            given(p)  # type: ignore[operator]

        kwargs["started"] = started
        return real_stream(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(proc, "stream", stream)

    def stop_when_started() -> None:
        # both bakes have their own SIGINT handler once they print "baking" to their logs
        logs = [tmp_path / "r" / "logs" / f"{name}.log" for name in ("web", "worker")]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            log.is_file() and "baking" in log.read_text() for log in logs
        ):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    project = Project(ROOT)
    decisions = [plan.Decision(n, True, "forced") for n in ("web", "worker", "base")]
    monkeypatch.setattr(nightly, "decide", lambda *a, **k: decisions)
    threading.Thread(target=stop_when_started, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(Terminated):
        nightly.nightly(project, get("local", project), [], workers=2, report=tmp_path / "r")
    assert time.monotonic() - start < 30
    assert sorted(p.name for p in cleaned.iterdir()) == ["web", "worker"]  # each cleaned up
    assert all(p.poll() is not None for p in children) and len(children) == 2  # base: never


DEPLOY_STOPPED_BETWEEN_STEPS = """
import datetime as dt, os, signal, sys
from pathlib import Path
from bakehouse.lifecycle import deploy
from bakehouse.project import Project
from bakehouse.spec import Catalog
from bakehouse.targets import get

root, out = Path(sys.argv[1]), Path(sys.argv[2])
ran = []

def baked(ctx):
    ran.append("bake")
    # the bake's own handler is gone; the roll's is not there yet: only deploy's is left
    os.kill(os.getpid(), signal.SIGTERM)
    return "published"

def rolled(ctx):
    ran.append("roll")
    return "rolled"

deploy.SEQUENCE = (("bake+verify+publish", baked), ("roll", rolled))
spec = Catalog(root / "images", root / "packer" / "scripts").load("web", dt.date.today())
try:
    deploy.deploy(Project(root), get("local", Project(root)), spec, report=out)
except BaseException as exc:
    print("stopped by", type(exc).__name__, "after", ran, exc)
    sys.exit(143)
"""


def test_a_deploy_stopped_between_bake_and_roll_records_it_and_never_rolls(
    tmp_path: Path,
) -> None:
    """SIGTERM between the steps, where neither the bake's nor the roll's handler is installed:
    deploy's own turns it into an exception, so no roll starts and the report says where it
    stopped (without that handler the process would die with no report at all)."""
    script = tmp_path / "deploy_stopped.py"
    script.write_text(DEPLOY_STOPPED_BETWEEN_STEPS)
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, str(script), str(ROOT), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BAKEHOUSE_STATE_DIR": str(tmp_path / "state")},
        check=False,
    )
    assert result.returncode == 143, (result.returncode, result.stderr[-2000:])
    assert "stopped by Terminated after ['bake']" in result.stdout
    steps = json.loads((out / "deploy.json").read_text())["steps"]
    assert [(s["step"], s["ok"]) for s in steps] == [("bake+verify+publish", False)]
