"""`certlab users add|list|revoke` and `certlab serve`: accounts of the booking API and the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from lab.api.settings import ApiSettings
    from lab.sim.lab import SimLab

users_app = typer.Typer(no_args_is_help=True, help="Accounts of the booking API (one bearer token each).")
out = Console()


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="the user's name (unique)")],
    role: Annotated[str, typer.Option("--role", help="manufacturer, engineer or certifier")],
    org: Annotated[str, typer.Option("--org", help="the user's organisation (made on first use)")],
) -> None:
    """Add a user; its API token is printed once, as the last line, and only its hash is kept."""
    from lab.store import open_store
    from lab.store.accounts import add_user

    with open_store() as store:
        user, token = add_user(store, name=name, role=role, org=org)
    out.print(f"user {escape(user.name)} ({user.role}, organisation {escape(org)}) added; its API token "
              f"(shown once, keep it secret):", highlight=False)
    print(token)


@users_app.command("revoke")
def users_revoke(name: Annotated[str, typer.Argument(help="the user whose token ends now")]) -> None:
    """End a user's token at once (the user and its history stay)."""
    from lab.store import open_store
    from lab.store.accounts import revoke_user

    with open_store() as store:
        user = revoke_user(store, name)
    out.print(f"user {escape(user.name)}: token revoked", highlight=False)


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="the user who signs in to the web app with this password")],
    stdin: Annotated[bool, typer.Option("--stdin", help="read the password once from standard input "
                                        "(scripts); without it, it is asked twice on the terminal")] = False,
) -> None:
    """Set a user's password for the web app (`certlab serve`); the API keeps using the token."""
    import getpass
    import sys

    from lab.errors import CertlabError
    from lab.store import open_store
    from lab.store.accounts import check_new_password, set_password

    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise CertlabError("no terminal to ask the password on; fix: pipe it in with --stdin")
        password = getpass.getpass(f"new password for {name}: ")
        check_new_password(password)
        if getpass.getpass("the same password again: ") != password:
            raise CertlabError("the two passwords differ; fix: run it again and type the same password twice")
    check_new_password(password)  # before the store is opened: a bad password changes nothing
    with open_store() as store:
        user = set_password(store, name, password)
    out.print(f"user {escape(user.name)}: web password set; sign in at the address `certlab serve` prints",
              highlight=False)


@users_app.command("list")
def users_list() -> None:
    """Users, their role, organisation and whether their token is live."""
    from lab.store import open_store
    from lab.store.accounts import users

    table = Table()
    for col in ("user", "role", "organisation", "since", "token"):
        table.add_column(col)
    with open_store() as store:
        for u in users(store):
            table.add_row(u.name, u.role, u.org.name, u.created_at.strftime("%Y-%m-%d"),
                          "revoked" if u.revoked_at else "live")
    out.print(table)


def web_address(host: str, port: int) -> str:
    """The address a browser opens: a wildcard listen address becomes this machine's name."""
    import socket

    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8303,
    inventory: Annotated[Optional[Path], typer.Option("--inventory", "-i", help="the lab's inventory: benches "
                                                      "give slot capacity and run the booked tests (default: $CERTLAB_INVENTORY)")] = None,
    reports_dir: Annotated[Optional[Path], typer.Option("--reports", help="where runs write their "
                                                        "directories (default: $CERTLAB_REPORTS_DIR or ./reports)")] = None,
    workers: Annotated[int, typer.Option("--workers", help="server processes sharing the port, about one per CPU "
                                         "(a worker that dies is restarted)")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="serve the shipped simulated lab, up while serving, with one "
                                       "account per role to sign in with (made by `certlab demo`, or here); "
                                       "implies --queue-worker")] = False,
    queue_worker: Annotated[bool, typer.Option("--queue-worker", help="also serve the queue of pending runs with "
                                               "this inventory's benches (`certlab queue work --follow` beside the "
                                               "server): product records' re-tests start unprompted")] = False,
) -> None:
    """Serve the booking API (uvicorn) at http://HOST:PORT/api/v1 (docs at /api/v1/docs) and the web app at http://HOST:PORT/."""
    import uvicorn

    from lab.api.listen import check_serve_options
    from lab.api.settings import ApiSettings
    from lab.errors import CertlabError
    from lab.inventory import load_inventory
    from lab import resources
    from lab.resources import inventory_path

    from lab.api.workers import APP_FACTORY, check_workers, hand_over, prepare

    check_workers(workers)
    if demo and inventory is not None:
        raise CertlabError("--demo serves the shipped simulated lab; fix: leave out -i, or leave out --demo")
    if demo:
        inventory = resources.sim_inventory()
    host = check_serve_options(host, port)  # before the store is opened: a bad option changes nothing
    settings = ApiSettings.from_env(inventory=inventory, reports_dir=reports_dir)
    if settings.reports_dir.exists() and not settings.reports_dir.is_dir():
        raise CertlabError(f"--reports {settings.reports_dir}: not a directory; fix: give the folder runs write to")
    inventory_path(inventory)  # -i or CERTLAB_INVENTORY: never the sample lab by default
    load_inventory(settings.inventory)  # a bad inventory stops here, with its one-line error
    if workers == 1:
        from lab.api.app import create_app

        app = create_app(settings)
        store_url = app.state.services.store.url
    else:  # each worker builds its own app from the environment (lab/api/workers.py); migrated here, once
        store_url = prepare(settings)
        hand_over(settings, os.environ)
    shown = f"[{host}]" if ":" in host else host
    out.print(f"certlab booking API on http://{shown}:{port}/api/v1 (docs: /api/v1/docs); store "
              f"{escape(store_url)}" + (f"; {workers} worker processes" if workers > 1 else ""), highlight=False)
    out.print(f"certlab web app on {web_address(host, port)} (sign in with a password from `certlab users passwd "
              f"NAME`, or an API token)", highlight=False)
    lab = _demo_lab(settings, web_address(host, port)) if demo else None
    worker = None
    if demo or queue_worker:
        from lab.api.queueworker import QueueWorker

        worker = QueueWorker(settings.inventory, settings.data_dir, settings.database_url)
        worker.start()
        out.print(f"queue worker: certlab queue work --follow on this inventory's benches (log {worker.log})",
                  highlight=False)
    try:
        if workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        else:
            uvicorn.run(APP_FACTORY, factory=True, workers=workers, host=host, port=port, log_level="warning")
    finally:
        if worker is not None:
            with out.status("stopping the queue worker (its runs switch their benches off) ..."):
                worker.stop()
        if lab is not None:
            with out.status("stopping the simulated lab ..."):
                lab.down()


def _demo_lab(settings: ApiSettings, address: str) -> SimLab:
    """`serve --demo`: the demo accounts (and lab key) in the served store, and the simulated lab up."""
    from lab.inventory import load_inventory
    from lab.sim.lab import SimLab
    from lab.store import open_store
    from lab.webdemo import accounts_lines, ensure_demo_accounts, ensure_demo_key

    made = ensure_demo_key()
    if made:
        out.print(made, highlight=False)
    with open_store(settings.database_url) as store:
        accounts = ensure_demo_accounts(store, settings.data_dir)
    for line in accounts_lines(accounts, address):
        out.print(escape(line), highlight=False, soft_wrap=True)
    lab = SimLab(load_inventory(settings.inventory))
    with out.status("starting the simulated lab (it stays up while this serves) ..."):
        try:
            lab.up()
        except BaseException:
            lab.down()  # half up (a namespace, some daemons) is never left behind
            raise
    return lab
