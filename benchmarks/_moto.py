"""The AWS benchmarks' moto server: the one the tests use (tests/aws/moto_ext.py: the calls
moto lacks, TLS with a CA made for the run, Debian's seeded AMIs and public parameters)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A running server for the block, with dummy credentials and every bakehouse client (and
    Packer) pointed at it and trusting its CA; stopped when the block ends."""
    sys.path.insert(0, str(ROOT))
    from tests.aws.conftest import TLS, server_env
    from tests.aws.moto_ext import running

    folder = Path(tempfile.mkdtemp(prefix="bakehouse-moto-"))
    env = server_env(folder)
    with running(folder, env) as (url, ca):
        os.environ.update(env, BAKEHOUSE_AWS_ENDPOINT=url, AWS_CA_BUNDLE=ca, SSL_CERT_FILE=ca)
        TLS["ca"] = ca  # the tests' helpers (tests/recorded.py) trust it too
        yield url
