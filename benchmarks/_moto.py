"""The AWS benchmarks' moto server: the one the tests use (tests/aws/moto_ext.py: the calls
moto lacks, TLS with a CA made for the run, Debian's seeded AMIs and public parameters), on
127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A running server for the block, with dummy credentials and every bakehouse client (and
    Packer) pointed at it and trusting its CA; stopped when the block ends."""
    sys.path.insert(0, str(ROOT))
    from tests.aws.conftest import PUBLIC_PARAMETERS, _seed_file

    folder = Path(tempfile.mkdtemp(prefix="bakehouse-moto-"))
    (folder / "public.json").write_text(json.dumps(PUBLIC_PARAMETERS))
    env = {
        **os.environ,
        "MOTO_AMIS_PATH": str(_seed_file(folder)),
        "BAKEHOUSE_MOTO_PUBLIC_PARAMETERS": str(folder / "public.json"),
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ROOT / "tests" / "aws" / "moto_ext.py"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(server),
            "--tls",
            str(folder / "tls"),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    ca = str(folder / "tls" / "ca.pem")
    for _ in range(150):
        try:
            urllib.request.urlopen(
                url + "/moto-api/", timeout=1, context=ssl.create_default_context(cafile=ca)
            )
            break
        except (OSError, ssl.SSLError):
            time.sleep(0.2)
    else:
        proc.kill()
        raise SystemExit("moto server did not start")
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        BAKEHOUSE_AWS_ENDPOINT=url,
        AWS_CA_BUNDLE=ca,
        SSL_CERT_FILE=ca,
    )
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait()
