"""pytest plugin: ``pytest -p bakehouse.testinfra_ssm --hosts=ssm://i-0123abcd@eu-west-1``
makes testinfra run every command through SSM Run Command (see :mod:`bakehouse.aws.ssm`)."""

import testinfra.backend

testinfra.backend.BACKENDS.setdefault("ssm", "bakehouse.aws.ssm.SsmBackend")
