"""The chain-facing half of the node: listeners, proof service, submitters, the CLI."""
