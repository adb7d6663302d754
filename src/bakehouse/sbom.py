"""CycloneDX SBOM of an image, from its package manifest (cyclonedx-python-lib does the format,
validation and serialisation; one component per installed package, with its purl:
``pkg:deb/<family>/<name>@<version>?arch=…&distro=<family>-<version>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build(manifest: dict[str, Any], image: str, version: str, family: str, distro: str) -> str:
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL

    bom = Bom()
    root = bom.metadata.component = Component(
        name=f"bakehouse-{image}",
        version=version,
        type=ComponentType.OPERATING_SYSTEM,
        bom_ref=f"image:{image}@{version}",
        properties=[Property(name="bakehouse:kernel", value=str(manifest.get("kernel", "")))],
    )
    for pkg in manifest["packages"]:
        name = pkg["name"].split(":")[0]
        qualifiers = {"arch": pkg["architecture"], "distro": distro}
        props = []
        if pkg.get("source") and pkg["source"] != name:
            qualifiers["upstream"] = pkg["source"]
            props.append(Property(name="debian:source", value=pkg["source"]))
        if pkg.get("source_version"):
            props.append(Property(name="debian:source_version", value=pkg["source_version"]))
        purl = PackageURL(
            type="deb", namespace=family, name=name, version=pkg["version"], qualifiers=qualifiers
        )
        bom.components.add(
            Component(
                name=name,
                version=pkg["version"],
                type=ComponentType.LIBRARY,
                bom_ref=f"{name}@{pkg['version']}:{pkg['architecture']}",
                purl=purl,
                properties=props,
            )
        )
    bom.register_dependency(root, list(bom.components))
    return str(JsonV1Dot5(bom).output_as_string(indent=2))


def write(
    manifest: dict[str, Any], image: str, version: str, path: Path, family: str, distro: str
) -> Path:
    path.write_text(build(manifest, image, version, family, distro) + "\n")
    return path
