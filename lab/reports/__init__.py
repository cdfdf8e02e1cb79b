"""Run reports and their integrity: the lab's signing key, signed manifests, `certlab verify`."""
