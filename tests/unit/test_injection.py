"""What a definition or a flag says can never become a command, a template expression or a path
outside the catalogue: reserved environment names, ``{{``, control characters, path-like names
and absurd sizes are refused with file:line:key (or the flag) and exit 2."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import pytest

from bakehouse import hcl, render
from bakehouse.catalogue import DirStore
from bakehouse.errors import EXIT_USAGE, CatalogueError, RenderError, SpecError
from bakehouse.spec import ImageSpec, Step
from tests.conftest import ROOT, run_cli

WORKER = "description: x\nprovision:\n  - script: web.sh\n    env:\n      {key}: {value}\n"


def refused(tmp_images, text: str) -> SpecError:  # type: ignore[no-untyped-def]
    tmp_images.write("web", text)
    with pytest.raises(SpecError) as caught:
        tmp_images.load("web")
    assert caught.value.exit_code == EXIT_USAGE
    return caught.value


@pytest.mark.parametrize(
    "key",
    ["BAKEHOUSE_PACKAGES", "PATH", "LD_PRELOAD", "IFS", "BASH_ENV", "APT_CONFIG", "DPKG_ROOT"],
)
def test_a_step_cannot_set_a_reserved_name(tmp_images, key: str) -> None:  # type: ignore[no-untyped-def]
    err = refused(tmp_images, WORKER.format(key=key, value="'nginx -oDPkg::Pre-Invoke::=id'"))
    assert err.message == (
        f"images/web.yaml:5: provision[0].env.{key}: {key} is reserved: bakehouse, the shell, "
        "apt or the loader rely on it"
    )
    assert err.hint is not None and "APP_" in err.hint


def test_a_name_of_its_own_is_fine(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write("web", WORKER.format(key="WORKER_USER", value="worker"))
    assert tmp_images.load("web").provision[0].env == (("WORKER_USER", "worker"),)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            WORKER.format(key="GREETING", value="'{{ env \"HOME\" }}'"),
            "5: provision[0].env.GREETING",
        ),
        ("description: 'web {{ pwd }}'\n", "1: description"),
    ],
)
def test_packer_template_expressions_are_refused(tmp_images, text: str, where: str) -> None:  # type: ignore[no-untyped-def]
    err = refused(tmp_images, text)
    assert err.message.startswith(f"images/web.yaml:{where}: must not contain '{{{{'")


@pytest.mark.parametrize(
    "value", ['"web\\x1b[31m red"', '"two\\nlines"', '"bell\\a"', '"line\\u2028sep"']
)
def test_control_characters_are_refused(tmp_images, value: str) -> None:  # type: ignore[no-untyped-def]
    err = refused(tmp_images, f"description: {value}\n")
    assert err.message.startswith("images/web.yaml:1: description: must not contain control")


def test_a_waiver_reason_may_span_lines(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write(
        "web",
        "description: x\nhardening:\n  waivers:\n    - id: sshd-48\n      reason: >\n"
        "        first line of the reason\n        and the second\n      expires: 2099-01-01\n",
    )
    assert "second" in tmp_images.load("web").hardening.waivers[0].reason


def test_extends_names_an_image_not_a_path(tmp_images) -> None:  # type: ignore[no-untyped-def]
    (tmp_images.root / "evil.yaml").write_text("description: outside\n")
    err = refused(tmp_images, "description: x\nextends: ../evil\n")
    assert err.message == "images/web.yaml:2: extends: '../evil' is not an image name"


@pytest.mark.parametrize("size", ["9" * 400 + "K", "9" * 5000, "12345678901G"])
def test_a_huge_size_is_a_clear_error(tmp_images, size: str) -> None:  # type: ignore[no-untyped-def]
    err = refused(tmp_images, f"description: x\ntargets:\n  local:\n    disk_size: '{size}'\n")
    assert err.message.startswith("images/web.yaml:4: targets.local.disk_size: must be")


def test_render_refuses_a_template_expression_that_got_past_validation() -> None:
    with pytest.raises(RenderError, match="Packer template expression"):
        hcl.quote('{{ env "HOME" }}')


def test_each_step_gets_only_its_own_env(tmp_images) -> None:  # type: ignore[no-untyped-def]
    for script in ("one.sh", "two.sh"):
        (tmp_images.scripts / script).write_text("#!/bin/sh\n")
    tmp_images.write(
        "web",
        "description: x\nprovision:\n  - script: one.sh\n    env: {ONE: '1'}\n"
        "  - script: two.sh\n    env: {TWO: '2'}\n",
    )
    spec: ImageSpec = tmp_images.load("web")
    assert spec.provision == (Step("one.sh", (("ONE", "1"),)), Step("two.sh", (("TWO", "2"),)))
    vm_spec = dataclasses.replace(
        spec,
        targets=dataclasses.replace(
            spec.targets, local=dataclasses.replace(spec.targets.local, build="vm")
        ),
    )
    for target, one in (("local", spec), ("local", vm_spec), ("aws", spec)):
        text = render.render(one, target, ROOT / "packer")
        by_script: dict[str, list[str]] = {}
        # a VM's steps get their env as environment_vars; the chroot build's as the last
        # arguments of in-root.sh (shell-local's)
        env_re = r"(?:environment_vars = |\], \[var\.in_root, [^]]*\], )(\[.*\])"
        for block in re.split(r'provisioner "shell(?:-local)?"', text)[1:]:
            env = json.loads(re.search(env_re, block)[1])  # type: ignore[index]
            scripts = json.loads(re.search(r"for s in (\[.*?\]) :", block)[1])  # type: ignore[index]
            by_script.update(dict.fromkeys(scripts, env))
        assert by_script, text
        assert "ONE=1" in by_script["one.sh"] and "TWO=2" not in by_script["one.sh"]
        assert "TWO=2" in by_script["two.sh"] and "ONE=1" not in by_script["two.sh"]
        for script in ("patch.sh", "packages.sh", "harden.sh", "manifest.sh", "cleanup.sh"):
            assert not {"ONE=1", "TWO=2"} & set(by_script[script]), (target, script)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["publish", "--image", "../../../x"], "--image '../../../x' is not an image name"),
        (["publish", "--image", "web", "--channel", ""], "--channel '' is not a channel name"),
        (["publish", "--image", "web", "--channel", "../../evil"], "is not a channel name"),
        (["publish", "--image", "web", "--channel", "a/b"], "--channel 'a/b' is not a channel"),
        (["publish", "--image", "web", "--channel", "ok\nx"], "is not a channel name"),
        (["roll", "--image", "web", "--channel", "a/b"], "--channel 'a/b' is not a channel"),
        (["nightly", "--dry-run", "--channel", ""], "--channel '' is not a channel name"),
        (["nightly", "--dry-run", "--force", "../x"], "--force '../x' is not an image name"),
        (["images.diff", "--image", "web", "--old", "../.."], "--old '../..' is not a version"),
        (["publish", "--image", "web", "--version", "../../x"], "is not a version"),
        (["revoke", "--image", "web", "--version", "1/..", "--reason", "x" * 12], "not a version"),
        (["revoke", "--image", "web", "--reason", "bad\x1b[2J reason"], "control characters"),
        (["roll", "--image", "web", "--region", "eu-west-1/../x"], "is not an AWS region"),
    ],
)
def test_flags_are_checked_at_the_edge(argv: list[str], message: str) -> None:
    code, _, err = run_cli(*argv)
    assert code == EXIT_USAGE and message in err, (argv, err)
    assert "Traceback" not in err


def test_the_catalogue_store_never_leaves_its_folder(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "catalogue")
    for key in ("../x/record.json", "local/images/web/../../../../x", "/etc/passwd", "a//b"):
        with pytest.raises(CatalogueError, match="leaves"):
            store.read(key)


def test_text_from_elsewhere_reaches_the_terminal_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bakehouse import output
    from bakehouse.command import say
    from bakehouse.errors import UsageError

    hostile = "by \x1b]0;pwned\x07 \x1b[2J\x9b31m"  # an SSM description, a tag, a mirror's text
    output.show(hostile, False, str)
    say(hostile)
    rendered = UsageError(hostile).render()
    out, err = capsys.readouterr()
    for text in (out, err, rendered):
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
        assert "\\x1b]0;pwned\\x07" in text


def test_progress_and_bidi_overrides_are_escaped_too() -> None:
    from bakehouse.errors import printable
    from bakehouse.progress import Progress

    stream = io.StringIO()
    Progress(stream=stream).say("nightly: web: ok — \x1b[2Jcleared \u202eevil")
    assert "\x1b" not in stream.getvalue() and "\u202e" not in stream.getvalue()
    assert printable("a\u2066b") == "a\\u2066b"
