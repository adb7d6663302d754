"""harden.sh leaves out AppArmor profiles of programs the image does not contain (each is
compiled at every boot, before any service starts) — and only those: its own function, run
here over profiles written for the purpose."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

HARDEN = ROOT / "packer" / "scripts" / "harden.sh"


def function() -> str:
    text = HARDEN.read_text()
    m = re.search(r"^attaches_only_to_absent\(\) \{\n.*?^\}\n", text, re.S | re.M)
    assert m, "harden.sh no longer defines attaches_only_to_absent"
    return m[0]


PROFILES = {
    "absent": "abi <abi/4.0>,\nprofile absent /nonexistent/bin/tool flags=(complain) {\n}\n",
    "present": "profile present /bin/sh flags=(complain) {\n}\n",
    "pattern": "profile pattern /{,usr/}{,s}bin/unix_chkpwd flags=(complain) {\n}\n",
    "variable": "profile variable /usr/lib/@{multiarch}/tool {\n}\n",
    "by-name": "profile by-name flags=(complain) {\n}\n",
    "quoted": 'profile "a b" "/nonexistent/a b" {\n}\n',
    "old-style": "/nonexistent/bin/old {\n}\n",
    "one-of-two": "profile a /nonexistent/a {\n}\nprofile b /bin/sh {\n}\n",
    "nested": "profile outer /nonexistent/outer {\n  profile inner /bin/sh {\n  }\n}\n",
}
LEFT_OUT = {"absent", "nested"}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_only_a_profile_of_absent_programs_is_left_out(tmp_path: Path, name: str) -> None:
    profile = tmp_path / name
    profile.write_text(PROFILES[name])
    done = subprocess.run(
        ["sh", "-euc", function() + 'attaches_only_to_absent "$1"', "sh", str(profile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stderr == ""
    assert (done.returncode == 0) == (name in LEFT_OUT), name
