"""The ``bakehouse`` console script: the same task collection as ``invoke`` at the project root,
usable from any folder (the project is found from BAKEHOUSE_ROOT, the working directory, or the
source tree bakehouse is installed from)."""

from __future__ import annotations

from invoke.program import Program

from bakehouse import __version__
from bakehouse.tasks import ns

program = Program(namespace=ns, version=__version__, name="bakehouse", binary="bakehouse")


def main() -> None:
    program.run()
