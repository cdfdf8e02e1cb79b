"""The web app as its users see it: `certlab serve` in its own process and a real Chromium driving it.

Test helpers of the browser tests (tests/test_webapp_browser.py): `served_app` starts `certlab
serve` on loopback at a free port with a private store, data, reports and key folder and users of
each role (API tokens; passwords through `certlab users passwd NAME --stdin`); `chromium` is the
distribution's headless Chromium through its ChromeDriver with the console log captured, Selenium
Manager kept offline (as tests/test_report_browser.py does); `Pages` drives both: log in as a
user, open a page, and on every page shown check the console (no SEVERE entry), run axe-core (the
pinned tools/axe copy, injected with execute_script: WebDriver's script evaluation is not subject
to the page's Content-Security-Policy) at desktop and narrow width, and take the screenshots
(docs/img/webapp-<role>-<page>.png with CERTLAB_SCREENSHOTS=1, else the test's tmp folder).
`lab_up` brings a private simulated lab up with `certlab lab up` under the shared e2e lock and
down again. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from chromium import headless_chromium  # tests/chromium.py

ROOT = Path(__file__).resolve().parent.parent
AXE_JS = ROOT / "tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
PROFILE = ROOT / "inventory" / "lab-profile.yaml"
E2E_LOCK = Path("/tmp/certlab-e2e.lock")  # one simulated lab at a time on this machine
WAIT_S = 20.0  # bound on every wait for a page or an element
PAGE_S = 150.0  # bound on one page load: making a report (Allure, PDF) answers after it is done
START_S = 60.0  # `certlab serve` answering, `certlab lab up`
LOCK_S = 480.0  # waiting for another simulated lab to go down
DESKTOP = (1280, 900)
NARROW = (390, 844)  # a phone held upright
BAD_IMPACTS = ("serious", "critical")
PASSWORD_LEN = 20


@dataclass(frozen=True)
class User:
    name: str
    role: str
    org: str
    token: str
    password: str


@dataclass
class Served:
    """A running `certlab serve`: where it answers and what it keeps."""

    base: str  # http://127.0.0.1:PORT (no trailing slash)
    folder: Path
    inventory: Path
    env: dict[str, str]
    users: dict[str, User]
    log: Path
    proc: subprocess.Popen

    @property
    def db(self) -> Path:
        return self.folder / "data" / "certlab.db"

    @property
    def reports(self) -> Path:
        return self.folder / "reports"

    def url(self, path: str) -> str:
        return self.base + path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def certlab(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 60) -> str:
    """The real command line in its own process: stdout; a failure fails the test with its stderr."""
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "certlab"), *args], env=env, input=stdin, text=True,
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"certlab {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-2000:]}", pytrace=False)
    return proc.stdout


def server_env(folder: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A private data dir (the SQLite store), reports dir and key folder; nothing of the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTLAB_")}
    env.update({"CERTLAB_DATA_DIR": str(folder / "data"), "CERTLAB_REPORTS_DIR": str(folder / "reports"),
                "CERTLAB_KEY_DIR": str(folder / "keys"), "CERTLAB_RATE_PER_SECOND": "100000",
                "CERTLAB_RATE_BURST": "100000"})
    env.update(extra or {})
    return env


def add_users(env: dict[str, str], wanted: list[tuple[str, str, str]]) -> dict[str, User]:
    """Users (name, role, org) with an API token and a password each. The first user's password is set
    as a lab sets it, `certlab users passwd NAME --stdin`; the others' in this process (each command
    line costs seconds of start-up)."""
    from lab.store import open_store
    from lab.store import accounts

    made: dict[str, User] = {}
    with open_store(env=env) as store:
        for i, (name, role, org) in enumerate(wanted):
            token = accounts.add_user(store, name=name, role=role, org=org)[1]
            password = hashlib.sha256(f"certlab-web-{name}".encode()).hexdigest()[:PASSWORD_LEN]
            if i:
                accounts.set_password(store, name, password)
            made[name] = User(name=name, role=role, org=org, token=token, password=password)
    first = made[wanted[0][0]]
    certlab(env, "users", "passwd", first.name, "--stdin", stdin=first.password + "\n")
    return made


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own loopback server
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group `proc` leads, SIGKILL after `grace` s."""
    for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
            return


