"""SSH standing in for the SSM agent, as AWS documents AWS-RunShellScript: each script runs as
root under /bin/sh on a real booted image, the invocation is Success on exit 0 and Failed
otherwise, and only the first 24,000 characters of stdout and 8,000 of stderr come back, as
from GetCommandInvocation. Used by the e2e tests (the testinfra relay backend, and the moto
server's SSM commands when an agent is configured)."""

from __future__ import annotations

import shlex

import paramiko

STDOUT, STDERR = 24_000, 8_000


class SshAsAgent:
    """``forget_key``: once connected, remove the key the connection used from the image (the
    open connection stays), so the image holds no SSH key at all — as an instance reached only
    through SSM does."""

    def __init__(self, ssh_config: str, host: str = "bakehouse-vm", forget_key: bool = False):
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
        if forget_key:
            _, out, _ = self.client.exec_command("rm -f ~/.ssh/authorized_keys", timeout=60)
            if out.channel.recv_exit_status() != 0:
                raise RuntimeError("could not remove the agent's key from the image")

    def run(self, script: str) -> tuple[str, int, str, str]:
        """(status, exit code, stdout, stderr) as GetCommandInvocation reports them."""
        self.invocations += 1
        self.largest_script = max(self.largest_script, len(script))
        _, stdout, stderr = self.client.exec_command(
            "sudo /bin/sh -c " + shlex.quote(script), timeout=600
        )
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        code = stdout.channel.recv_exit_status()
        self.reply_chars += min(len(out), STDOUT)
        return ("Success" if code == 0 else "Failed", code, out[:STDOUT], err[:STDERR])

    def close(self) -> None:
        self.client.close()
