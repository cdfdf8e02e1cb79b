"""Analysis of what a bench sees on the wire: flows, TLS and SSH handshakes, clear text, banners.

Pure logic (no pytest fixtures, no bench driving), so a parser bug shows in a unit test on a
small pcap (tests/data/) instead of in the network-namespace detection matrix. The EN 303 645
suites import it as an ordinary package.
"""
