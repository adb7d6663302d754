"""The pipeline definitions: validated with actionlint (GitHub Actions) and check-jsonschema's
GitLab CI schema, the CodeBuild buildspec against AWS's documented keys, every task and flag
they call exists, actions are pinned by SHA, and the IAM policy holds exactly the EC2, Auto
Scaling and SSM actions the code uses."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, complaints

PIPELINES = ROOT / "pipelines"
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((PIPELINES / "github").glob("*.yml"))
GITLAB = PIPELINES / "gitlab" / ".gitlab-ci.yml"
BUILDSPEC = PIPELINES / "codebuild" / "buildspec.yml"
ALL = [*WORKFLOWS, GITLAB, BUILDSPEC]

# S3's IAM actions are not its operation names
S3_ACTIONS = {
    "CreateBucket": "CreateBucket",
    "GetObject": "GetObject",
    "HeadBucket": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "PutBucketPolicy": "PutBucketPolicy",
    "PutBucketVersioning": "PutBucketVersioning",
    "PutObject": "PutObject",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
}
WAITERS = {
    "instance_running": ("ec2", "DescribeInstances"),
    "instance_terminated": ("ec2", "DescribeInstances"),
    "instance_stopped": ("ec2", "DescribeInstances"),
    "image_available": ("ec2", "DescribeImages"),
}


def test_github_workflows_pass_actionlint() -> None:
    assert complaints("actionlint", *WORKFLOWS) == ""


def test_gitlab_ci_matches_the_gitlab_schema() -> None:
    assert complaints("check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", GITLAB) == ""


def test_buildspec_structure() -> None:
    spec = yaml.safe_load(BUILDSPEC.read_text())
    documented = {
        "version",
        "run-as",
        "env",
        "proxy",
        "batch",
        "phases",
        "reports",
        "artifacts",
        "cache",
    }
    assert set(spec) <= documented, set(spec) - documented
    assert str(spec["version"]) == "0.2"
    # the nightly batch: shards 1/N … N/N, each once, nothing else; the builds' artifacts combined
    batch = spec["batch"]
    assert set(batch) <= {"fast-fail", "combine-artifacts", "build-list"}, batch
    assert batch["combine-artifacts"] is True and batch["fast-fail"] is False
    builds = batch["build-list"]
    assert all(set(b) <= {"identifier", "env", "ignore-failure", "buildspec"} for b in builds)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", b["identifier"]) for b in builds)
    variables = [b["env"]["variables"] for b in builds]
    assert all(v["BAKEHOUSE_FLOW"] == "nightly" for v in variables)
    shards = [v["BAKEHOUSE_SHARD"] for v in variables]
    assert shards == [f"{k}/{len(builds)}" for k in range(1, len(builds) + 1)]
    assert not any(b.get("ignore-failure") for b in builds)  # a failed shard fails the batch
    assert '${BAKEHOUSE_SHARD:+--shard "$BAKEHOUSE_SHARD"}' in BUILDSPEC.read_text()
    assert set(spec["phases"]) <= {"install", "pre_build", "build", "post_build"}
    for phase in spec["phases"].values():
        assert set(phase) <= {"run-as", "on-failure", "runtime-versions", "commands", "finally"}
        assert all(isinstance(c, str) for c in phase["commands"])
    formats = {
        "JUNITXML",
        "CUCUMBERJSON",
        "TESTNGXML",
        "NUNITXML",
        "NUNIT3XML",
        "VISUALSTUDIOTRX",
        "CLOVERXML",
        "COBERTURAXML",
        "JACOCOXML",
        "SIMPLECOV",
    }
    for group in spec["reports"].values():
        assert set(group) <= {"files", "base-directory", "discard-paths", "file-format"}
        assert group["file-format"] in formats and group["files"]
    assert set(spec["artifacts"]) <= {
        "files",
        "name",
        "discard-paths",
        "base-directory",
        "exclude-paths",
        "enable-symlinks",
        "s3-prefix",
        "secondary-artifacts",
    }
    assert spec["artifacts"]["files"]


def invocations() -> list[tuple[str, list[str]]]:
    """Every `./run invoke TASK --flag …` in the pipeline files."""
    out = []
    for path in ALL:
        for line in path.read_text().splitlines():
            m = re.search(r"\./run invoke (.+)$", line)
            if m:
                words = shlex.split(m.group(1))
                out.append((words[0], [w.split("=")[0] for w in words[1:] if w.startswith("--")]))
    return out


@cache
def task_help(task: str) -> str:
    result = subprocess.run(
        [str(BIN / "invoke"), task, "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pipelines_call_tasks_that_exist_with_flags_they_have() -> None:
    listing = subprocess.run(
        [str(BIN / "invoke"), "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    calls = invocations()
    assert {t for t, _ in calls} >= {"deploy", "nightly"}
    for task, flags in calls:
        if task.startswith("--"):
            continue
        assert re.search(rf"^\s+{re.escape(task)}\s", listing, re.M), f"no task {task}"
        for flag in flags:
            assert re.search(rf"(^|[\s,]){re.escape(flag)}[\s=\[]", task_help(task)), (
                f"invoke {task} has no {flag}"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_permissions_least(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    uses = re.findall(r"uses:\s*(\S+)", path.read_text())
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    assert doc["permissions"] == {"contents": "read"}
    for job in doc["jobs"].values():
        perms = job.get("permissions", doc["permissions"])
        assert set(perms.values()) <= {"read", "write", "none"}
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= {"id-token"}, writes  # OIDC only; nothing else is written
    text = path.read_text()
    assert "secrets." not in text and "aws-access-key-id" not in text  # no long-lived keys


def test_deploy_workflow_has_a_concurrency_group_per_image() -> None:
    doc = yaml.safe_load((PIPELINES / "github" / "deploy.yml").read_text())
    job = doc["jobs"]["deploy"]
    assert "matrix.image" in job["concurrency"]["group"]
    assert job["concurrency"]["cancel-in-progress"] is False
    assert doc[True]["workflow_dispatch"]["inputs"].keys() >= {"image", "channel"}  # "on" -> True


def code_actions() -> set[tuple[str, str]]:
    """(service, Action) for every EC2 / Auto Scaling / SSM / S3 operation the AWS code calls
    (STS GetCallerIdentity needs no permission)."""
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    by_name: dict[str, set[tuple[str, str]]] = {}
    for service in ("ec2", "autoscaling", "ssm", "s3", "sts", "ram"):
        for op in session.get_service_model(service).operation_names:
            action = S3_ACTIONS.get(op, f"?{op}") if service == "s3" else op
            by_name.setdefault(xform_name(op), set()).add((service, action))
    found: set[tuple[str, str]] = set()
    sources = [
        *(ROOT / "src" / "bakehouse" / "aws").glob("*.py"),
        ROOT / "src" / "bakehouse" / "targets" / "aws.py",
    ]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            if name in ("get_paginator", "get_waiter"):
                arg = (
                    node.args[0].value
                    if node.args and isinstance(node.args[0], ast.Constant)
                    else None
                )
                if name == "get_waiter":
                    found.add(WAITERS[str(arg)])
                else:
                    found |= by_name[str(arg)]
            elif name in by_name:
                candidates = by_name[name]
                assert len(candidates) == 1, f"{name} is ambiguous: {candidates}"
                found |= candidates
    assert not [a for s, a in found if a.startswith("?")], "an S3 call without its IAM action"
    return {(s, a) for s, a in found if s != "sts"}


def test_iam_policy_is_exactly_what_is_used() -> None:
    policy = json.loads((PIPELINES / "iam-policy.json").read_text())
    granted = {
        tuple(a.split(":"))
        for s in policy["Statement"]
        for a in s["Action"]
        if a.split(":")[0] in ("ec2", "autoscaling", "ssm", "s3", "ram")
    }
    # RAM's CreateResourceShare with tags needs TagResource too
    # (Packer makes no AWS call: bakehouse launches the build instance and makes the images)
    needed = code_actions() | {("ram", "TagResource")}
    assert granted - needed == set(), f"granted but never used: {sorted(granted - needed)}"
    assert needed - granted == set(), f"used but not granted: {sorted(needed - granted)}"
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    buckets = [s for s in policy["Statement"] if any(a.startswith("s3:") for a in s["Action"])]
    assert buckets and all(
        r.startswith("arn:aws:s3:::bakehouse-state-") for s in buckets for r in s["Resource"]
    )
    kms = [s for s in policy["Statement"] if any(a.startswith("kms:") for a in s["Action"])]
    assert kms and all("kms:ViaService" in json.dumps(s["Condition"]) for s in kms)
    # an instance profile is passed (verify over SSM): PassRole to EC2 only, bakehouse roles only
    source = (ROOT / "src" / "bakehouse" / "aws" / "instances.py").read_text()
    passes = [s for s in policy["Statement"] if "iam:PassRole" in s["Action"]]
    assert ('"IamInstanceProfile"' in source) == bool(passes)
    for s in passes:
        assert s["Action"] == ["iam:PassRole"] and s["Resource"].endswith(":role/bakehouse-*")
        assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    # commands run only on instances bakehouse launched for verification
    sends = [s for s in policy["Statement"] if "ssm:SendCommand" in s["Action"]]
    instances = [s for s in sends if any(":instance/" in r for r in s["Resource"])]
    assert instances and all(
        s["Condition"] == {"StringEquals": {"ssm:resourceTag/bakehouse:role": "verify"}}
        for s in instances
    )


def test_nightly_jobs_bake_amis_and_need_no_cache() -> None:
    """The nightly jobs run on the aws target (the fleet's images) and keep nothing between
    runs: what they compare against lives in the account."""
    nightlies = []
    for path in ALL:
        for line in path.read_text().splitlines():
            if "./run invoke nightly" in line:
                nightlies.append((path.name, shlex.split(line.split("./run invoke ", 1)[1])))
    assert {name for name, _ in nightlies} == {"nightly.yml", ".gitlab-ci.yml", "buildspec.yml"}
    for name, words in nightlies:
        assert words[words.index("--target") + 1] == "aws", name
        # the plan and the gathering bake nothing; every other nightly bakes
        assert "--runner-cidr" in words or {"--plan", "--gather"} & set(words), name
    github = yaml.safe_load((PIPELINES / "github" / "nightly.yml").read_text())
    for job in github["jobs"].values():
        assert not any("actions/cache" in str(s.get("uses", "")) for s in job["steps"])
    gitlab = yaml.safe_load(GITLAB.read_text())
    assert "cache" not in gitlab["nightly"] and "id_tokens" in gitlab["nightly"]


# ---- least privilege: resources and conditions, not only actions --------------------------------

READ = ("Describe", "Get", "List")
# actions AWS defines with neither resource-level permissions nor condition keys of their own
NO_RESOURCE_LEVEL = {"ssm:CancelCommand": "it only stops a command; it can never start one"}
# what parliament (the IAM policy linter) reports and why it stays: (issue, action or resource)
ACCEPTED_FINDINGS = {
    ("RESOURCE_MISMATCH", "ec2:CreateImage"): "CreateImage's instance is held to bakehouse's "
    "tag in one statement, its new image and snapshots to tags in the request in another",
    ("RESOURCE_MISMATCH", "ec2:RunInstances"): "each resource RunInstances touches has its own "
    "condition keys (IMDSv2 on the instance, encryption on volumes, tags in the request or on "
    "the resource), so each has its own statement",
    ("RESOURCE_MISMATCH", "ssm:SendCommand"): "the AWS-owned document cannot carry the tag "
    "that the instance statement requires, so they are two statements",
    ("RESOURCE_POLICY_PRIVILEGE_ESCALATION", "arn:aws:s3:::bakehouse-state-*"): "bakehouse "
    "sets its own state bucket's policy (TLS only) on every run; the bucket is its own",
}


def statements() -> list[dict]:  # type: ignore[type-arg]
    policy = json.loads((PIPELINES / "iam-policy.json").read_text())
    return policy["Statement"]  # type: ignore[no-any-return]


def mutating(action: str) -> bool:
    return not action.split(":")[1].startswith(READ)


def resources(s: dict) -> list[str]:  # type: ignore[type-arg]
    return [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]


def granting(action: str) -> list[dict]:  # type: ignore[type-arg]
    found = [s for s in statements() if action in s["Action"]]
    assert found, f"{action} is not granted"
    return found


# every statement that changes something without a condition, exactly: (actions, resources)
UNCONDITIONED = {
    "LaunchIntoSubnets": (["ec2:RunInstances"], ["arn:aws:ec2:*:*:subnet/*"]),
    "VerifyOverSsmDocument": (
        ["ssm:SendCommand"],
        ["arn:aws:ssm:*:*:document/AWS-RunShellScript"],
    ),
    "CancelVerificationCommands": (["ssm:CancelCommand"], ["*"]),
    "WriteBakehouseChannelsOnly": (
        ["ssm:DeleteParameter", "ssm:PutParameter"],
        ["arn:aws:ssm:*:*:parameter/bakehouse/*"],
    ),
    "CatalogueInTheStateBucket": (
        [
            "s3:CreateBucket",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutBucketPolicy",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutBucketVersioning",
            "s3:PutEncryptionConfiguration",
            "s3:PutObject",
        ],
        ["arn:aws:s3:::bakehouse-state-*", "arn:aws:s3:::bakehouse-state-*/*"],
    ),
}


def test_no_mutating_action_without_a_condition_but_the_listed_ones() -> None:
    """A subnet is where an instance starts, not what it is (every other resource of the launch
    has its condition); SendCommand's document is AWS's own; CancelCommand has no
    resource-level permission. Nothing else, and none wider."""
    for s in statements():
        if "Condition" in s or not any(map(mutating, s["Action"])):
            continue
        assert s["Sid"] in UNCONDITIONED, f"{s['Sid']} changes things unconditioned"
        assert (s["Action"], resources(s)) == UNCONDITIONED[s["Sid"]], s["Sid"]
    for action in NO_RESOURCE_LEVEL:
        assert all(resources(s) == ["*"] for s in granting(action))


CREATE_ACTIONS = [
    "CopyImage",
    "CreateImage",
    "CreateKeyPair",
    "CreateSecurityGroup",
    "RunInstances",
]


def test_tags_only_at_creation_and_after_it_only_the_state_of_bakehouse_images() -> None:
    """Tagging an existing instance `bakehouse:role=verify` would open it to SendCommand;
    tagging another team's AMI `bakehouse:image` would let the role share or deregister it.
    After creation only an AMI that already carries `bakehouse:image` may have its state and
    revocation reason changed, and no other key."""
    at_creation = later = 0
    for s in granting("ec2:CreateTags"):
        condition = s["Condition"]
        if condition == {"StringEquals": {"ec2:CreateAction": CREATE_ACTIONS}}:
            at_creation += 1
            continue
        assert resources(s) == ["arn:aws:ec2:*::image/*"], s["Sid"]
        assert condition == {
            "Null": {"aws:ResourceTag/bakehouse:image": "false"},
            "ForAllValues:StringEquals": {"aws:TagKeys": sorted(LATER_TAGS)},
        }, s["Sid"]
        later += 1
    assert (at_creation, later) == (1, 1)


# the tags the code sets on an existing AMI (publish.py is the only module that calls
# CreateTags: everything else is tagged in the call that makes it)
LATER_TAGS = {"bakehouse:state", "bakehouse:channels", "bakehouse:revoked"}


def test_the_policy_allows_exactly_the_tags_the_code_adds_later() -> None:
    from bakehouse.aws import publish

    assert {publish.TAG_STATE, publish.TAG_CHANNELS, publish.TAG_REVOKED} == LATER_TAGS
    callers = {
        p.name
        for p in (ROOT / "src" / "bakehouse").rglob("*.py")
        if ".create_tags(" in p.read_text()
    }
    assert callers == {"publish.py"}
    source = (ROOT / "src" / "bakehouse" / "aws" / "publish.py").read_text()
    used = set(re.findall(r'"Key": (TAG_[A-Z]+)', source))
    assert {getattr(publish, name) for name in used} == LATER_TAGS


@pytest.mark.parametrize(
    "action",
    [
        "ec2:TerminateInstances",
        "ec2:StopInstances",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:DeleteSecurityGroup",
        "ec2:DeleteKeyPair",
        "ec2:DeleteVolume",
        "ec2:ModifyImageAttribute",
        "ec2:ModifySnapshotAttribute",
        "ec2:EnableImageDeprecation",
        "ec2:DeregisterImage",
        "ec2:DeleteSnapshot",
        "ram:AssociateResourceShare",
    ],
)
def test_changes_only_to_what_bakehouse_tagged(action: str) -> None:
    for s in granting(action):
        assert s["Condition"] == {"Null": {"aws:ResourceTag/bakehouse:image": "false"}}, s["Sid"]


@pytest.mark.parametrize(
    "action",
    ["ec2:CreateSecurityGroup", "ec2:CreateKeyPair", "ram:CreateResourceShare", "ec2:CopyImage"],
)
def test_everything_new_is_tagged_bakehouse_when_made(action: str) -> None:
    for s in granting(action):
        assert s["Condition"] == {"Null": {"aws:RequestTag/bakehouse:image": "false"}}, s["Sid"]


def test_images_are_made_only_from_bakehouse_instances_and_tagged_as_made() -> None:
    for s in granting("ec2:CreateImage"):
        if resources(s) == ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*::snapshot/*"]:
            assert s["Condition"] == {"Null": {"aws:RequestTag/bakehouse:image": "false"}}
        else:
            assert "arn:aws:ec2:*:*:instance/*" in resources(s)
            assert s["Condition"] == {"Null": {"aws:ResourceTag/bakehouse:image": "false"}}


def launch_statements() -> dict[str, list[dict]]:  # type: ignore[type-arg]
    """RunInstances' statements by the kind of resource they name."""
    found: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for s in granting("ec2:RunInstances"):
        assert s["Action"] == ["ec2:RunInstances"], s["Sid"]
        for r in resources(s):
            found.setdefault(r.split(":")[-1].split("/")[0], []).append(s)
    return found


def test_instances_launch_tagged_imdsv2_only_with_encrypted_volumes() -> None:
    """The build and verification instances: the tag and IMDSv2 required in the request, every
    volume encrypted, and only through bakehouse's own security group and key pair."""
    found = {k: v[0] for k, v in launch_statements().items() if len(v) == 1}
    assert found["instance"]["Condition"] == {
        "Null": {"aws:RequestTag/bakehouse:image": "false"},
        "StringEquals": {"ec2:MetadataHttpTokens": "required"},
    }
    assert found["volume"]["Condition"] == {
        "Null": {"aws:RequestTag/bakehouse:image": "false"},
        "Bool": {"ec2:Encrypted": "true"},
    }
    assert found["network-interface"]["Condition"] == {
        "Null": {"aws:RequestTag/bakehouse:image": "false"}
    }
    for kind in ("security-group", "key-pair"):
        assert found[kind]["Condition"] == {"Null": {"aws:ResourceTag/bakehouse:image": "false"}}
    assert set(launch_statements()) == {
        "instance",
        "volume",
        "network-interface",
        "security-group",
        "key-pair",
        "image",
        "subnet",
    }


def test_launches_only_from_bakehouse_images_or_the_shipped_bases_publishers() -> None:
    """Launching another team's image (and imaging the instance) would copy it into an AMI
    the role may share: only bakehouse's own AMIs and those of the accounts the shipped
    definitions take their bases from. A definition with a base from another owner fails here
    until the policy names it."""
    from bakehouse.spec import Catalog

    catalog = Catalog(ROOT / "images", ROOT / "packer" / "scripts")
    owners = {o for n in catalog.names() for o in catalog.load(n).base.aws.allowed_owners()}
    conditions = [s["Condition"] for s in launch_statements()["image"]]
    # bakehouse's own: tagged, and in this account (another account's tags are not ours)
    assert {
        "Null": {"aws:ResourceTag/bakehouse:image": "false"},
        "StringEquals": {"ec2:Owner": "${aws:PrincipalAccount}"},
    } in conditions
    (publishers,) = [c for c in conditions if "Null" not in c]
    assert publishers == {"StringEquals": {"ec2:Owner": sorted(owners - {"self"})}}


@pytest.mark.parametrize(
    "action",
    [
        "autoscaling:StartInstanceRefresh",
        "autoscaling:RollbackInstanceRefresh",
        "ec2:CreateLaunchTemplateVersion",
    ],
)
def test_fleets_change_only_where_a_definition_selects_them(action: str) -> None:
    """Each shipped definition's roll.selector is allowed by the condition, and nothing else:
    a new image whose groups carry other tags fails here until the policy names them."""
    from bakehouse.spec import Catalog

    catalog = Catalog(ROOT / "images", ROOT / "packer" / "scripts")
    selected = {pair for name in catalog.names() for pair in catalog.load(name).roll.selector}
    for s in granting(action):
        (key, values), *rest = s["Condition"]["StringEquals"].items()
        assert not rest and key.startswith("aws:ResourceTag/"), s["Sid"]
        allowed = {(key.removeprefix("aws:ResourceTag/"), v) for v in values}
        assert allowed == selected, (allowed, selected)


def test_the_iam_linter_finds_nothing_unexplained() -> None:
    """parliament, a maintained IAM policy linter, over the policy; each finding it keeps
    reporting is a deliberate choice, named with its reason above."""
    from parliament import analyze_policy_string

    findings = analyze_policy_string((PIPELINES / "iam-policy.json").read_text()).findings
    got = set()
    for f in findings:
        detail = f.detail
        if isinstance(detail, list):
            first = detail[0]
            subject = first["action"] if isinstance(first, dict) else str(first)
        else:
            subject = str(detail).split(" on ")[1].split()[0]
        got.add((f.issue, subject))
    assert got == set(ACCEPTED_FINDINGS), got


# ---- who may deploy, and what is installed before a credential exists ----------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_github_jobs_deploy_only_from_the_default_branch_through_an_environment(
    path: Path,
) -> None:
    workflow = yaml.safe_load(path.read_text())
    branch = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    for job in workflow["jobs"].values():
        assert job["environment"] == "bakehouse-aws"
        # the default-branch check holds whatever else the condition says (only `&&` joins it)
        assert branch in [c.strip() for c in job["if"].split("&&")] and "||" not in job["if"]
        steps = job["steps"]
        setup = next(i for i, s in enumerate(steps) if s.get("run") == "./run invoke --list")
        assert steps[setup]["env"] == {
            "ACTIONS_ID_TOKEN_REQUEST_URL": "",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "",
        }, "the installer could ask for the job's OIDC token"
        creds = next(
            i for i, s in enumerate(steps) if "configure-aws-credentials" in s.get("uses", "")
        )
        assert setup < creds, "dependencies are installed after the credentials exist"


