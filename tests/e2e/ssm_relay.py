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
import shlex
from typing import Any

import paramiko
import testinfra.backend

from bakehouse.aws import ssm

STATS_ENV = "BAKEHOUSE_SSM_RELAY_STATS"  # write invocation counts here when the run ends


class SshAsAgent:
    def __init__(self, ssh_config: str, host: str = "bakehouse-vm"):
        cfg = paramiko.SSHConfig.from_path(ssh_config).lookup(host)
        self.client = paramiko.SSHClient()
        # a VM booted for this run: its host keys are new every boot (as in the ssh_config)
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.client.connect(
            cfg["hostname"],
            port=int(cfg.get("port", 22)),
            username=cfg["user"],
            key_filename=cfg["identityfile"][0],
            look_for_keys=False,
            allow_agent=False,
        )
        self.invocations = 0
        self.reply_chars = 0
        self.largest_script = 0
        _AGENTS.append(self)

    def __call__(self, script: str) -> ssm.Invocation:
        self.invocations += 1
        self.largest_script = max(self.largest_script, len(script))
        _, stdout, stderr = self.client.exec_command(
            "sudo /bin/sh -c " + shlex.quote(script), timeout=600
        )
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        code = stdout.channel.recv_exit_status()
        self.reply_chars += min(len(out), 24_000)
        return ssm.Invocation("Success" if code == 0 else "Failed", code, out[:24_000], err[:8_000])


class RelayBackend(ssm.SsmBackend):
    NAME = "ssm-relay"

    def __init__(self, hostname: str, *args: Any, ssh_config: str, **kwargs: Any):
        self.agent = SshAsAgent(ssh_config)
        super().__init__(hostname, *args, transport=self.agent, **kwargs)


testinfra.backend.BACKENDS["ssm-relay"] = f"{__name__}.RelayBackend"
_AGENTS: list[SshAsAgent] = []


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
        agent.client.close()
