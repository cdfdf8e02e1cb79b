"""The navigation per role: what each person works with, in the order of their day; the public
product records last for everyone, signed out too."""

from __future__ import annotations

from dataclasses import dataclass

RECORDS = ("Records", "/public/records")  # public: no account needed
NAV: dict[str, tuple[tuple[str, str], ...]] = {
    "engineer": (("Benches", "/bench"), ("Queue", "/queue"), ("Runs", "/runs"), ("Bookings", "/bookings"),
                 ("Reports", "/reports"), RECORDS),
    "manufacturer": (("Products", "/products"), ("Bookings", "/bookings"), ("Reports", "/reports"), RECORDS),
    "certifier": (("Reports", "/reports"), RECORDS),
    "": (RECORDS,),  # signed out
}


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool  # the page shown is this section (aria-current="page")


def nav_for(role: str | None, path: str) -> list[NavItem]:
    """The role's sections, the one holding `path` marked current."""
    return [NavItem(label, url, path == url or path.startswith(url + "/")) for label, url in NAV.get(role or "", ())]


def home_for(role: str) -> str:
    """The role's first page, where `/` and a sign-in without `next` lead."""
    items = NAV.get(role)
    return items[0][1] if items else "/account"
