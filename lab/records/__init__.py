"""Product records: what the lab keeps about a certified product after the certificate.

Per certified model, an append-only chain of revisions, each the whole record (certifying
reports, support period, vulnerability contact, firmware releases with their SBOM, security
advisories, re-test verdict deltas), signed with the lab key and chained by hash, so anyone can
read it and nobody can quietly rewrite it. This package is the pure logic (no store, no web):
chain (hash, sign, verify), sbom (CycloneDX), csaf (CSAF 2.0), delta (re-test vs baseline),
record (the document and its headline figures). lab/actions/records.py keeps the chain in the
store and starts the re-tests.
"""
