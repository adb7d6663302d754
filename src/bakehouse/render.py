"""Pure rendering: ImageSpec + target + Packer version → HCL2 template text.

Nothing here runs a process or touches the network. Every ``{{ }}`` in a template must go
through the ``hcl`` filter (or produce :class:`~bakehouse.hcl.Hcl` some other way): the
environment's ``finalize`` refuses any other value, so a template cannot splice user text.
Run-specific values (run id, base image path, version) are Packer variables, so the rendered
text depends only on the definition and is stable enough to pin in golden files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bakehouse import hcl, layout, targets
from bakehouse.errors import RenderError
from bakehouse.spec import ImageSpec
from bakehouse.vm import KERNEL_ARGS, SANDBOX, TCG_CPU

# The fixed provisioning sequence, shared by both targets; an image's own ``provision`` steps
# run between the package install and hardening. Order is data, not code.
PRE_STEPS = ("patch.sh", "packages.sh")
POST_STEPS = ("harden.sh", "manifest.sh")
FINAL_STEPS = ("hostkeys.sh", "cleanup.sh", "filesystems.sh")
MANIFEST_PATH = "/var/lib/bakehouse/manifest.json"
# The local chroot build runs each script (packer/local/in-root.sh) in namespaces of its own:
# its mounts vanish with it, and it sees only its own processes; killed with its parent.
CHROOT_ARGV = (
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--pid",
    "--fork",
    "--kill-child",
    "--ipc",
    "--uts",
    "--",
    "/bin/sh",
)


@dataclass(frozen=True)
class PackerVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> PackerVersion:
        core = text.strip().removeprefix("Packer").strip().removeprefix("v").split()[0]
        parts = [*core.split("-")[0].split("."), "0", "0"][:3]
        try:
            return cls(*(int(p) for p in parts))
        except ValueError:
            raise RenderError(f"cannot read the Packer version from {text!r}") from None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def plugins(self) -> bool:
        """Packer ≥ 1.7 has external plugins (``required_plugins``, ``packer init``) and the
        split-out builders with newer options such as ``metadata_options``."""
        return (self.major, self.minor) >= (1, 7)


DEFAULT_PACKER = PackerVersion(1, 6, 6)


def _finalize(value: Any) -> Any:
    if isinstance(value, hcl.Hcl):
        return value
    if value is None or value == "":
        return ""
    raise RenderError(
        f"template printed an unescaped value {value!r}",
        "templates must pass every value through the |hcl filter",
    )


@functools.lru_cache(maxsize=8)
def environment(packer_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(  # nosec B701
        loader=jinja2.FileSystemLoader(str(packer_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 (HCL, not HTML: finalize enforces escaping)
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["hcl"] = hcl.literal
    env.globals["raw"] = hcl.raw
    return env


def security_source(spec: ImageSpec) -> str:
    (line,) = [s for s in spec.base.local.apt_sources(spec.base.arch) if "-security " in s]
    return line


def context(spec: ImageSpec, target: str, packer: PackerVersion) -> dict[str, Any]:
    """Everything a template may use, already shaped for HCL."""
    env_vars = [
        f"BAKEHOUSE_IMAGE={spec.name}",
        f"BAKEHOUSE_TARGET={target}",
        f"BAKEHOUSE_PATCH_POLICY={spec.patch.policy}",
        f"BAKEHOUSE_PACKAGES={' '.join(spec.packages)}",
        f"BAKEHOUSE_SUITE={spec.base.local.suite}",
        # the release's security suite as an apt line, for images whose sources lack it
        f"BAKEHOUSE_SECURITY_SOURCE={security_source(spec)}",
        f"BAKEHOUSE_MANIFEST={MANIFEST_PATH}",
        f"BAKEHOUSE_FILESYSTEMS={layout.env_value()}",
    ]
    # each provision step runs on its own with bakehouse's variables and its own env only;
    # bakehouse's steps never see a definition's env
    steps = [
        *((s, env_vars) for s in PRE_STEPS),
        *(
            (st.script, [*env_vars, *(f"{k}={v}" for k, v in sorted(st.env))])
            for st in spec.provision
        ),
        *((s, env_vars) for s in POST_STEPS),
    ]
    return {
        "spec": spec,
        "target": target,
        "packer": packer,
        "provisioners": _grouped(steps),
        # the local chroot build: the package steps with this machine's network, every later
        # step in a network namespace of its own (nothing it does reaches this machine's)
        "chroot_online": _grouped(steps[: len(PRE_STEPS)]),
        "chroot_offline": _grouped(steps[len(PRE_STEPS) :]),
        "chroot_argv_offline": [*CHROOT_ARGV[:1], "--net", *CHROOT_ARGV[1:]],
        "final_steps": list(FINAL_STEPS),
        # the local chroot build lays the data disk out on the host instead (chroot.py)
        "chroot_final_steps": [s for s in FINAL_STEPS if s != "filesystems.sh"],
        "chroot_argv": list(CHROOT_ARGV),
        "sandbox": SANDBOX,
        "kernel_args": KERNEL_ARGS,
        "tcg_cpu": TCG_CPU,
        "env_vars": env_vars,
        "manifest_path": MANIFEST_PATH,
    }


def _grouped(steps: list[tuple[str, list[str]]]) -> list[dict[str, list[str]]]:
    """Consecutive steps with the same environment as one provisioner."""
    groups: list[dict[str, list[str]]] = []
    for script, env in steps:
        if groups and groups[-1]["env"] == env:
            groups[-1]["scripts"].append(script)
        else:
            groups.append({"scripts": [script], "env": env})
    return groups


def render(
    spec: ImageSpec, target: str, packer_dir: Path, packer: PackerVersion = DEFAULT_PACKER
) -> str:
    targets.check(target)
    try:
        template = environment(packer_dir).get_template(f"{target}.pkr.hcl.j2")
        text = template.render(context(spec, target, packer))
    except jinja2.TemplateNotFound as exc:
        raise RenderError(
            f"template not found: packer/{exc.name}", "run from the project root"
        ) from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"packer/{target}.pkr.hcl.j2: {exc}") from None
    return hcl.align(text)


def output_path(build_dir: Path, spec: ImageSpec, target: str) -> Path:
    return build_dir / spec.name / f"{target}.pkr.hcl"


def write(text: str, path: Path) -> bool:
    """Write ``text`` atomically; returns whether the file changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True
