"""PAM: password quality, history and lockout; pam_unix without empty passwords. Images log in
with keys only, but a password set later (or su, or a console) must still meet the policy."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import FactError, Facts

BH = "bakehouse"


def _lines(facts: Facts, stack: str, module: str) -> list[list[str]]:
    """The uncommented lines of /etc/pam.d/<stack> that call ``module``, split in words."""
    return [
        line.split()
        for line in facts.files.get(f"/etc/pam.d/{stack}", "").splitlines()
        if line.strip() and not line.lstrip().startswith("#") and module in line.split()
    ]


def _settings(text: str) -> dict[str, str]:
    out = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _pwquality(facts: Facts) -> dict[str, str]:
    """pwquality's settings: its config file, then its drop-in (later wins), then the options
    on the pam_pwquality line (which win over both)."""
    merged = _settings(facts.files.get("/etc/security/pwquality.conf", ""))
    merged.update(
        _settings(facts.files.get("/etc/security/pwquality.conf.d/90-bakehouse.conf", ""))
    )
    for words in _lines(facts, "common-password", "pam_pwquality.so"):
        for word in words[words.index("pam_pwquality.so") + 1 :]:
            key, _, value = word.partition("=")
            merged[key] = value
    return merged


ENABLED = [
    Control("bh-pam-01", "pam_unix in every common stack", BH, ("pam_unix.so", "all")),
    Control("bh-pam-02", "pam_faillock counts failed logins", BH, ("pam_faillock.so", "auth")),
    Control("bh-pam-03", "pam_pwquality checks new passwords", BH, ("pam_pwquality.so", "pw")),
    Control("bh-pam-04", "pam_pwhistory remembers passwords", BH, ("pam_pwhistory.so", "pw")),
]


@pytest.mark.parametrize("control", ENABLED, ids=ids)
def test_module_enabled(facts: Facts, control: Control) -> None:
    module, where = control.args
    if where == "all":
        stacks = ["common-auth", "common-account", "common-password", "common-session"]
        missing = [s for s in stacks if not _lines(facts, s, module)]
        assert missing == [], f"{module} not in {missing}"
    elif where == "auth":
        words = [" ".join(w) for w in _lines(facts, "common-auth", module)]
        assert any("preauth" in w for w in words), f"no {module} preauth in common-auth"
        assert any("authfail" in w for w in words), f"no {module} authfail in common-auth"
        assert _lines(facts, "common-account", module), f"no {module} in common-account"
    else:
        assert _lines(facts, "common-password", module), f"no {module} in common-password"


def _number(settings: dict[str, str], key: str) -> int | None:
    value = settings.get(key)
    if value is None or not value.lstrip("-").isdigit():
        return None
    return int(value)


QUALITY = [
    Control("bh-pam-05", "At least 2 characters changed", BH, ("difok", ">=", 2)),
    Control("bh-pam-06", "Passwords of 14 characters or more", BH, ("minlen", ">=", 14)),
    Control("bh-pam-07", "At most 3 same characters in a row", BH, ("maxrepeat", "1-", 3)),
    Control("bh-pam-08", "At most 3 characters in a sequence", BH, ("maxsequence", "1-", 3)),
    Control("bh-pam-09", "Dictionary check on", BH, ("dictcheck", "!=", 0)),
    Control("bh-pam-10", "Quality enforced, not only warned", BH, ("enforcing", "!=", 0)),
]


@pytest.mark.parametrize("control", QUALITY, ids=ids)
def test_password_quality(facts: Facts, control: Control) -> None:
    key, how, limit = control.args
    settings = _pwquality(facts)
    value = _number(settings, key)
    if how == "!=":
        # dictcheck and enforcing default to on: only an explicit 0 turns them off
        assert key not in settings or value != limit, f"{key} = {settings[key]!r}"
        return
    assert value is not None, f"{key} is not set"
    if how == ">=":
        assert value >= limit, f"{key} = {value}"
    else:
        assert 1 <= value <= limit, f"{key} = {value}"


@pytest.mark.parametrize(
    "control", [Control("bh-pam-11", "Quality enforced for root too", BH)], ids=ids
)
def test_quality_for_root(facts: Facts, control: Control) -> None:
    assert "enforce_for_root" in _pwquality(facts), "enforce_for_root is not set"


def _faillock(facts: Facts) -> dict[str, str]:
    merged = _settings(facts.files.get("/etc/security/faillock.conf", ""))
    for words in _lines(facts, "common-auth", "pam_faillock.so"):
        for word in words[words.index("pam_faillock.so") + 1 :]:
            key, _, value = word.partition("=")
            if value:
                merged[key] = value
    return merged


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-pam-12", "Locked after at most 5 failed logins", BH, ("deny",)),
        Control("bh-pam-13", "Unlocked after 15 minutes at the earliest", BH, ("unlock_time",)),
    ],
    ids=ids,
)
def test_lockout(facts: Facts, control: Control) -> None:
    key = control.args[0]
    value = _number(_faillock(facts), key)
    assert value is not None, f"{key} is not set"
    if key == "deny":
        assert 1 <= value <= 5, f"deny = {value}"
    else:
        assert value == 0 or value >= 900, f"unlock_time = {value}"


def _pwhistory(facts: Facts) -> list[str]:
    lines = _lines(facts, "common-password", "pam_pwhistory.so")
    if not lines:
        return []
    return lines[0][lines[0].index("pam_pwhistory.so") + 1 :]


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-pam-14", "The last 24 passwords remembered", BH, ("remember",)),
        Control("bh-pam-15", "Password history for root too", BH, ("enforce_for_root",)),
        Control("bh-pam-16", "pam_pwhistory checks the new password", BH, ("use_authtok",)),
    ],
    ids=ids,
)
def test_password_history(facts: Facts, control: Control) -> None:
    options = _pwhistory(facts)
    assert options, "pam_pwhistory is not in common-password"
    key = control.args[0]
    if key == "remember":
        values = [o.partition("=")[2] for o in options if o.startswith("remember=")]
        assert values and values[0].isdigit() and int(values[0]) >= 24, options
    else:
        assert key in options, options


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-pam-17", "pam_unix refuses empty passwords (no nullok)", BH, ("nullok",)),
        Control("bh-pam-18", "pam_unix keeps no password history", BH, ("remember",)),
        Control("bh-pam-19", "pam_unix hashes with yescrypt or SHA-512", BH, ("hash",)),
        Control("bh-pam-20", "pam_unix sets the checked password", BH, ("use_authtok",)),
    ],
    ids=ids,
)
def test_pam_unix(facts: Facts, control: Control) -> None:
    what = control.args[0]
    stacks = ["common-auth", "common-account", "common-password", "common-session"]
    lines = {s: _lines(facts, s, "pam_unix.so") for s in stacks}
    if not lines["common-password"]:
        raise FactError("pam: no pam_unix line in common-password to judge")
    if what in ("nullok", "remember"):
        found = [
            f"{s}: {' '.join(w)}"
            for s, ws in lines.items()
            for w in ws
            if any(o == what or o.startswith(f"{what}=") for o in w)
        ]
        assert found == [], found
    elif what == "hash":
        words = lines["common-password"][0]
        assert "yescrypt" in words or "sha512" in words, words
    else:
        assert "use_authtok" in lines["common-password"][0], lines["common-password"][0]
