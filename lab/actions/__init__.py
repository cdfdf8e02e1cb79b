"""What a caller may do, one function per action: the one place for permission, tenancy and
validation, called by the API routes (lab/api) and the web pages (lab/webui) alike.

Actions take the `Services` and the `Caller`, return store rows or plain values and raise the
typed errors of `errors.py`; they never import FastAPI, so each front end maps an error its own
way (a JSON status in the API, a page or a message at a form's field in the web app).
"""
