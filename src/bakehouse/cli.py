"""The command layer: the invoke task collection (``invoke --list`` at the project root) and the
``bakehouse`` program over it. Every task parses its flags, calls one lifecycle function and
prints its result through :mod:`bakehouse.output`; flags, errors and exit codes are handled
the same way for all of them (:mod:`bakehouse.command`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke.collection import Collection

from bakehouse import __version__
from bakehouse import command as cmd
from bakehouse.command import command
from bakehouse.program import BakehouseProgram, broken_pipe_quietly

Flags = list[str] | None


# ---- images.* ------------------------------------------------------------------------------------


@command("list")
def images_list(
    c: Any, target: str = "local", json: bool = False, profile: str | None = None
) -> None:
    """List the image definitions with each one's newest bake and channels on a target."""
    from bakehouse import output as out
    from bakehouse.lifecycle import definitions, history

    project = cmd.project()
    rows = history.list_images(definitions.catalog(project), cmd.target(project, target, profile))
    out.show(rows, json, out.images)


@command("show")
def images_show(c: Any, image: str | None = None, json: bool = False) -> None:
    """Show an image's fully resolved definition: defaults and extends merged, validated."""
    from bakehouse import output as out

    out.show(cmd.spec(cmd.project(), image), json, out.definition)


@command("history")
def images_history(
    c: Any,
    image: str | None = None,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
) -> None:
    """Every baked version of an image on a target, its channels, revocations and rolls."""
    from bakehouse import output as out
    from bakehouse.lifecycle.history import history

    project = cmd.project()
    out.show(
        history(cmd.target(project, target, profile), cmd.spec(project, image)), json, out.history
    )


@command("diff")
def images_diff(
    c: Any,
    image: str | None = None,
    old: str | None = None,
    new: str | None = None,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
) -> None:
    """Packages added, removed and upgraded between two versions of an image."""
    from bakehouse import output as out
    from bakehouse.lifecycle.history import diff

    project = cmd.project()
    chosen = cmd.target(project, target, profile)
    out.show(diff(project, chosen, cmd.spec(project, image), old, new), json, out.diff)


# ---- definitions ---------------------------------------------------------------------------------


@command()
def render(c: Any, image: str | None = None, target: str | None = None, json: bool = False) -> None:
    """Render Packer templates (HCL2) for image × target into build/<image>/<target>.pkr.hcl."""
    from bakehouse import output as out
    from bakehouse.lifecycle import definitions

    project = cmd.project()
    out.show(definitions.render_images(project, image, target), json, out.rendered)


@command()
def validate(
    c: Any,
    image: str | None = None,
    target: str | None = None,
    packer: bool = True,
    json: bool = False,
) -> None:
    """Validate image definitions and the Packer templates rendered from them."""
    from bakehouse import output as out
    from bakehouse.lifecycle import definitions

    results = definitions.validate_images(cmd.project(), image, target, with_packer=packer)
    out.show(results, json, out.validation)
    out.exit_for(results)


# ---- the lifecycle -------------------------------------------------------------------------------


@command()
def bake(
    c: Any,
    image: str | None = None,
    target: str = "local",
    channel: Flags = None,
    no_publish: bool = False,
    no_verify: bool = False,
    rebuild_base: bool = False,
    keep_run: bool = False,
    keep_on_failure: bool = False,
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
    runner_cidr: str | None = None,
    wide_runner_cidr: bool = False,
) -> None:
    """Bake a patched, hardened image, boot it, prove it with tests/hardening, publish it.

    local: base → accelerator → indexes → host patch → packer (qemu) → verify (snapshot boot)
    → record → publish. aws: owner-pinned base AMI → build instance (IMDSv2, encrypted) →
    packer → AMIs tagged as made, in every region → verify on a fresh instance → record (S3,
    tags) → publish (SSM). Ctrl-C leaves nothing."""
    from bakehouse import output as out
    from bakehouse.lifecycle.bake import bake as run
    from bakehouse.targets.base import BakeRequest

    project = cmd.project()
    spec = cmd.spec(project, image)
    request = BakeRequest(
        not no_publish,
        tuple(channel or ()),
        not no_verify,
        keep_run,
        rebuild_base,
        keep_on_failure=keep_on_failure,
    )
    chosen = cmd.target(project, target, profile, region, runner_cidr, wide_runner_cidr)
    out.show(run(project, spec, chosen, request), json, out.bake)


@command()
def verify(
    c: Any,
    image: str | None = None,
    version: str | None = None,
    base: bool = False,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
    runner_cidr: str | None = None,
    wide_runner_cidr: bool = False,
) -> None:
    """Boot a baked image (or its base) without changing it and run tests/hardening against it.

    Exits 1 naming the failing controls; records nothing. --base shows what hardening fixes."""
    from bakehouse import output as out
    from bakehouse.lifecycle.verify import verify as run

    project = cmd.project()
    chosen = cmd.target(project, target, profile, region, runner_cidr, wide_runner_cidr)
    result = run(project, chosen, cmd.spec(project, image), version, base)
    out.show(result, json, out.verify)
    cmd.fail_unless(result.ok)


