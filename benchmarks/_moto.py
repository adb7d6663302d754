"""A moto server for the AWS benchmarks, on 127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A running moto server for the block, with dummy credentials and every bakehouse client
    pointed at it (BAKEHOUSE_AWS_ENDPOINT); stopped when the block ends."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    proc, url = _start()
    os.environ["BAKEHOUSE_AWS_ENDPOINT"] = url
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait()


def _start() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(__file__).resolve().parents[1] / "tests" / "aws" / "moto_ext.py"
    proc = subprocess.Popen(
        [sys.executable, str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto server did not start")