@contextlib.contextmanager
def served_app(folder: Path, inventory: Path, users: list[tuple[str, str, str]],
               extra_env: dict[str, str] | None = None, serve_args: tuple[str, ...] = ()) -> Iterator[Served]:
    """`certlab serve -i inventory [serve_args]` on 127.0.0.1 at a free port, with `users` and signing keys made first."""
    folder.mkdir(parents=True, exist_ok=True)
    env = server_env(folder, extra_env)
    from lab.reports.keys import init_keys

    init_keys(folder / "keys")
    made = add_users(env, users)
    log = folder / "serve.log"
    for _attempt in range(3):  # the free port may be taken between our probe and uvicorn's bind
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "certlab"), "serve", "-i", str(inventory),
                                     "--host", "127.0.0.1", "--port", str(port), *serve_args], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_S
        while proc.poll() is None and time.monotonic() < deadline and not _answers(base + "/api/v1/health"):
            time.sleep(0.2)
        if proc.poll() is None and _answers(base + "/api/v1/health"):
            break
        stop(proc)
    else:
        pytest.fail(f"certlab serve did not answer within {START_S:g} s:\n{log.read_text(errors='replace')[-3000:]}",
                    pytrace=False)
    served = Served(base=base, folder=folder, inventory=inventory, env=env, users=made, log=log, proc=proc)
    try:
        yield served
    finally:
        stop(proc)


def private_inventory(folder: Path, lab: str, *, scpi_port: int, subnet: int, ssh_base_port: int) -> Path:
    """One simulated TH-100 bench of a lab of the test's own (name, ports, subnet), naming the lab profile."""
    from lab.sim.genlab import write_sim_inventory
    from lab.sim.netns import unavailable_reason

    path = write_sim_inventory(folder, lab, 1, scpi_port=scpi_port, subnet=subnet,
                               netns=unavailable_reason() is None, ssh_base_port=ssh_base_port)
    doc = yaml.safe_load(path.read_text())
    doc["all"]["vars"]["certlab"]["lab_profile"] = str(PROFILE)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextlib.contextmanager
def e2e_lock(timeout: float = LOCK_S) -> Iterator[None]:
    """The machine's one-simulated-lab-at-a-time lock, waited for at most `timeout` s."""
    with E2E_LOCK.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{E2E_LOCK} held by another simulated lab for {timeout:g} s", pytrace=False)
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def lab_up(env: dict[str, str], inventory: Path, log: Path) -> Iterator[Path]:
    """`certlab lab up` under the e2e lock for a `with` block, `certlab lab down` after it, whatever happens."""
    cli = str(ROOT / ".venv" / "bin" / "certlab")
    with e2e_lock(), log.open("ab") as out:
        try:
            up = subprocess.run([cli, "lab", "up", "-i", str(inventory)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, timeout=START_S * 2)
            if up.returncode != 0:
                pytest.fail(f"certlab lab up: exit {up.returncode}\n{log.read_text(errors='replace')[-3000:]}",
                            pytrace=False)
            yield inventory
        finally:
            subprocess.run([cli, "lab", "down", "-i", str(inventory)], env=env, stdout=out,
                           stderr=subprocess.STDOUT, timeout=START_S * 2)


# --- the browser ------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium through the packaged ChromeDriver, axe-core at hand; missing packages fail (CI installs them)."""
    with headless_chromium(size=DESKTOP, page_timeout=PAGE_S, script_timeout=WAIT_S, needs=(AXE_JS,),
                           args=("--no-first-run", "--disable-extensions", "--disable-background-networking",
                                 "--disable-component-update", "--disable-sync",
                                 "--disable-features=Translate,OptimizationHints,MediaRouter")) as driver:
        yield driver


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, f"{what}: not within {timeout:g} s")


