"""Critical security parameters as the lab finds them (EN 303 645 5.4): secrets at rest, shared keys.

Pure logic plus one bounded SSH handshake helper, no fixtures: `storage` searches what the lab
read from a device's persistent storage for secrets the lab knows, and judges file modes;
`keys` fetches a device's SSH host keys (handshake only, no login), scans release images for
private keys and compares host keys across samples. Unit-tested in tests/test_csp_*.py.
"""