@command()
def shell(
    c: Any,
    image: str | None = None,
    version: str | None = None,
    base: bool = False,
    command: str | None = None,
    target: str = "local",
) -> None:
    """Boot an image (or its base) without changing it and open a shell in it over SSH.

    local: a snapshot boot with a key made for this session; the VM stops when the shell
    ends. --command runs one command instead and exits with its status."""
    from bakehouse.lifecycle.verify import shell as run

    project = cmd.project()
    chosen = cmd.target(project, target)
    cmd.fail_with(run(project, chosen, cmd.spec(project, image), version, base, command))


@command()
def publish(
    c: Any,
    image: str | None = None,
    channel: Flags = None,
    version: str | None = None,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
) -> None:
    """Point channels at a verified image, without a bake (e.g. promote latest to stable).

    aws: the channels' SSM parameters in every region, sharing as the definition says, the AMIs
    tagged published; an AMI whose own state tag is not verified is refused."""
    from bakehouse import output as out
    from bakehouse.lifecycle.channels import publish as run

    project = cmd.project()
    chosen = cmd.target(project, target, profile, region)
    out.show(run(chosen, cmd.spec(project, image), list(channel or []), version), json, out.publish)


@command()
def revoke(
    c: Any,
    image: str | None = None,
    version: str | None = None,
    reason: str = "",
    dry_run: bool = False,
    base: bool = False,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
) -> None:
    """Take a bad image back: mark it revoked, move its channels back, never roll it again.

    Each channel on it moves back to the newest earlier verified version (or goes); aws: the
    AMIs are tagged revoked and deprecated now. Nightly rebakes what is revoked."""
    from bakehouse import output as out
    from bakehouse.lifecycle.channels import revoke as run

    project = cmd.project()
    chosen = cmd.target(project, target, profile, region)
    out.show(
        run(chosen, cmd.spec(project, image), version, reason, dry_run, base), json, out.revoke
    )


@command()
def roll(
    c: Any,
    image: str | None = None,
    channel: str | None = None,
    dry_run: bool = False,
    wait: bool = False,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
) -> None:
    """Move the image's fleet onto a published image; roll back on failure.

    aws: a new launch template version (only ImageId changed, IMDSv2 kept), an instance refresh
    pinned to it, a canary group first, a watch with a deadline, a rollback on failure,
    timeout or Ctrl-C. A revoked or unpublished image is never rolled out."""
    from bakehouse import output as out
    from bakehouse.lifecycle.roll import roll as run

    project = cmd.project()
    chosen = cmd.target(project, target, profile, region)
    result = run(chosen, cmd.spec(project, image), channel, dry_run=dry_run, wait=wait, say=cmd.say)
    out.show(result, json, out.roll)
    cmd.fail_unless(result.ok)


@command()
def deploy(
    c: Any,
    image: str | None = None,
    channel: str | None = None,
    fresh: bool = False,
    report: str | None = None,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
    runner_cidr: str | None = None,
    wide_runner_cidr: bool = False,
) -> None:
    """The deploy-time step: decide → bake, verify, publish → roll — one declared sequence.

    aws: every deploy bakes from the freshly resolved base AMI. local: an image with nothing
    new is not baked again (unless --fresh); the newest verified one is published."""
    from bakehouse import output as out
    from bakehouse.lifecycle.deploy import deploy as run

    project = cmd.project()
    chosen = cmd.target(project, target, profile, region, runner_cidr, wide_runner_cidr)
    folder = Path(report) if report else None
    out.show(
        run(project, chosen, cmd.spec(project, image), channel, fresh, folder), json, out.deploy
    )