def axe_violations(driver: Any, source: str) -> list[str]:
    """axe-core's serious and critical violations on the page shown: rule, node and help, one per line."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(source)
        assert driver.execute_script("return typeof window.axe === 'object'"), \
            "axe-core did not load into the page (blocked by its Content-Security-Policy?)"
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done({ok: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\\n').join(' '))}))}))"
        ".catch(e => done({error: String(e)}));")
    assert "error" not in result, f"axe-core failed: {result['error']}"
    return [f"{v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"][:5])
            for v in result["ok"] if v["impact"] in BAD_IMPACTS]


@dataclass(frozen=True)
class Shown:
    role: str
    name: str
    url: str


@dataclass
class Pages:
    """One browser over one served app: log in, open pages, check each page shown."""

    driver: Any
    served: Served
    shots: Path  # where screenshots go (docs/img/ or a tmp folder)
    harmless: tuple[str, ...] = ()  # console messages expected on purpose (a 403/404 page's own status)
    seen: list[Shown] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # console errors and axe violations, all pages
    _axe: str = ""

    def assert_clean(self) -> None:
        """Every page shown had no console error and no serious or critical axe-core violation."""
        assert not self.findings, f"{len(self.findings)} page(s) with problems:\n" + "\n".join(self.findings)

    def el(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def els(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.el("body").text

    def path(self) -> str:
        url = self.driver.current_url
        return url[len(self.served.base):] if url.startswith(self.served.base) else url

    def go(self, path: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} GET {path}", flush=True)
        self.driver.get(self.served.url(path))
        self.ready()

    def ready(self) -> None:
        wait_for(self.driver, lambda d: d.execute_script("return document.readyState") == "complete",
                 f"{self.driver.current_url} loaded")

    def console_errors(self, harmless: tuple[str, ...] = ()) -> list[str]:
        """SEVERE console entries since the last call, less the harmless ones named."""
        return [e["message"] for e in self.driver.get_log("browser")
                if e.get("level") == "SEVERE" and not any(h in e["message"] for h in self.harmless + harmless)]

    def field_for(self, label: str) -> Any:
        """The control a visible <label> names (its `for`), as a user finds it: the label's text less
        "(required)", equal to `label` or else starting with it."""
        from selenium.webdriver.common.by import By

        labels = [(lab.text.replace("(required)", "").strip().lower(), lab)
                  for lab in self.driver.find_elements(By.TAG_NAME, "label") if lab.get_attribute("for")]
        want = label.lower()
        for match in (lambda t: t == want, lambda t: t.startswith(want)):
            for text, lab in labels:
                if match(text):
                    return self.driver.find_element(By.ID, lab.get_attribute("for"))
        raise AssertionError(f"no field labelled {label!r} on {self.path()}: {[t for t, _ in labels]}")

    def fill(self, label: str, value: str | Path) -> Any:
        """Type into, choose in (a select: by text, else value) or attach a file to the labelled control."""
        from selenium.webdriver.support.ui import Select

        control = self.field_for(label)
        if control.tag_name == "select":
            chosen, want = Select(control), str(value).lower()
            options = [(o.text.strip().lower(), (o.get_attribute("value") or "").lower(), o) for o in chosen.options]
            for match in (lambda t, v: t == want, lambda t, v: v == want, lambda t, v: t.startswith(want)):
                hit = next((o for t, v, o in options if match(t, v)), None)
                if hit is not None:
                    chosen.select_by_value(hit.get_attribute("value"))
                    break
            else:
                raise AssertionError(f"{label}: no option {value!r} on {self.path()}: {[t for t, _, _ in options]}")
        elif control.get_attribute("type") == "file":
            control.send_keys(str(value))
        else:
            control.clear()
            control.send_keys(str(value))
        return control

    def error_at(self, label: str) -> str:
        """The error message shown at the labelled field (aria-invalid, aria-describedby to the message)."""
        control = self.field_for(label)
        assert control.get_attribute("aria-invalid") == "true", f"{label}: not marked invalid on {self.path()}"
        ids = (control.get_attribute("aria-describedby") or "").split()
        texts = [self.driver.find_element("id", i).text for i in ids]
        errors = [t for i, t in zip(ids, texts) if "error" in i]
        assert errors, f"{label}: no error message described by it ({ids})"
        return " ".join(errors)

    def choose_first(self, label: str) -> str:
        """Choose the first option with a value in the labelled select: its text."""
        from selenium.webdriver.support.ui import Select

        chosen = Select(self.field_for(label))
        options = [o for o in chosen.options if o.get_attribute("value")]
        assert options, f"{label}: nothing to choose on {self.path()}"
        chosen.select_by_value(options[0].get_attribute("value"))
        return options[0].text

    def tick(self, element_id: str, on: bool = True) -> None:
        box = self.driver.find_element("id", element_id)
        if box.is_selected() != on:
            box.click()

    def follow(self, text: str, within: str = "main", timeout: float = WAIT_S) -> None:
        """Click the link whose text starts with `text` and wait for its page."""
        for link in self.els(f"{within} a[href]"):
            if link.text.strip().lower().startswith(text.lower()) and link.is_displayed():
                old = self.el("html")
                was = self.path()
                link.click()
                self.next_page(old, f"the page of the link {text!r} on {was}", timeout)
                return
        raise AssertionError(f"no link {text!r} on {self.path()}: {[a.text for a in self.els(within + ' a[href]')]}")

    def press(self, label: str, within: str = "main", timeout: float = WAIT_S) -> None:
        """Click the button (or submit input) whose text is `label`, then wait for the next page."""
        from selenium.webdriver.common.by import By

        for button in self.els(f"{within} button, {within} input[type=submit]"):
            shown = (button.text or button.get_attribute("value") or "").strip()
            if shown.lower() == label.lower() and button.is_displayed():
                old = self.driver.find_element(By.TAG_NAME, "html")
                was = self.path()
                print(f"{time.strftime('%H:%M:%S')} press {label!r} on {was}", flush=True)
                button.click()
                self.next_page(old, f"the page after {label!r} on {was}", timeout)
                return
        raise AssertionError(f"no button {label!r} on {self.path()}: "
                             f"{[(b.text or b.get_attribute('value')) for b in self.els(within + ' button')]}")

    def next_page(self, old: Any, what: str, timeout: float = WAIT_S) -> None:
        """Wait for the page holding `old` (an element) to be replaced; on a timeout say what is shown."""
        from selenium.common.exceptions import TimeoutException

        try:
            wait_for(self.driver, lambda d: _stale(old), what, timeout)
        except TimeoutException:
            raise AssertionError(f"{what}: not shown within {timeout:g} s; still at {self.path()}: "
                                 f"{self.text()[:400]!r}") from None
        self.ready()

    def login(self, user: User, *, by: str = "password") -> None:
        """Sign in through the login page, by password (when the user has one) or by API token."""
        self.driver.delete_all_cookies()
        self.go("/login")
        if by == "password" and user.password:
            self.sign_in(user.name, user.password)
        else:
            self.sign_in_with_token(user.token)
        assert "/login" not in self.path(), f"signing in as {user.name} failed: {self.text()[:500]}"

    def sign_in(self, name: str, password: str) -> None:
        """Type a user name and password into the login page's form and send it."""
        self.fill("User name", name)
        self.fill("Password", password)
        self.press("Sign in")

    def sign_in_with_token(self, token: str) -> None:
        """Open "Sign in with your API token instead", paste the token and send it."""
        details = self.el("main details")
        if not details.get_attribute("open"):
            details.find_element("css selector", "summary").click()
        self.fill("API token", token)
        self.press("Sign in with token")

    def sign_out(self) -> None:
        self.press("Sign out", within="header")
        assert self.path().startswith("/login"), self.path()

    def check(self, role: str, name: str, *, harmless: tuple[str, ...] = (), narrow: bool = True,
              shot: bool = True, narrow_shot: bool = False) -> None:
        """Look at the page shown: console errors and serious/critical axe-core violations at desktop and
        (unless `narrow` is False) phone width go to `findings` (the test ends with `assert_clean`, so one
        run lists every page's problems); screenshots webapp-<role>-<name>.png (unless `shot` is False)
        and webapp-<role>-<name>-narrow.png (if `narrow_shot`)."""
        self.ready()
        where = f"{role} {name} ({self.path()})"
        self.seen.append(Shown(role, name, self.path()))
        if errors := self.console_errors(harmless):
            self.findings.append(f"console errors on {where}:\n  " + "\n  ".join(errors))
        if not self._axe:
            self._axe = AXE_JS.read_text(encoding="utf-8")
        sizes = [("", DESKTOP, shot)] + ([("-narrow", NARROW, narrow_shot)] if narrow else [])
        try:
            for suffix, (width, height), shoot in sizes:
                self.driver.set_window_size(width, height)
                if bad := axe_violations(self.driver, self._axe):
                    self.findings.append(f"axe-core on {where} at {width}x{height}:\n  " + "\n  ".join(bad))
                if shoot:
                    self.driver.execute_script("window.scrollTo(0, 0)")
                    shot = self.shots / f"webapp-{role}-{name}{suffix}.png"
                    assert self.driver.save_screenshot(str(shot)), shot
        finally:
            self.driver.set_window_size(*DESKTOP)
        if errors := self.console_errors(harmless):
            self.findings.append(f"console errors on {where}:\n  " + "\n  ".join(errors))


#: what ChromeDriver answers, instead of a stale-element error, when it asks about an element during
#: the navigation that removes its document (a race the busy machine makes likely)
GONE_NODE = "does not belong to the document"


def _stale(element: Any) -> bool:
    """The page that held `element` has gone (a navigation happened)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if GONE_NODE in str(exc):
            return True
        raise


def session_hash(cookie_value: str) -> str:
    """The stored id of a web session: SHA-256 of its cookie value (lab/webui/session.py)."""
    return hashlib.sha256(cookie_value.encode()).hexdigest()

