"""The web app: server-rendered pages for engineers, manufacturers and certifiers, served by the
same FastAPI app as the API (pages at `/`, the API under `/api/v1`), calling the same actions.

Core (this package): `session` (store-kept sessions), `guard` (session -> caller, CSRF), `deps`
(`Viewer`, role gates), `render` (`page`, `see_other`, `form_errors`), `nav`, `errors`; page
modules live in `pages/`, one per area, each with `router = APIRouter(include_in_schema=False)`.
"""

from __future__ import annotations

from typing import Any

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'self'; form-action 'self'")


def install(app: Any) -> None:
    """What the pages need on the app: templates, the per-server web state, /static, the CSRF check
    on every route included after this (it passes /api/ paths), the login redirect and error pages."""
    from fastapi import Depends
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from lab.api.ratelimit import RateLimiter, rate_limit_file
    from lab.webui.deps import LoginRequired
    from lab.webui.errors import http_error, login_needed, server_error
    from lab.webui.guard import csrf_checked
    from lab.webui.render import make_templates, static_dir
    from lab.webui.session import LOGIN_BURST, LOGIN_PER_SECOND, WebCore

    app.state.templates = make_templates()
    settings = app.state.services.settings  # sign-in attempts: one budget for every worker of this server
    app.state.web = WebCore(login_limiter=RateLimiter(LOGIN_PER_SECOND, LOGIN_BURST,
                                                      rate_limit_file(settings.data_dir, "login")))
    app.router.dependencies.append(Depends(csrf_checked))  # every route included from now on: pages' POSTs
    app.add_exception_handler(LoginRequired, login_needed)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)  # then re-raised by Starlette, so it is logged
    app.mount("/static", StaticFiles(directory=str(static_dir())), name="static")
