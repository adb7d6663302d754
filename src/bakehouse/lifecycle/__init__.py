"""The lifecycle: bake → verify → record → publish → roll, and nightly, deploy, promote, revoke,
diff and history, written once against the target interface (:mod:`bakehouse.targets.base`).

Each step returns a result the command layer prints; no step prints a table or exits. Long
steps report progress through a :class:`bakehouse.progress.Progress` on stderr.
"""

from __future__ import annotations

import getpass
import os
import socket

# who did it, as CI systems name the person behind a run
ACTOR_ENV = ("BAKEHOUSE_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "CODEBUILD_INITIATOR")


def who() -> str:
    """The person (or pipeline) a change is recorded as made by."""
    for name in ACTOR_ENV:
        if os.environ.get(name):
            return os.environ[name]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
