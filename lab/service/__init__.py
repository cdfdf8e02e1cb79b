"""The product's associated service (cloud / companion-app API) as the lab drives it.

Driven only by what the IXIT's `associated_service` documents (operations, JSON pointers, which
setting or consent each operation reads and writes), so the same client meets a real product's
API. Pure parts (`api`: placeholders, pointers, redaction; `records`: judging dated records) are
unit-tested without a network; `client` sends through lab/web/fetch.py, the lab's one HTTP layer.
"""
