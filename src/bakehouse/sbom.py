"""CycloneDX 1.5 SBOM of an image, from its package manifest: one component per installed
package, with its purl (``pkg:deb/<family>/<name>@<version>?arch=…&distro=<family>-<version>``),
and the image as the root component that depends on every package.

The document is written directly (packageurl-python builds and escapes the purls): a modelling
library took 0.3 s per image for what is a flat list, on every recorded version. The tests check
every document against the CycloneDX 1.5 JSON schema (cyclonedx-python-lib's strict validator)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

SCHEMA = "http://cyclonedx.org/schema/bom-1.5.schema.json"


def _property(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def document(
    manifest: dict[str, Any], image: str, version: str, family: str, distro: str
) -> dict[str, Any]:
    from packageurl import PackageURL

    root_ref = f"image:{image}@{version}"
    components: dict[str, dict[str, Any]] = {}
    for pkg in manifest["packages"]:
        name = pkg["name"].split(":")[0]
        qualifiers = {"arch": pkg["architecture"], "distro": distro}
        props = []
        if pkg.get("source") and pkg["source"] != name:
            qualifiers["upstream"] = pkg["source"]
            props.append(_property("debian:source", pkg["source"]))
        if pkg.get("source_version"):
            props.append(_property("debian:source_version", pkg["source_version"]))
        ref = f"{name}@{pkg['version']}:{pkg['architecture']}"
        purl = PackageURL(
            type="deb", namespace=family, name=name, version=pkg["version"], qualifiers=qualifiers
        )
        component: dict[str, Any] = {
            "bom-ref": ref,
            "name": name,
            "purl": purl.to_string(),
            "type": "library",
            "version": pkg["version"],
        }
        if props:
            component["properties"] = props
        components[ref] = component  # one entry per package, as a bom-ref must be unique
    order = sorted(components.values(), key=lambda c: (c["name"], c["version"], c["bom-ref"]))
    refs = [c["bom-ref"] for c in order]
    return {
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "component": {
                "bom-ref": root_ref,
                "name": f"bakehouse-{image}",
                "type": "operating-system",
                "version": version,
                "properties": [_property("bakehouse:kernel", str(manifest.get("kernel", "")))],
            },
        },
        "components": order,
        "dependencies": [{"ref": root_ref, "dependsOn": refs}, *({"ref": r} for r in refs)],
    }


def build(manifest: dict[str, Any], image: str, version: str, family: str, distro: str) -> str:
    return json.dumps(document(manifest, image, version, family, distro), indent=2)


def write(
    manifest: dict[str, Any], image: str, version: str, path: Path, family: str, distro: str
) -> Path:
    path.write_text(build(manifest, image, version, family, distro) + "\n")
    return path
