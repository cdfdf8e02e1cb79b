"""The booking API (FastAPI): manufacturers book tests, lab engineers run them, certifiers review.

`create_app(settings)` builds the app; nothing connects at import time. `certlab serve` runs it
under uvicorn. Everything is versioned under /api/v1.
"""