def test_gitlab_jobs_deploy_only_from_the_default_branch_through_an_environment() -> None:
    gitlab = yaml.safe_load(GITLAB.read_text())
    assert gitlab["default"]["before_script"][-1] == "env -u AWS_ID_TOKEN ./run invoke --list"
    for job in ("deploy", "nightly"):
        assert gitlab[job]["environment"]["name"] == "bakehouse-aws"
        for rule in gitlab[job]["rules"]:
            assert "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rule["if"], (job, rule)


def test_run_installs_only_pinned_hashed_packages() -> None:
    script = (ROOT / "run").read_text()
    installs = [line.strip() for line in script.splitlines() if '"${pip[@]}"' in line]
    assert installs == [
        '"${pip[@]}" --require-hashes --no-deps -r requirements/build.lock',
        '"${pip[@]}" --require-hashes --no-deps -r "requirements/$kind.lock"',
        '"${pip[@]}" --no-deps --no-build-isolation -e .',
    ]
    assert "pip install" not in script.replace("pip install -q --disable-pip-version-check", "")


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_pipeline_keeps_the_report_site_and_github_links_it(path: Path) -> None:
    """Each flow writes the report site after its run (also a failed one) and keeps it as an
    artifact; on GitHub the job summary links to that artifact."""
    text = path.read_text()
    assert re.search(r"invoke report .*--target aws --runs \S*reports\S* --out \S*site", text)
    doc = yaml.safe_load(text)
    if path in WORKFLOWS:
        (job,) = [j for j in doc["jobs"].values() if any(s.get("id") == "site" for s in j["steps"])]
        steps = job["steps"]
        (upload,) = [s for s in steps if s.get("id") == "site"]
        assert upload["with"]["path"] == "site/" and upload["if"] == "always()"
        (summary,) = [s for s in steps if s.get("name") == "Summary"]
        assert summary["env"]["SITE_URL"] == "${{ steps.site.outputs.artifact-url }}"
        assert "$SITE_URL" in summary["run"] and steps.index(summary) > steps.index(upload)
    elif path == GITLAB:  # the nightly's site: its child pipeline (tests/aws/test_nightly_plan.py)
        job = doc["deploy"]
        assert "site/" in job["artifacts"]["paths"] and job["artifacts"]["when"] == "always"
        assert job["script"][-1] == 'exit "$status"'
    else:
        assert doc["artifacts"]["base-directory"] == "reports" and "reports/site" in text


