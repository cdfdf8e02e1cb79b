"""The manufacturer's web presence as the lab reads it: one bounded HTTP layer (fetch), the lab's
own path check (path), RFC 9116 security.txt (securitytxt) and what a page says (pages)."""
