"""Lab hosts without a lab: fencing tokens, evidence transfer, heartbeats, routing (real Redis)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from lab.errors import CertlabError
from lab.inventory import load_inventory
from lab.labhost.beats import LOST_AFTER, HostBeat, host_key, read_beats, write_beat
from lab.labhost.broker import BROKER_ENV, BrokerSettings, bench_queue, redis_client
from lab.labhost.watch import BROKER_GIVE_UP
from lab.labhost.evidence import EvidenceTransferError, Pack, pack, unpack
from lab.orchestrator.launch import check_labhosts
from lab.orchestrator.workitem import WorkItem
from lab.store import (
    claim_dispatch,
    create_run,
    dispatch_state,
    end_dispatch,
    new_dispatch,
    open_store,
    plan_results,
    record_result,
    results,
)
from tests.redisserver import start_redis, stop_redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    try:
        proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield url
    stop_redis(proc)


def _two_host_inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "sim.yaml"
    # the bench blocks have a `certlab:` mapping; give three of them a lab host
    lines, out, current = (ROOT / "inventory" / "sim.yaml").read_text().splitlines(), [], None
    for line in lines:
        out.append(line)
        if line.startswith("        bench") and line.endswith(":"):
            current = line.strip().rstrip(":")
        if line.strip() == "certlab:" and current in ("bench1", "bench2", "bench3"):
            host = "rack-a" if current in ("bench1", "bench2") else "rack-b"
            out.append(f"            labhost: {host}")
            current = None
    inv.write_text("\n".join(out) + "\n")
    for sub in ("secrets", "products", "lab-profile.yaml"):
        (tmp_path / sub).symlink_to(ROOT / "inventory" / sub)
    return inv


# --- fencing tokens -----------------------------------------------------------------------------

def test_an_attempt_is_claimed_once_and_a_superseded_one_writes_nothing(db_url: str) -> None:
    with open_store(db_url) as store:
        create_run(store, run_id="r1", edition="v2")
        token = new_dispatch(store, run_id="r1", item_key="b1#1@b1", slot="b1", bench="b1", labhost="rack-a", attempt=1)
        assert claim_dispatch(store, token=token, labhost="rack-a")
        assert not claim_dispatch(store, token=token, labhost="rack-a"), "a redelivered message must not run again"
        plan_results(store, run_id="r1", bench="b1", tests=[{"nodeid": "t::a"}, {"nodeid": "t::b"}], fence=token)
        assert record_result(store, run_id="r1", bench="b1", nodeid="t::a", verdict="PASS", fence=token)
        assert end_dispatch(store, token=token, state="superseded", note="lab host rack-a lost")
        assert not end_dispatch(store, token=token, state="done"), "an ended attempt stays ended"
        assert not record_result(store, run_id="r1", bench="b1", nodeid="t::b", verdict="FAIL", reason="late", fence=token)
        rows = {r.nodeid: (r.verdict, r.final) for r in results(store, run_id="r1")}
        assert rows == {"t::a": ("PASS", True), "t::b": ("INCONCLUSIVE", False)}
        assert dispatch_state(store, token=token) == "superseded"


def test_a_queued_attempt_cancelled_before_it_started_is_never_claimed(db_url: str) -> None:
    with open_store(db_url) as store:
        create_run(store, run_id="r1", edition="v2")
        token = new_dispatch(store, run_id="r1", item_key="k", slot="b1", bench="b1", labhost="h", attempt=1)
        assert end_dispatch(store, token=token, state="cancelled")
        assert not claim_dispatch(store, token=token, labhost="h")


def test_the_lab_host_task_discards_an_attempt_it_may_not_claim(tmp_path: Path) -> None:
    from lab.labhost.task import HostContext, run_item

    with open_store() as store:
        create_run(store, run_id="r1", edition="v2")
        token = new_dispatch(store, run_id="r1", item_key="b1#1@b1", slot="b1", bench="b1", labhost="h", attempt=1)
        end_dispatch(store, token=token, state="superseded")
    item = WorkItem(run_id="r1", inventory="inv.yaml", bench="b1", slot="b1", suites=("x",), run_dir="/nowhere")
    ctx = HostContext(lab="sim", host="h", bench="b1", inventory=tmp_path / "inv.yaml", spool=tmp_path / "spool",
                      settings=BrokerSettings("redis://127.0.0.1:1/0"))
    assert run_item(ctx, item.to_json(), token) == {"discarded": True, "why": f"attempt {token} is superseded"}
    assert run_item(ctx, item.to_json(), token + 99)["why"].startswith(f"attempt {token + 99} is not in this host's result store")
    assert not (tmp_path / "spool").exists(), "nothing ran"


# --- evidence ---------------------------------------------------------------------------------

def _files(root: Path) -> None:
    (root / "evidence" / "b1").mkdir(parents=True)
    (root / "evidence" / "b1" / "capture.pcap").write_bytes(bytes(range(256)) * 10)
    (root / "allure-results").mkdir()
    (root / "allure-results" / "x-result.json").write_text("{}")
    (root / "logs").mkdir()
    (root / "logs" / "pytest.log").write_text("ok\n")
    (root / ".certlab-item.json").write_text("{}")


def test_an_items_files_arrive_whole_with_their_hashes(tmp_path: Path) -> None:
    _files(tmp_path / "spool")
    packed = pack(tmp_path / "spool", skip=(".certlab-item.json",))
    wired = Pack.from_wire(json.loads(json.dumps(packed.to_wire())))
    got = unpack(wired, tmp_path / "run")
    assert got == ["allure-results/x-result.json", "evidence/b1/capture.pcap", "logs/pytest.log"]
    assert (tmp_path / "run" / "evidence" / "b1" / "capture.pcap").read_bytes() == bytes(range(256)) * 10


def test_a_file_changed_on_the_way_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    _files(tmp_path / "spool")
    packed = pack(tmp_path / "spool")
    manifest = dict(packed.manifest, **{"logs/pytest.log": "0" * 64})
    with pytest.raises(EvidenceTransferError, match="logs/pytest.log: SHA-256 differs"):
        unpack(Pack(packed.archive, manifest), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_path_leaving_the_run_directory_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(EvidenceTransferError, match="not a plain file inside the run directory"):
        unpack(Pack(buf.getvalue(), {"../escape.txt": "x"}), tmp_path / "run")
    assert not (tmp_path / "escape.txt").exists()


# --- settings and inventory -----------------------------------------------------------------------

def test_the_broker_is_redis_and_its_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BROKER_ENV, raising=False)
    assert BrokerSettings.from_env() is None
    monkeypatch.setenv(BROKER_ENV, "rediss://:s3cret@broker.lab:6380/0")
    assert BrokerSettings.from_env().shown == "rediss://***@broker.lab:6380/0"
    monkeypatch.setenv(BROKER_ENV, "amqp://guest:pw@rabbit//")
    with pytest.raises(CertlabError) as exc:
        BrokerSettings.from_env()
    assert "pw" not in str(exc.value) and "certlab's broker is Redis" in str(exc.value)


def test_a_run_through_the_broker_needs_every_bench_on_a_lab_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = load_inventory(_two_host_inventory(tmp_path))
    assert inv.bench("bench1").labhost == "rack-a" and inv.bench("bench4").labhost is None
    monkeypatch.delenv(BROKER_ENV, raising=False)
    check_labhosts(inv, ["bench4"])  # no broker: this machine runs everything
    monkeypatch.setenv(BROKER_ENV, "redis://127.0.0.1:6379/0")
    check_labhosts(inv, ["bench1", "bench3"])
    with pytest.raises(CertlabError, match=r"bench bench4 has no labhost.*fix: add `labhost: NAME`"):
        check_labhosts(inv, ["bench1", "bench4"])


def test_a_lab_host_name_is_checked_when_the_inventory_loads(tmp_path: Path) -> None:
    inv = _two_host_inventory(tmp_path)
    inv.write_text(inv.read_text().replace("labhost: rack-b", "labhost: Rack B"))
    with pytest.raises(CertlabError, match="labhost 'Rack B': use a short lower-case host name"):
        load_inventory(inv)


# --- heartbeats and routing (real Redis) ------------------------------------------------------------

def test_heartbeats_say_which_hosts_are_alive_and_what_they_serve(redis_url: str, tmp_path: Path) -> None:
    from lab.labhost.watch import HostWatch

    settings = BrokerSettings(redis_url)
    client = redis_client(settings)
    now = time.time()
    write_beat(client, HostBeat(lab="sim", host="rack-a", at=now, pid=1, version="0.1.0", serving=("bench1",),
                                unhealthy={"bench2": "power: relay does not answer"}))
    write_beat(client, HostBeat(lab="sim", host="rack-b", at=now - LOST_AFTER - 5, pid=2, version="0.1.0",
                                serving=("bench3",)))
    write_beat(client, HostBeat(lab="other", host="rack-a", at=now, pid=3, version="0.1.0", serving=()))
    assert set(read_beats(client, "sim")) == {("sim", "rack-a"), ("sim", "rack-b")}
    watch = HostWatch(settings, load_inventory(_two_host_inventory(tmp_path)))
    assert watch.why_unusable("bench1") is None
    assert watch.why_unusable("bench2") == "lab host rack-a takes no work for it: power: relay does not answer"
    assert "is not serving" in watch.why_unusable("bench3")
    assert watch.why_lost("rack-a", waited=100) is None
    assert watch.why_lost("rack-b", waited=0).startswith("lab host rack-b lost: last heartbeat")
    assert watch.why_lost("rack-c", waited=1) is None, "a host may still be starting"
    assert watch.why_lost("rack-c", waited=LOST_AFTER + 1) == f"lab host rack-c lost: no heartbeat for {LOST_AFTER + 1:.0f} s"
    # the orchestrator's own link to the broker is down: no host is judged until it has waited long enough
    watch.client = redis_client(BrokerSettings("redis://127.0.0.1:1/0"), timeout=0.2)
    watch._read_at = float("-inf")
    assert watch.why_lost("rack-b", waited=0) is None
    watch._unreadable_since -= BROKER_GIVE_UP + 1
    assert watch.why_lost("rack-a", waited=0).startswith("lab host rack-a unreachable: the broker has not answered")


def test_work_for_a_bench_goes_to_its_own_queue_with_a_fencing_token(redis_url: str, tmp_path: Path) -> None:
    from lab.labhost.executor import RemoteExecutor

    inv = load_inventory(_two_host_inventory(tmp_path))
    client = redis_client(BrokerSettings(redis_url))
    client.delete(bench_queue("sim", "bench3"), host_key("sim", "rack-b"))
    with open_store() as store:
        create_run(store, run_id="r9", edition="v2")
        executor = RemoteExecutor(tmp_path / "run", inv, store, BrokerSettings(redis_url))
        try:
            item = WorkItem(run_id="r9", inventory=str(inv.path), bench="bench3", slot="bench3", suites=("s",),
                            run_dir=str(tmp_path / "run"))
            executor.submit(item)
            assert executor.busy() == 1
            (raw,) = client.lrange(bench_queue("sim", "bench3"), 0, -1)
            message = json.loads(raw)
            assert message["headers"]["task"] == "certlab.run_item"
            from lab.store import dispatches

            (row,) = dispatches(store, run_id="r9")
            assert (row.bench, row.labhost, row.state, row.task_id) == ("bench3", "rack-b", "queued", message["headers"]["id"])
            # nobody serves rack-b: after LOST_AFTER the attempt is superseded and the work comes back as lost
            executor._sent[0].sent -= LOST_AFTER + 1
            (outcome,) = executor.wait(0.5)
            assert outcome.lost == f"lab host rack-b lost: no heartbeat for {LOST_AFTER + 1:.0f} s"
            assert dispatch_state(store, token=row.id) == "superseded"
            # planning a slot's tests touches no bench: it runs on this machine, whatever the hosts do
            planner = WorkItem(run_id="r9", inventory=str(inv.path), bench="bench3", slot="bench3", suites=("s",),
                               run_dir=str(tmp_path / "run"), attempt=2, plan_only=True, health_check=False)
            executor.submit(planner)
            assert executor.running() == [planner] and client.llen(bench_queue("sim", "bench3")) == 1
            executor.stop(grace=5)
        finally:
            executor.close()


def test_files_stream_as_they_change_and_only_then(tmp_path: Path) -> None:
    from lab.labhost.evidence import FileStream

    _files(tmp_path / "spool")
    stream = FileStream(tmp_path / "spool", skip=(".certlab-item.json",))
    first, stamps = stream.changes()
    stream.mark_sent(stamps)
    assert sorted(first.manifest) == ["allure-results/x-result.json", "evidence/b1/capture.pcap", "logs/pytest.log"]
    assert stream.changes() is None, "nothing changed, nothing sent"
    with open(tmp_path / "spool" / "logs" / "pytest.log", "a") as fh:
        fh.write("more\n")
    second, _ = stream.changes()
    assert list(second.manifest) == ["logs/pytest.log"]
    unpack(first, tmp_path / "run")
    unpack(second, tmp_path / "run")
    assert (tmp_path / "run" / "logs" / "pytest.log").read_text() == "ok\nmore\n"


def test_results_of_a_lost_attempt_whose_evidence_never_arrived_are_run_again(tmp_path: Path) -> None:
    from lab.store import reopen_unevidenced

    (tmp_path / "evidence" / "b1").mkdir(parents=True)
    (tmp_path / "evidence" / "b1" / "a.json").write_text("{}")
    with open_store() as store:
        create_run(store, run_id="r1", edition="v2")
        record_result(store, run_id="r1", bench="b1", nodeid="t::a", verdict="PASS", evidence=["evidence/b1/a.json"])
        record_result(store, run_id="r1", bench="b1", nodeid="t::b", verdict="FAIL", reason="x" * 30,
                      evidence=["evidence/b1/a.json", "evidence/b1/b.json"])
        record_result(store, run_id="r1", bench="b1", nodeid="t::c", verdict="PASS", attempt=2, evidence=["evidence/b1/c.json"])
        again = reopen_unevidenced(store, run_id="r1", bench="b1", attempt=1, root=tmp_path,
                                   reason="not run: its evidence was lost (lab host rack-a lost)")
        assert again == ["t::b"]
        rows = {r.nodeid: (r.verdict, r.final) for r in results(store, run_id="r1")}
        assert rows == {"t::a": ("PASS", True), "t::b": ("INCONCLUSIVE", False), "t::c": ("PASS", True)}


def test_the_runs_product_files_travel_with_the_item_and_the_host_uses_them(tmp_path: Path) -> None:
    from lab.labhost.inputs import attach_inputs, materialize_inputs

    inv = load_inventory(_two_host_inventory(tmp_path))
    uploaded = tmp_path / "booking-7"
    uploaded.mkdir()
    (uploaded / "ics.yaml").write_text("the booking's ICS\n")
    (uploaded / "key.asc").write_text("a key beside it\n")
    item = WorkItem(run_id="r1", inventory=str(inv.path), bench="bench3", slot="bench3", suites=("s",), run_dir="/r",
                    options=("--edition", "v2", "--ics", str(uploaded / "ics.yaml")))
    sent = WorkItem.from_json(attach_inputs(item, inv).to_json())
    assert set(sent.attachments) == {"--ics", "--ixit", "--assessments"}, "the explicit ICS, the product folder's others"
    local = materialize_inputs(sent, tmp_path / "spool")
    opts = list(local.options)
    ics, ixit = Path(opts[opts.index("--ics") + 1]), Path(opts[opts.index("--ixit") + 1])
    assert ics.read_text() == "the booking's ICS\n" and (ics.parent / "key.asc").is_file()
    assert ixit.read_bytes() == (ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml").read_bytes()
    assert str(tmp_path / "spool") in str(ics) and opts.count("--ics") == 1 and local.attachments == {}