def test_github_nightly_fans_out_one_bake_job_per_planned_image() -> None:
    """plan (no bake) → a matrix of bake jobs from its JSON, bounded and independent → one
    gathering job that runs after failed bakes too and fails for them."""
    jobs = yaml.safe_load((PIPELINES / "github" / "nightly.yml").read_text())["jobs"]
    assert list(jobs) == ["plan", "bake", "gather"]
    plan_step = next(s for s in jobs["plan"]["steps"] if s.get("id") == "plan")
    assert "./run invoke nightly --plan --target aws --json > nightly/plan.json" in plan_step["run"]
    assert jobs["plan"]["outputs"]["plan"] == "${{ steps.plan.outputs.plan }}"
    bake = jobs["bake"]
    assert bake["needs"] == "plan" and "fromJSON(needs.plan.outputs.plan).count > 0" in bake["if"]
    strategy = bake["strategy"]
    assert strategy["matrix"] == "${{ fromJSON(needs.plan.outputs.plan).matrix }}"
    assert strategy["fail-fast"] is False and "BAKEHOUSE_MAX_PARALLEL" in strategy["max-parallel"]
    run = next(s["run"] for s in bake["steps"] if s.get("name") == "Bake")
    assert '--image "$IMAGE"' in run and '--json > "results/bake-$IMAGE.json"' in run
    gather = jobs["gather"]
    assert gather["needs"] == ["plan", "bake"] and gather["if"].startswith("always() && ")
    assert "needs.plan.result == 'success'" in gather["if"]
    download = next(s for s in gather["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"] == {"pattern": "bakehouse-nightly-*", "path": "nightly",
                                "merge-multiple": True}  # fmt: skip
    run = next(s["run"] for s in gather["steps"] if s.get("name") == "Nightly")
    assert run == "./run invoke nightly --gather nightly --target aws --report reports"
