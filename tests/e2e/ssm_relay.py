"""pytest plugin for the hardening suite: bakehouse's SSM backend with SSH standing in for the
SSM agent, so the SSM command protocol is proven on a real booted image.

SSM cannot run here, so the transport plays the agent as documented for AWS-RunShellScript:
each script runs as root under /bin/sh (over one SSH connection to the VM), the invocation is
``Success`` on exit 0 and ``Failed`` otherwise, and only the first 24,000 characters of stdout
and 8,000 of stderr come back, as from GetCommandInvocation. Everything else — the wrapper, the
chunking, decoding, the testinfra backend — is bakehouse's production code.

    pytest tests/hardening -p tests.e2e.ssm_relay \\
        '--hosts=ssm-relay://i-00000000000000000@local?ssh_config=FILE'
"""

from __future__ import annotations

import json
import os
from typing import Any

import testinfra.backend

from bakehouse.aws import ssm
from tests.agent import SshAsAgent

STATS_ENV = "BAKEHOUSE_SSM_RELAY_STATS"  # write invocation counts here when the run ends


class Relay(SshAsAgent):
    def __init__(self, ssh_config: str):
        super().__init__(ssh_config)
        _AGENTS.append(self)

    def __call__(self, script: str) -> ssm.Invocation:
        return ssm.Invocation(*self.run(script))


class RelayBackend(ssm.SsmBackend):
    NAME = "ssm-relay"

    def __init__(self, hostname: str, *args: Any, ssh_config: str, **kwargs: Any):
        self.agent = Relay(ssh_config)
        super().__init__(hostname, *args, transport=self.agent, **kwargs)


testinfra.backend.BACKENDS["ssm-relay"] = f"{__name__}.RelayBackend"
_AGENTS: list[Relay] = []


def pytest_unconfigure() -> None:
    if _AGENTS:
        totals = {
            "invocations": sum(a.invocations for a in _AGENTS),
            "reply_chars": sum(a.reply_chars for a in _AGENTS),
            "largest_script": max(a.largest_script for a in _AGENTS),
        }
        path = os.environ.get(STATS_ENV)
        if path:
            with open(path, "w") as fh:
                json.dump(totals, fh)
    for agent in _AGENTS:
        agent.close()
