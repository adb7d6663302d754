"""The aws target's catalogue in S3: records, package manifests, SBOMs and reports of every
baked version, kept in the AWS account next to the AMIs, so a stateless CI runner (a fresh
clone, no ``.bakehouse/``) reaches the same nightly decision as the machine that baked.

Why S3 and not tags or SSM: a package manifest is tens of kilobytes, far over a tag (256
characters) or a standard SSM parameter (4 KB); S3 also keeps the evidence (SBOM, reports, the
suite's JUnit) with versioning. State lives twice on purpose: in the record and as the AMIs'
``bakehouse:state`` tag, which the AWS-side guards (publish, roll) read themselves.

Every request names the bucket's expected owner (the caller's account): a look-alike bucket
someone else created under the predictable default name is refused, never written to. A new
bucket is private (public access blocked), encrypted, versioned and TLS-only. Records are
written create-only and changed with conditional writes (If-Match on the ETag), so two
runners never overwrite each other's change.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bakehouse.aws.session import Aws, api_error
from bakehouse.catalogue import Store
from bakehouse.errors import AwsError, CatalogueError
from bakehouse.files import dumps

RETRIES = 10


def default_bucket(account: str) -> str:
    return f"bakehouse-state-{account}"


def bucket_policy(bucket: str) -> dict[str, Any]:
    """Deny every request that is not over TLS (pure)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


class S3Store(Store):
    def __init__(self, aws: Aws, bucket: str, region: str):
        self.aws = aws
        self.bucket = bucket
        self.region = region
        self.location = f"s3://{bucket}"
        self._ready = False

    @property
    def s3(self) -> Any:
        return self.aws.client("s3", self.region)

    @property
    def owner(self) -> str:
        return self.aws.account()

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"{doing} in {self.location}") from None

    # ---- the bucket ---------------------------------------------------------------------------
    def exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=self.bucket, ExpectedBucketOwner=self.owner)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                return False
            if code in ("403", "AccessDenied", "Forbidden"):
                raise AwsError(
                    f"the state bucket {self.bucket} is not this account's ({self.owner}), "
                    "or this role may not use it",
                    "name a bucket of your own with BAKEHOUSE_AWS_STATE_BUCKET",
                ) from None
            raise api_error(exc, f"checking the state bucket {self.bucket}") from None
        return True

    def ensure(self) -> None:
        """Create the bucket if it is missing, and make it private, encrypted, versioned and
        TLS-only — every time a process first writes (the calls are idempotent), so a set-up
        interrupted half-way is finished by the next run."""
        if self._ready:
            return
        owner = {"Bucket": self.bucket, "ExpectedBucketOwner": self.owner}
        if not self.exists():
            config = (
                {}
                if self.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
            )
            with self._errors("creating the state bucket"):
                self.s3.create_bucket(
                    Bucket=self.bucket, ObjectOwnership="BucketOwnerEnforced", **config
                )
        with self._errors("securing the state bucket"):
            self.s3.put_public_access_block(
                **owner,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
            self.s3.put_bucket_encryption(
                **owner,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                            "BucketKeyEnabled": True,
                        }
                    ]
                },
            )
            self.s3.put_bucket_versioning(**owner, VersioningConfiguration={"Status": "Enabled"})
            self.s3.put_bucket_policy(**owner, Policy=json.dumps(bucket_policy(self.bucket)))
        self._ready = True

    # ---- documents ----------------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.s3.get_object(Bucket=self.bucket, Key=key, ExpectedBucketOwner=self.owner)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                return None
            raise api_error(exc, f"reading {self.location}/{key}") from None
        except BotoCoreError as exc:
            raise api_error(exc, f"reading {self.location}/{key}") from None
        return reply["Body"].read(), str(reply.get("ETag", ""))

    def read(self, key: str) -> bytes | None:
        got = self._get(key)
        return got[0] if got else None

    def write(self, key: str, data: bytes) -> None:
        self.ensure()
        with self._errors(f"writing {key}"):
            self.s3.put_object(
                Bucket=self.bucket, ExpectedBucketOwner=self.owner, Key=key, Body=data
            )

    def children(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        out: list[str] = []
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=prefix.rstrip("/") + "/",
                Delimiter="/",
                ExpectedBucketOwner=self.owner,
            )
            for page in pages:
                out += [
                    p["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                    for p in page.get("CommonPrefixes", [])
                ]
                out += [o["Key"].rsplit("/", 1)[-1] for o in page.get("Contents", [])]
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) == "NoSuchBucket":
                return []
            raise api_error(exc, f"listing {self.location}/{prefix}") from None
        except BotoCoreError as exc:
            raise api_error(exc, f"listing {self.location}/{prefix}") from None
        return sorted(out)

    def add_entry(self, prefix: str, staged: Path, record: bytes) -> str:
        self.ensure()
        if self._get(f"{prefix}/record.json") is not None:  # before a file of it is replaced
            raise CatalogueError(f"{self.location}/{prefix} exists already")
        for path in sorted(p for p in staged.rglob("*") if p.is_file() and p.name != "record.json"):
            key = f"{prefix}/{path.relative_to(staged).as_posix()}"
            # create-only, each file: a writer racing for the same version never replaces one
            if not self._put_conditional(key, path.read_bytes(), None):
                raise CatalogueError(f"{self.location}/{key} exists already")
        self._put_conditional(f"{prefix}/record.json", record, None)
        return f"{self.location}/{prefix}"

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> bool:
        """Write only if the document is still what was read (``etag``), or absent (None)."""
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ExpectedBucketOwner=self.owner,
                **condition,
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                if etag is None and key.endswith("/record.json"):
                    raise CatalogueError(f"{self.location}/{key} exists already") from None
                return False
            raise api_error(exc, f"writing {self.location}/{key}") from None
        except BotoCoreError as exc:
            raise api_error(exc, f"writing {self.location}/{key}") from None
        return True

    def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        self.ensure()
        for attempt in range(RETRIES):
            if attempt:  # another writer changed it in between: read again, a moment later
                time.sleep(random.uniform(0, 0.05 * attempt))  # noqa: S311  # nosec B311
            got = self._get(key)
            try:
                current = json.loads(got[0]) if got else None
            except ValueError as exc:
                raise CatalogueError(
                    f"cannot read {self.location}/{key}: {exc}",
                    "the catalogue is damaged; restore the object from its versions",
                ) from None
            new = change(current)
            if self._put_conditional(key, dumps(new).encode(), got[1] if got else None):
                return new
        raise CatalogueError(
            f"{self.location}/{key} kept changing under this update ({RETRIES} tries)",
            "another runner is changing the same image; try again",
        )