@command()
def nightly(
    c: Any,
    image: Flags = None,
    force: Flags = None,
    dry_run: bool = False,
    plan: bool = False,
    gather: str | None = None,
    shard: str | None = None,
    workers: int = 0,
    channel: Flags = None,
    report: str | None = None,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
    runner_cidr: str | None = None,
    wide_runner_cidr: bool = False,
) -> None:
    """Rebake exactly the images that need it (new patches, changed inputs), in parallel.

    Per image: up to date / inputs changed / N pending updates (M security) / base changed or
    revoked / last bake failed / newest revoked / too old / forced. Exits 1 if any bake failed.
    On aws the decision reads what the account holds, so any runner decides the same. On a CI
    engine: --plan (a matrix), a `bake` job per image, --gather; or a --shard per runner."""
    from bakehouse import output as out
    from bakehouse.lifecycle import definitions
    from bakehouse.lifecycle import nightly as lc

    project, folder = cmd.project(), Path(report) if report else None
    chosen = cmd.target(project, target, profile, region, runner_cidr, wide_runner_cidr)
    if gather:  # the last job of a fanned-out nightly: one report, exit 1 if a bake failed
        out.show(done := lc.gather(Path(gather), chosen, folder), json, out.nightly)
        return cmd.fail_unless(done.ok)
    specs = [cmd.spec(project, n) for n in definitions.shard(project, image, shard)]
    forced, todo = set(force or []), list(channel or [])
    if plan:  # the first: what to bake, as a CI matrix (no bake)
        return out.show(lc.plan_bakes(project, chosen, specs, forced, folder), json, out.plan)
    opts = {"workers": workers, "channels": todo, "report": folder, "dry_run": dry_run}
    out.show(result := lc.nightly(project, chosen, specs, forced=forced, **opts), json, out.nightly)  # type: ignore[arg-type]
    cmd.fail_unless(result.ok)


# ---- housekeeping --------------------------------------------------------------------------------


@command()
def prune(
    c: Any,
    image: str | None = None,
    yes: bool = False,
    target: str = "local",
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
) -> None:
    """Remove old images by retention; never one in use. Dry-run unless --yes.

    Keeps the N newest verified versions and every version younger than the minimum age or in
    use (a channel; on aws also a launch template version, group or instance); says why."""
    from bakehouse import output as out
    from bakehouse.lifecycle.housekeeping import prune as run

    project = cmd.project()
    chosen = cmd.target(project, target, profile, region)
    out.show(run(chosen, cmd.spec(project, image), yes), json, out.prune)


@command()
def gc(
    c: Any,
    yes: bool = False,
    target: str = "local",
    older_than: int = 6,
    keep_failed: int = 5,
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
) -> None:
    """Find what killed runs left behind, and old failed runs' logs; --yes removes it.

    Every target: folders, Packer and VMs of runs whose process is gone, and the folders failed
    runs kept for their logs, but the newest --keep-failed. aws: also instances, key pairs,
    groups, volumes, snapshots and unverified AMIs of finished runs."""
    from bakehouse import output as out
    from bakehouse.lifecycle import definitions
    from bakehouse.lifecycle.housekeeping import gc as run

    project = cmd.project()
    specs = definitions.catalog(project).load_all()
    out.show(
        run(cmd.target(project, target, profile, region), specs, yes, older_than, keep_failed),
        json,
        out.gc,
    )


@command()
def base(
    c: Any,
    image: str | None = None,
    rebuild: bool = False,
    target: str = "local",
    profile: str | None = None,
) -> None:
    """Build (local: mmdebstrap, cached) or resolve (aws: owner-pinned AMI) an image's base."""
    from bakehouse.lifecycle.base import base as run

    project = cmd.project()
    cmd.show(run(project, cmd.target(project, target, profile), cmd.spec(project, image), rebuild))


@command()
def trust(c: Any, yes: bool = False, json: bool = False) -> None:
    """List what in the state folder this machine's trust key has not sealed; --yes seals it.

    Records, channels, roll records and cached package indexes are sealed with a key kept
    outside the folder (BAKEHOUSE_TRUST_KEY, or ~/.config/bakehouse/trust.key) and not used
    unless they verify. Seal a folder only after checking it (moved from another machine,
    restored from a backup you trust); an untrusted cache is better built again."""
    from bakehouse import output as out
    from bakehouse.trust import adopt

    out.show(adopt(cmd.project().state_dir, yes), json, out.trust)


@command()
def report(
    c: Any,
    image: Flags = None,
    target: Flags = None,
    out: str | None = None,
    runs: Flags = None,
    pending: bool = True,
    open: bool = False,
    json: bool = False,
    profile: str | None = None,
    region: Flags = None,
) -> None:
    """Write the report site: static pages of every image, version, control and run."""
    from bakehouse import output as output_
    from bakehouse.site import build

    project = cmd.project()
    chosen = [cmd.target(project, t, profile, region) for t in dict.fromkeys(target or ["local"])]
    folder = Path(out) if out else project.root / "build" / "site"
    roots = [Path(r) for r in runs] if runs else None
    found = build(project, chosen, folder, roots, images=image, pending=pending, open_browser=open)
    output_.show(found, json, output_.site)


images = Collection("images", images_list, images_show, images_history, images_diff)
lifecycle = (render, validate, bake, verify, shell, base, publish, revoke, nightly, deploy, roll)
ns = Collection(*lifecycle, prune, gc, trust, report, images)
ns.configure({"run": {"echo": False}})

program = BakehouseProgram(namespace=ns, version=__version__, name="bakehouse", binary="bakehouse")


def main() -> None:
    broken_pipe_quietly(program.run)
