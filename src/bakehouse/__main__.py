"""`python -m bakehouse …`: the same task collection as `invoke` and `bakehouse`."""

from bakehouse.cli import main

main()
