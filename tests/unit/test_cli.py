"""The command line as users run it: real processes, exit statuses, no tracebacks, fast listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def run(argv: list[str], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BAKEHOUSE_")}
    full_env.update(env)
    return subprocess.run(
        argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def test_list_shows_only_working_tasks() -> None:
    result = run([str(BIN / "invoke"), "--list"])
    assert result.returncode == 0, result.stderr
    for name in ("render", "validate", "images.list", "images.show"):
        assert f"  {name}" in result.stdout


def test_list_is_fast() -> None:
    best = min(_timed([str(BIN / "invoke"), "--list"]) for _ in range(3))
    assert best < 0.5, f"invoke --list took {best:.2f} s"


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    assert run(argv).returncode == 0
    return time.perf_counter() - start


def test_cli_import_does_not_load_heavy_modules() -> None:
    code = (
        "import sys, bakehouse.cli\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'jinja2') if m in sys.modules))"
    )
    result = run([sys.executable, "-c", code])
    assert result.stdout.strip() == "[]"


def test_images_list_json() -> None:
    result = run([str(BIN / "invoke"), "images.list", "--json"])
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} >= {"base", "web", "worker"}


def test_images_show_resolves(tmp_path: Path) -> None:
    result = run([str(BIN / "invoke"), "images.show", "--image", "web", "--json"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "web" and data["packages"] == ["nginx-light"]
    assert data["files"] == ["images/_defaults.yaml", "images/base.yaml", "images/web.yaml"]


def test_unknown_image_is_exit_2_without_traceback() -> None:
    result = run([str(BIN / "invoke"), "images.show", "--image", "nope"])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: images/nope.yaml: no image named 'nope'" in result.stderr
    assert "hint: known images:" in result.stderr


def test_bad_definition_is_exit_2_with_location(copy_project) -> None:  # type: ignore[no-untyped-def]
    project = copy_project()
    (project / "images" / "web.yaml").write_text(
        "description: x\nextends: base\nroll:\n  min_healthy: 120\n"
    )
    result = run([str(BIN / "bakehouse"), "validate", "--no-packer"], cwd=project)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "images/web.yaml:4: roll.min_healthy: must be 0–100% (got 120)" in result.stderr
    assert "ok   base/local (schema)" in result.stdout


def test_console_script_works_outside_the_project(tmp_path: Path) -> None:
    result = run([str(BIN / "bakehouse"), "images.list"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "web" in result.stdout


def test_bakehouse_root_must_be_a_project(tmp_path: Path) -> None:
    result = run(
        [str(BIN / "bakehouse"), "images.list"], cwd=tmp_path, BAKEHOUSE_ROOT=str(tmp_path)
    )
    assert result.returncode == 2
    assert "has no images/ and packer/ folders" in result.stderr


def test_bad_target_is_usage_error() -> None:
    result = run([str(BIN / "invoke"), "render", "--target", "gcp"])
    assert result.returncode == 2
    assert "--target 'gcp' is not a target" in result.stderr
    assert "targets: local, aws" in result.stderr


@pytest.mark.packer
@pytest.mark.slow  # packer validate and fmt over every image and target: seconds
def test_render_and_validate_json(copy_project) -> None:  # type: ignore[no-untyped-def]
    project = copy_project()
    result = run(
        [str(BIN / "bakehouse"), "render", "--image", "web", "--target", "aws", "--json"],
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["path"] == "build/web/aws.pkr.hcl" and row["changed"] is True
    assert (project / "build" / "web" / "aws.pkr.hcl").is_file()
    # every shipped image × target through `packer validate` and `packer fmt -check` (1.6.6)
    result = run([str(BIN / "bakehouse"), "validate", "--json"], cwd=project)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    shipped = list((ROOT / "images").glob("[!_]*.yaml"))
    assert all(r["ok"] for r in rows) and len(rows) == len(shipped)


def test_debug_shows_traceback() -> None:
    result = run([str(BIN / "invoke"), "--debug", "images.show", "--image", "nope"])
    assert result.returncode != 0
    assert "Traceback" in result.stderr


# ---- the command edge ------------------------------------------------------------------------


def test_a_short_flag_means_one_thing_in_every_task() -> None:
    from bakehouse.cli import ns
    from bakehouse.command import SHORT

    meaning: dict[str, set[str]] = {}
    for name in ns.task_names:
        for arg in ns[name].get_arguments():
            for short in (n for n in arg.names if len(n) == 1):
                meaning.setdefault(short, set()).add(arg.attr_name or arg.name)
    assert meaning == {short: {long} for long, short in SHORT.items()}


def test_the_image_may_come_first_under_bakehouse() -> None:
    from tests.conftest import run_cli

    assert run_cli("images.show", "web") == run_cli("images.show", "--image", "web")
    code, out, _ = run_cli("images.show", "web", "--json")
    assert code == 0 and json.loads(out)["name"] == "web"
    code, out, _ = run_cli("bake", "--help")  # a flag right after the task is never the image
    assert code == 0 and "--image" in out
    # `base` is an image and a task: after a task that takes an image, the image wins
    code, out, _ = run_cli("images.show", "base", "--json")
    assert code == 0 and json.loads(out)["name"] == "base"
    code, _, err = run_cli("images.diff", "nosuch")
    assert code == 2 and "no image named 'nosuch'" in err
    # nightly takes several images (--image, repeated): a word after it is not one
    code, _, err = run_cli("nightly", "web", "--dry-run")
    assert code == 2 and "No idea what 'web' is!" in err and "hint:" in err
    # the steps of a fanned-out nightly are one at a time
    code, _, err = run_cli("nightly", "--plan", "--gather", "somewhere")
    assert code == 2 and err.startswith("error: --plan and --gather are different steps"), err
    code, _, err = run_cli("nightly", "--dry-run", "--plan")
    assert code == 2 and "different steps" in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["--dry", "images.list"],  # invoke's runner flags do nothing here: refused, not ignored
        ["--echo", "images.list"],
        ["images.list", "--pty"],
        ["nosuchtask"],
        ["images.list", "--bogus"],
        ["--list-depth"],  # a core flag without its value
    ],
)
def test_what_does_not_parse_is_bad_input(argv: list[str]) -> None:
    from tests.conftest import run_cli

    code, _, err = run_cli(*argv)
    assert code == 2, err
    assert err.startswith("error: ") and "\nhint: " in err and "Traceback" not in err


def test_help_shows_no_runner_flags() -> None:
    from tests.conftest import run_cli

    code, out, _ = run_cli("--help")
    assert code == 0 and "--list" in out
    for flag in ("--dry", "--echo", "--pty", "--warn-only", "--hide", "--command-timeout"):
        assert flag not in out


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAKEHOUSE_")}
    for argv in (["bakehouse", "images.list"], ["bakehouse", "--help"], ["invoke", "images.list"]):
        proc = subprocess.Popen(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # as `| head` does once it has enough
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, err
        assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_validate_reports_every_error_of_every_file_at_once(copy_project) -> None:  # type: ignore[no-untyped-def]
    project = copy_project()
    (project / "images" / "one.yaml").write_text(
        "description: two typos\nextends: web\nroll:\n  min_healty: 90\npatch:\n  policy: most\n"
    )
    (project / "images" / "two.yaml").write_text("extends: web\ndescripton: typo\n")
    result = run([str(BIN / "bakehouse"), "validate", "--no-packer"], cwd=project)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error: images/" in line]
    assert [e.split("error: ", 1)[1].split(": ", 2)[:2] for e in errors] == [
        ["images/one.yaml:4", "roll.min_healty"],
        ["images/one.yaml:6", "patch.policy"],
        ["images/two.yaml:2", "descripton"],
    ]
    assert "ok   web/local" in result.stdout  # the good ones are still checked


def test_validate_json_lists_every_problem(copy_project) -> None:  # type: ignore[no-untyped-def]
    project = copy_project()
    (project / "images" / "one.yaml").write_text(
        "description: two typos\nextends: web\nroll:\n  min_healty: 90\npatch:\n  policy: most\n"
    )
    result = run([str(BIN / "bakehouse"), "validate", "--no-packer", "--json"], cwd=project)
    assert result.returncode == 2
    (row,) = [r for r in json.loads(result.stdout) if r["image"] == "one"]
    assert [(e["file"], e["line"], e["key"]) for e in row["errors"]] == [
        ("images/one.yaml", 4, "roll.min_healty"),
        ("images/one.yaml", 6, "patch.policy"),
    ]
    assert row["errors"][0]["hint"] == "did you mean 'min_healthy'?"


def test_images_list_fits_100_columns_and_shows_where_channels_point() -> None:
    from bakehouse import output
    from bakehouse.lifecycle.history import ImageRow

    files = ["images/_defaults.yaml", "images/base.yaml", "images/web.yaml", "images/web-x.yaml"]
    rows = [
        ImageRow(
            "web-bookworm-arm-edge",  # 21 characters
            "",
            files,
            "local",
            {"version": "20261130.041725", "state": "published"},
            {"latest": "20261130.041725", "stable": "20261129.190000", "canary": None},
            "ubuntu-22.04",
        ),
        ImageRow("base", "", files[:2], "local", None, {"latest": None}, "debian-13"),
    ]
    text = output.images(rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, text
    assert lines[0].split() == ["IMAGE", "RELEASE", "NEWEST", "STATE", "CHANNELS"]
    assert lines[1].split()[1:] == [
        "ubuntu-22.04",
        "20261130.041725",
        "published",
        "latest",  # on the newest version
        "stable=20261129.190000",  # somewhere else
    ]  # canary points nowhere: not shown
    assert lines[2].split() == ["base", "debian-13", "-", "-", "-"]


def test_images_show_writes_sizes_as_a_definition_does() -> None:
    import yaml

    from tests.conftest import run_cli

    code, out, _ = run_cli("images.show", "web")
    local = yaml.safe_load(out)["targets"]["local"]
    assert code == 0 and (local["disk_size"], local["memory"]) == ("4G", "1G")
    code, out, _ = run_cli("images.show", "web", "--json")
    assert code == 0 and json.loads(out)["targets"]["local"]["disk_size"] == 4096  # MiB
    from bakehouse.output import size

    assert (size(4096), size(512), size(1536)) == ("4G", "512M", "1536M")


def test_a_repeatable_flag_says_it_takes_a_value() -> None:
    shown = run([str(BIN / "bakehouse"), "nightly", "--help"]).stdout
    assert "--force                       =IMAGE, repeatable: bake these" in shown
    assert "-c, --channel                 =CHANNEL, repeatable: channel" in shown
    assert "-r, --region                  =REGION, repeatable: aws:" in shown


def test_images_history_fits_100_columns() -> None:
    from bakehouse import output
    from bakehouse.lifecycle.history import History

    record = {
        "version": "20261130.041725",
        "state": "published",
        "base": {"id": "base-1d0590ffa7685b1ba84d", "key": "1d0590ffa7685b1ba84d"},
        "verify": {"summary": {"passed": 303, "failed": 0, "waived": 1}},
        "channels": ["latest", "stable", "canary"],
        "created": "2026-11-30T04:21:07+00:00",
    }
    aws = record | {"base": {"id": "ami-0d0000000000000a2"}, "state": "verified"}
    text = output.history(History("web-bookworm-arm-edge", "aws", [record, aws], {}))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, text
    assert lines[2].split() == [
        "20261130.041725",
        "published",
        "base-1d0590ff",
        "303/0/1",
        "latest",
        "stable",
        "canary",
        "2026-11-30",
        "04:21",
    ]
    assert lines[3].split()[2] == "ami-0d0000000"


def test_gc_listing_fits_100_columns_with_why_under_each_row() -> None:
    from bakehouse import output
    from bakehouse.lifecycle.housekeeping import GcResult
    from bakehouse.targets.base import Leftover

    why = "failed (packer build failed: Script exited with non-zero exit status: 7.Allowed exit "
    rows = [
        Leftover(
            "here",
            "failed run",
            "20261130T050803Z-f43c62",
            "20261130T050803Z-f43c62",
            why * 2,
            5 << 20,
        ),
        Leftover(
            "eu-west-1", "instance", "i-0123456789abcdef0", "20261130T050803Z-f43c62", "tagged", 0
        ),
    ]
    lines = output.gc(GcResult("local", rows, False)).splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[1].split() == ["here", "failed", "run", "20261130T050803Z-f43c62", "5", "MiB"]
    assert lines[2].startswith("    failed (packer build failed") and lines[2].endswith("…")
    assert lines[4] == "    tagged (run 20261130T050803Z-f43c62)"  # the run, where it is not the id
