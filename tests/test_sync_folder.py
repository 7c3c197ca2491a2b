"""The sync folder (docs/team.md#sync-folder): two machines — two COSTHOOK_HOMEs, real SQLite
files, the real `costhook` CLI as subprocesses — share their calls through one folder, with
the copies, half-synced files and hostile content that sync tools and other people leave."""

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import COSTHOOK, EXAMPLES, payload, run_hook
from test_openclaw_views import history  # noqa: F401  (fixture)
from transcript_lines import assistant, tool_use

SUMS = """SELECT count(*) AS calls, count(DISTINCT key) AS keys, sum(cost_nanousd) AS cost,
                 sum(input_tokens) AS input, sum(output_tokens) AS output, sum(cache_read_tokens) AS read,
                 sum(cost_nanousd IS NULL) AS unpriced FROM requests"""


class Machine:
    """One machine: its own costhook home, database and config, sharing `folder`."""

    def __init__(self, root: Path, name: str, folder: Path | None, extra: str = ""):
        self.name, self.home = name, root / name
        self.config = root / f"{name}.toml"
        team = f'[team]\nfolder = "{folder}"\nmachine = "{name}"\nuser = "ana"\n' if folder else ""
        self.config.write_text(team + extra)
        self.env = {**os.environ, "COSTHOOK_HOME": str(self.home), "COSTHOOK_DB": str(self.home / "costhook.db"),
                    "COSTHOOK_CONFIG": str(self.config)}

    def run(self, *args, ok=True) -> subprocess.CompletedProcess:
        proc = subprocess.run([COSTHOOK, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def sync(self) -> dict:
        return json.loads(self.run("sync", "--format", "json").stdout)

    def rows(self, sql: str, args=()) -> list[dict]:
        conn = sqlite3.connect(self.home / "costhook.db")
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        finally:
            conn.close()

    def sums(self) -> dict:
        return self.rows(SUMS)[0]


def server_history(root: Path, grown: bool = False) -> Path:
    """The build server's own Claude Code history: a session with tool calls, and one call
    (`msg_grow`) whose response was still streaming at the first export when not `grown`."""
    claude = root / "server-claude"
    project = claude / "projects" / "-srv-build"
    project.mkdir(parents=True, exist_ok=True)
    lines = [assistant(f"msg_b{i}", session_id="sess-b", cwd="/srv/build", input_tokens=100 + i,
                       output_tokens=50 * i, cache_read=1000 * i, timestamp=f"2026-11-21T10:0{i}:00.000Z",
                       content=[tool_use("Bash", f"toolu_b{i}", command="make")])
             for i in range(1, 6)]
    lines.append(assistant("msg_grow", session_id="sess-b", cwd="/srv/build", model="claude-opus-4-5-20251101",
                           output_tokens=20, cache_write=4000, timestamp="2026-11-21T10:09:00.000Z",
                           stop_reason=None))
    if grown:
        lines.append(assistant("msg_grow", session_id="sess-b", cwd="/srv/build", model="claude-opus-4-5-20251101",
                               output_tokens=2500, cache_write=4000, timestamp="2026-11-21T10:09:01.000Z"))
    (project / "sess-b.jsonl").write_text("".join(lines))
    return claude


def private_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "Sync" / "costhook"
    folder.mkdir(parents=True)
    for path in (folder, folder.parent):
        path.chmod(0o700)
    return folder


@pytest.fixture
def world(tmp_path):
    """(laptop, server, folder): the laptop holds the example history, the server its own."""
    folder = private_folder(tmp_path)
    laptop = Machine(tmp_path, "laptop", folder)
    server = Machine(tmp_path, "server", folder)
    laptop.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    server.run("import", "--claude-dir", str(server_history(tmp_path)), "-q")
    return laptop, server, folder


def segments(folder: Path, machine: str) -> list[Path]:
    return sorted((folder / machine).glob("2*.ndjson.gz"))


def test_two_machines_one_folder_totals_exact_despite_copies_truncation_and_growth(world, tmp_path):
    """The issue's proof: a call grows after its first export, a truncated segment, a
    duplicated segment and conflicted copies (Dropbox's and Syncthing's names) in the
    folder, every sync repeated — both machines hold every call once, with the same
    totals to the nano-dollar as one database that imported both histories directly."""
    laptop, server, folder = world
    for machine in (laptop, server, laptop, server):
        machine.sync()
    first = server.sums()
    assert first == laptop.sums() and first["calls"] == first["keys"] == 16 + 6

    server.run("import", "--claude-dir", str(server_history(tmp_path, grown=True)), "-q")  # msg_grow streamed on
    assert "1 call of this machine waiting for the next `costhook sync`" in server.run("doctor", ok=False).stdout
    before = set(segments(folder, "server"))
    summary = server.sync()
    assert summary["exported"] == {"calls": 1, "updated": 1, "segments": 1}
    [grown] = set(segments(folder, "server")) - before  # (names sort by second: two may share one)
    whole = grown.read_bytes()
    grown.write_bytes(whole[: len(whole) // 2])  # still arriving at the laptop
    [first_segment] = before
    shutil.copy(first_segment, folder / "server" / "20261121T100000Z-0badc0de.ndjson.gz")
    shutil.copy(first_segment, folder / "server" / f"{first_segment.name[:-len('.ndjson.gz')]} (conflicted copy 2026-12-06).ndjson.gz")
    shutil.copy(first_segment, folder / "server" / f"{first_segment.name[:-len('.ndjson.gz')]}.sync-conflict-20261206-150102-ABCDEFG.ndjson.gz")

    summary = laptop.sync()
    assert [s["reason"] for s in summary["skipped"]] == ["incomplete (still syncing?): read again next time"]
    assert summary["duplicates"] == 3 and summary["imported"]["segments"] == 0
    assert laptop.sums() == first  # nothing counted twice, the truncated segment not half-read
    doctor = laptop.run("doctor", ok=False).stdout
    assert "server: " in doctor and f"skipped server/{grown.name}: incomplete" in doctor

    grown.write_bytes(whole)  # the sync tool finished the transfer
    for machine in (laptop, server, laptop, server, laptop):
        machine.sync()

    reference = Machine(tmp_path, "reference", None)  # both histories imported into one database
    reference.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    reference.run("import", "--claude-dir", str(tmp_path / "server-claude"), "-q")
    expected = reference.sums()
    assert expected["cost"] > first["cost"] and expected["calls"] == 22
    assert laptop.sums() == expected
    assert server.sums() == expected
    for machine in (laptop, server):
        report = json.loads(machine.run("report", "--format", "json").stdout)["totals"]
        assert report == json.loads(reference.run("report", "--format", "json").stdout)["totals"]
        spend = machine.rows("SELECT sum(cost_nanousd) AS c, sum(requests) AS n FROM spend WHERE dim = 'global'")[0]
        assert (spend["c"], spend["n"]) == (expected["cost"], expected["calls"])  # the rollup moved with the rows
    for dim, column in (("machine", "origin_machine"), ("user", "origin_user")):  # the rollup's origin rows
        for machine in (laptop, server):
            rolled = machine.rows("SELECT key AS k, sum(cost_nanousd) AS c, sum(requests) AS n FROM spend WHERE dim = ? "
                                  "GROUP BY k ORDER BY k", (dim,))
            assert rolled == machine.rows(f"SELECT {column} AS k, sum(cost_nanousd) AS c, count(*) AS n FROM requests "
                                          f"WHERE {column} IS NOT NULL GROUP BY k ORDER BY k") and rolled
    origins = {m.name: dict((r["o"], r["n"]) for r in m.rows(
        "SELECT coalesce(origin_machine, '-') AS o, count(*) AS n FROM requests GROUP BY 1")) for m in (laptop, server)}
    assert origins == {"laptop": {"-": 16, "server": 6}, "server": {"-": 6, "laptop": 16}}
    by_machine = json.loads(laptop.run("report", "--by", "machine", "--format", "json").stdout)["rows"]
    assert {r["key"]: r["requests"] for r in by_machine} == {"(this machine)": 16, "server": 6}
    grow = laptop.rows("SELECT output_tokens FROM requests WHERE message_id = 'msg_grow'")
    assert grow == [{"output_tokens": 2500}]
    # the server's session and its tool calls came along (the tools view needs them)
    assert laptop.rows("SELECT count(*) AS n FROM tool_calls WHERE session_id = 'sess-b'") == \
        server.rows("SELECT count(*) AS n FROM tool_calls WHERE session_id = 'sess-b'")
    assert laptop.rows("SELECT project, source_path FROM requests WHERE origin_machine = 'server' LIMIT 1") == \
        [{"project": "build", "source_path": None}]  # no path of the other machine leaves it


def test_repeated_syncs_change_nothing_and_write_no_new_segments(world):
    laptop, server, folder = world
    laptop.sync(), server.sync(), laptop.sync()
    before = (laptop.sums(), server.sums(), sorted(p.name for p in folder.rglob("*")))
    for machine in (laptop, server, laptop, server):
        summary = machine.sync()
        assert summary["exported"]["calls"] == 0 and summary["imported"]["segments"] == 0
    assert (laptop.sums(), server.sums(), sorted(p.name for p in folder.rglob("*"))) == before
    assert not [p for p in folder.rglob("*") if p.name.startswith(".")]  # no temporary file left behind


def write_segment(path: Path, machine: str, records: list, *, end: bool = True, user: str = "ana") -> None:
    lines = [{"format": "costhook-segment", "version": 1, "user": user, "machine": machine,
              "created_at": "2026-11-22T00:00:00Z"}]
    lines += records
    if end:
        lines.append({"end": {"records": len(records)}})
    path.write_bytes(gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode()))


def call(key: str, **fields) -> dict:
    return {"call": {"key": key, "agent": "claude", "message_id": key, "session_id": "sess-x",
                     "timestamp": "2026-11-22T10:00:00.000Z", "model": "claude-sonnet-4-5-20250929",
                     "input_tokens": 10, "output_tokens": 20, "tools": [], **fields}}


def test_hostile_folder_content_is_validated_and_refused(world, tmp_path):
    """Symlinks, files others can write to, wrong types and implausible counts, a header
    naming another machine, garbage: each refused or left out, one line of why; the valid
    record beside them is read."""
    laptop, _, folder = world
    (folder / "mallory").mkdir(mode=0o700)
    good = folder / "mallory" / "20261122T000000Z-00000001.ndjson.gz"
    write_segment(good, "mallory", [
        call("ok-1"),
        call("neg", output_tokens=-5),
        call("str", input_tokens="10"),
        call("bool", input_tokens=True),
        call("huge", input_tokens=10**10),
        call("long", model="x" * 5000),
        call("notools", tools="Bash"),
        call("badtime", timestamp="garbage-timestamp-xx"),
        {"call": "not an object"},
        {"session": {"session_id": "sess-x", "project": 7}},
        {"mystery": {"key": "m"}},
    ])
    lines = gzip.decompress(good.read_bytes()).split(b"\n")
    lines.insert(2, b"[" * 100_000)  # nested past the JSON parser's recursion limit
    lines[-2] = json.dumps({"end": {"records": 12}}).encode()
    good.write_bytes(gzip.compress(b"\n".join(lines)))
    outside = tmp_path / "outside"
    outside.mkdir()
    write_segment(outside / "20261122T000000Z-00000002.ndjson.gz", "eve", [call("via-symlink-dir")])
    (folder / "eve").symlink_to(outside)
    write_segment(outside / "20261122T000000Z-00000003.ndjson.gz", "mallory", [call("via-symlink-file")])
    (folder / "mallory" / "20261122T000000Z-00000003.ndjson.gz").symlink_to(outside / "20261122T000000Z-00000003.ndjson.gz")
    writable = folder / "mallory" / "20261122T000000Z-00000004.ndjson.gz"
    write_segment(writable, "mallory", [call("world-writable")])
    writable.chmod(0o666)
    write_segment(folder / "mallory" / "20261122T000000Z-00000005.ndjson.gz", "laptop", [call("wrong-header")])
    (folder / "mallory" / "20261122T000000Z-00000006.ndjson.gz").write_bytes(b"not gzip at all")
    write_segment(folder / "mallory" / "20261122T000000Z-00000007.ndjson.gz", "mallory", [call("no-end")], end=False)
    os.mkfifo(folder / "mallory" / "20261122T000000Z-00000008.ndjson.gz", 0o600)

    before = laptop.sums()
    summary = laptop.sync()
    reasons = {s["path"]: s["reason"] for s in summary["skipped"]}
    assert reasons == {
        "eve": "a symlink; costhook does not follow it",
        "mallory/20261122T000000Z-00000003.ndjson.gz": "a symlink; costhook does not follow it",
        "mallory/20261122T000000Z-00000004.ndjson.gz": "writable by others",
        "mallory/20261122T000000Z-00000005.ndjson.gz": "its header names another machine, or no valid user",
        "mallory/20261122T000000Z-00000006.ndjson.gz": "damaged: BadGzipFile",
        "mallory/20261122T000000Z-00000007.ndjson.gz": "incomplete (still syncing?): read again next time",
        "mallory/20261122T000000Z-00000008.ndjson.gz": "not a regular file",
    }
    keys = {r["key"] for r in laptop.rows("SELECT key FROM requests WHERE origin_machine IS NOT NULL")}
    assert keys == {"ok-1"}
    assert laptop.sums()["calls"] == before["calls"] + 1
    assert laptop.rows("SELECT reason FROM sync_files WHERE path = ?", (f"mallory/{good.name}",)) == \
        [{"reason": "11 invalid records left out"}]
    assert "mallory" in laptop.run("doctor", ok=False).stdout


def test_a_folder_others_can_write_to_is_refused_with_one_line(world):
    laptop, _, folder = world
    folder.chmod(0o777)
    proc = laptop.run("sync", ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "writable by others" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (folder / "laptop").exists()


def test_sync_without_a_folder_says_what_to_configure(tmp_path):
    alone = Machine(tmp_path, "alone", None)
    proc = alone.run("sync", ok=False)
    assert proc.returncode == 1 and "[team]" in proc.stderr and "Traceback" not in proc.stderr
    missing = Machine(tmp_path, "missing", tmp_path / "nowhere")
    proc = missing.run("sync", ok=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr


def test_a_machine_name_that_is_not_a_folder_name_is_a_config_error(tmp_path):
    bad = Machine(tmp_path, "bad", private_folder(tmp_path))
    bad.config.write_text(f'[team]\nfolder = "{tmp_path}"\nmachine = "../etc"\n')
    proc = bad.run("sync", ok=False)
    assert proc.returncode == 1 and "team.machine: not a name: '../etc'" in proc.stderr
    bad.config.write_text('[team]\nfolder = "Sync/costhook"\n')
    proc = bad.run("sync", ok=False)
    assert proc.returncode == 1 and "team.folder: the sync folder must be an absolute path" in proc.stderr


def test_project_names_leave_the_machine_as_configured(tmp_path):
    """git-remote (credentials stripped), else the folder's name; `path` only when chosen."""
    repo = tmp_path / "home" / "dev" / "acme-api"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text('[core]\n\tbare = false\n[remote "origin"]\n'
                                          '\turl = https://ana:s3cret@github.com/acme/acme-api.git\n')
    plain = tmp_path / "home" / "dev" / "scratch"
    plain.mkdir(parents=True)
    claude = tmp_path / "claude" / "projects" / "-p"
    claude.mkdir(parents=True)
    (claude / "s.jsonl").write_text(assistant("m1", session_id="s", cwd=str(repo)))
    (claude / "s2.jsonl").write_text(assistant("m2", session_id="s2", cwd=str(plain)))
    shown = {}
    for mode in ("git-remote", "basename", "path"):
        folder = private_folder(tmp_path / mode)
        origin = Machine(tmp_path / mode, "a", folder)
        origin.config.write_text(f'[team]\nfolder = "{folder}"\nmachine = "a"\nproject_name = "{mode}"\n')
        other = Machine(tmp_path / mode, "b", folder)
        origin.run("import", "--claude-dir", str(tmp_path / "claude"), "-q")
        origin.sync(), other.sync()
        shown[mode] = sorted(r["project"] for r in other.rows("SELECT project FROM requests"))
        data = b"".join(gzip.decompress(p.read_bytes()) for p in segments(folder, "a"))
        assert b"s3cret" not in data
        assert (str(tmp_path).encode() in data) == (mode == "path")
    assert shown == {"git-remote": ["github.com/acme/acme-api", "scratch"], "basename": ["acme-api", "scratch"],
                     "path": sorted([str(repo), str(plain)])}


def wait_for(predicate, timeout=30) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_session_end_starts_a_detached_sync_throttled(world):
    """SessionEnd hands the sync to a detached process (the hook never touches the folder),
    at most once every five minutes."""
    laptop, server, folder = world
    server.sync()
    transcript = EXAMPLES / "claude" / "projects" / "-home-dev-acme-api" / "7c1e2d3a-4b5c-4d6e-8f90-a1b2c3d4e5f6.jsonl"
    started = time.monotonic()
    proc = run_hook(payload("SessionEnd", transcript_path=str(transcript)), env=laptop.env)
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    assert time.monotonic() - started < 5
    from_server = "SELECT count(*) AS n FROM requests WHERE origin_machine = 'server'"
    assert wait_for(lambda: len(segments(folder, "laptop")) == 1), "the detached sync wrote no segment"
    assert wait_for(lambda: laptop.rows(from_server)[0]["n"] == 6), "the detached sync imported nothing"
    stamp = (laptop.home / "sync.stamp").stat().st_mtime_ns
    run_hook(payload("SessionEnd", transcript_path=str(transcript)), env=laptop.env)  # within 5 minutes: no sync
    time.sleep(1.5)
    assert (laptop.home / "sync.stamp").stat().st_mtime_ns == stamp
    assert not (laptop.home / "errors.log").exists(), (laptop.home / "errors.log").read_text()


def test_a_long_history_goes_out_in_bounded_segments(world, monkeypatch):
    """Export reads a segment's worth of calls at a time, in key order: every call in
    exactly one segment, the sessions and tool calls with the last one."""
    from costhook.config import load
    from costhook.pricing import prices
    from costhook.store import db
    from costhook.sync import folder as sync_folder

    laptop, server, folder = world
    monkeypatch.setattr(sync_folder, "CALLS_PER_SEGMENT", 5)
    for name, value in laptop.env.items():
        monkeypatch.setenv(name, value)
    conn = db.connect()
    summary = sync_folder.sync(conn, load.load(), prices.pricer())
    assert summary["exported"] == {"calls": 16, "updated": 0, "segments": 4}
    keys = []
    for path in segments(folder, "laptop"):
        lines = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        keys += [line["call"]["key"] for line in lines if "call" in line]
        assert lines[-1] == {"end": {"records": len(lines) - 2}}
    assert sorted(keys) == sorted(r["key"] for r in laptop.rows("SELECT key FROM requests"))
    assert len(keys) == len(set(keys)) == 16
    conn.close()
    server.sync()
    assert server.sums()["calls"] == 16 + 6


def test_a_new_database_gets_its_own_machines_calls_back_from_the_folder(world, tmp_path):
    """A machine whose database was lost (or two machines given one name) reads the
    segments in its own folder that its database did not write — and nothing twice."""
    laptop, server, folder = world
    laptop.sync(), server.sync(), laptop.sync()
    expected = laptop.sums()
    shutil.rmtree(laptop.home)
    again = laptop.run("sync").stdout
    assert "that this database did not write" in again
    assert laptop.sums() == expected
    laptop.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")  # its transcripts are still there
    laptop.sync(), laptop.sync()
    assert laptop.sums() == expected
    assert len(segments(folder, "laptop")) == 1  # nothing exported again: those calls came from the folder


def test_an_export_killed_before_its_rename_leaves_nothing_for_ever(world):
    """The temporary file of an export killed mid-write is never read by the other machine,
    and this machine removes it once it is an hour old (a fresh one may be a live sync's)."""
    laptop, server, folder = world
    laptop.sync()
    own = folder / "laptop"
    stale, fresh = own / ".20261122T000000Z-0000000a.ndjson.gz.4242.tmp", own / ".20261122T000000Z-0000000b.ndjson.gz.4243.tmp"
    for path in (stale, fresh):
        write_segment(path, "laptop", [call("half-written")])
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    server.sync()
    assert server.rows("SELECT count(*) AS n FROM requests WHERE key = 'half-written'") == [{"n": 0}]
    laptop.sync()
    assert not stale.exists() and fresh.exists()


def test_a_session_seen_on_both_machines_is_counted_once(world, tmp_path):
    """A cloud-synced ~/.claude: both machines recorded the same session. After syncs both
    ways, still one row per call, the same totals on both as one direct import."""
    laptop, server, folder = world
    shared = tmp_path / "shared-claude" / "projects" / "-home-dev-acme-api"
    shared.mkdir(parents=True)
    acme = EXAMPLES / "claude" / "projects" / "-home-dev-acme-api"
    shutil.copy(acme / "7c1e2d3a-4b5c-4d6e-8f90-a1b2c3d4e5f6.jsonl", shared)
    shutil.copytree(acme / "7c1e2d3a-4b5c-4d6e-8f90-a1b2c3d4e5f6", shared / "7c1e2d3a-4b5c-4d6e-8f90-a1b2c3d4e5f6")
    server.run("import", "--claude-dir", str(tmp_path / "shared-claude"), "-q")
    for machine in (server, laptop, server, laptop):
        machine.sync()
    reference = Machine(tmp_path, "reference", None)
    reference.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    reference.run("import", "--claude-dir", str(tmp_path / "server-claude"), "-q")
    expected = reference.sums()
    assert laptop.sums() == server.sums() == expected and expected["calls"] == expected["keys"] == 22


def test_an_openclaw_session_end_starts_the_sync_too(world, tmp_path):
    laptop, _, folder = world
    event = {"sessionId": "s-oc", "sessionKey": "agent:main:main", "reason": "idle"}
    data = {"hook": "session_end", "hook_event_name": "session_end", "plugin": "costhook", "event": event,
            "ctx": {"agentId": "main", "sessionKey": "agent:main:main", "sessionId": "s-oc"}}
    proc = run_hook(data, args=("--agent", "openclaw"), env={**laptop.env, "OPENCLAW_STATE_DIR": str(tmp_path / "oc")})
    assert proc.returncode == 0 and proc.stdout == b""
    assert wait_for(lambda: len(segments(folder, "laptop")) == 1), "the detached sync wrote no segment"


def test_a_sync_killed_mid_import_is_completed_exactly_by_the_next(tmp_path):
    """`kill -9` of a sync mid-import: the next sync completes it exactly — the same
    database as one uninterrupted sync — nothing counted twice, though the killed one had
    committed some batches of a segment it had not finished. (The generator's costs are its
    own: each machine prices what it imports.)"""
    import sys

    folder = private_folder(tmp_path)
    laptop, server = Machine(tmp_path, "laptop", folder), Machine(tmp_path, "server", folder)
    clean = Machine(tmp_path, "clean", folder)
    laptop.home.mkdir(mode=0o700)
    subprocess.run([sys.executable, "-m", "tests.benchmarks.generate", "db", str(laptop.home / "costhook.db"),
                    "--rows", "45000"], cwd=Path(__file__).parent.parent, check=True, capture_output=True, timeout=300)
    assert laptop.sync()["exported"]["segments"] == 3
    clean.sync()
    expected = clean.sums()
    assert {k: v for k, v in expected.items() if k != "cost"} == {k: v for k, v in laptop.sums().items() if k != "cost"}
    proc = subprocess.Popen([COSTHOOK, "sync"], env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def one_segment_in() -> bool:
        try:
            return server.rows("SELECT count(*) AS n FROM sync_files WHERE status = 'imported'")[0]["n"] >= 1
        except sqlite3.OperationalError:
            return False  # not made (or migrated) yet

    assert wait_for(lambda: proc.poll() is None and (server.home / "costhook.db").exists() and one_segment_in(),
                    timeout=120)
    proc.kill()
    proc.wait()
    partial = server.sums()
    assert 20_000 <= partial["calls"] < expected["calls"]
    server.sync()
    assert server.sums() == expected


def test_openclaw_cron_history_reads_the_same_on_both_machines(world, history):  # noqa: F811
    """Calls, cron runs (a pruned one too) and jobs travel: `cron` and `report` agree."""
    laptop, server, _ = world
    server.run("import", "--openclaw-dir", str(history))
    for machine in (server, laptop, server, laptop):
        machine.sync()
    views = [("cron", "--format", "json", "--tz", "UTC"), ("report", "--by", "cron", "--format", "json", "--tz", "UTC")]
    for view in views:
        assert json.loads(laptop.run(*view).stdout) == json.loads(server.run(*view).stdout), view
    runs = "SELECT run_id, job_name, status, duration_ms, transcript_missing FROM cron_runs ORDER BY run_id"
    assert laptop.rows(runs) == server.rows(runs) and len(laptop.rows(runs)) >= 7
    assert laptop.rows("SELECT job_id, name, schedule FROM cron_jobs ORDER BY job_id") == \
        server.rows("SELECT job_id, name, schedule FROM cron_jobs ORDER BY job_id")


def test_a_symlink_planted_at_the_lock_file_is_not_followed(world, tmp_path):
    laptop, _, _ = world
    target = tmp_path / "precious"
    target.write_text("keep")
    (laptop.home / "sync.lock").symlink_to(target)
    proc = laptop.run("sync", ok=False)
    assert proc.returncode == 1 and "sync.lock" in proc.stderr and "Traceback" not in proc.stderr
    assert target.read_text() == "keep"


def test_a_segment_of_millions_of_tiny_lines_is_refused_without_exhausting_memory(world):
    """The decompressed-size cap bounds the bytes, but each line read is a Python object
    of ~40 bytes on top of its own: 512 MB of two-byte lines (a ~0.5 MB file) was ~270
    million objects, ~29 GB. The segment is skipped as too large, in bounded memory."""
    import resource

    laptop, server, folder = world
    (folder / "mallory").mkdir(mode=0o700)
    bomb = folder / "mallory" / "20261206T150102Z-0badf00d.ndjson.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(json.dumps({"format": "costhook-segment", "version": 1, "user": "ana", "machine": "mallory"}).encode()
                + b"\n")
        chunk = b"1\n" * (1 << 20)
        for _ in range(256):  # 512 MB decompressed: just at the cap
            f.write(chunk)
    bomb.chmod(0o600)
    assert bomb.stat().st_size < 4 << 20

    def cap_memory():  # 1.5 GB of address space: plenty for a sync, far from the bomb's needs
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))

    proc = subprocess.run([COSTHOOK, "sync", "--format", "json"], env=laptop.env, capture_output=True, text=True,
                          timeout=120, preexec_fn=cap_memory)
    assert proc.returncode == 0, proc.stderr[-2000:]
    skipped = {s["path"]: s["reason"] for s in json.loads(proc.stdout)["skipped"]}
    assert skipped[f"mallory/{bomb.name}"] == "damaged: too large"
    assert laptop.sums()["calls"] == 16


def test_a_call_time_that_is_no_utc_time_is_left_out_or_made_one(world):
    """A call time matching the pattern but no real time (month 13, hour 99) was bucketed
    as `2026-13-45T99:90`: `trends` and `anomalies` then failed with a traceback on every
    machine that read it. A time with an offset was bucketed as if it were UTC. The first
    is left out; the second stored as the UTC time it names."""
    laptop, _, folder = world
    (folder / "mallory").mkdir(mode=0o700)
    segment = folder / "mallory" / "20261122T000000Z-00000001.ndjson.gz"
    write_segment(segment, "mallory", [call("bad-month", timestamp="2026-13-45T99:99:99Z"),
                                       call("offset", timestamp="2026-11-22T02:00:00+05:00")])
    segment.chmod(0o600)
    laptop.sync()
    assert laptop.rows("SELECT key, timestamp FROM requests WHERE origin_machine IS NOT NULL") == \
        [{"key": "offset", "timestamp": "2026-11-21T21:00:00.000Z"}]
    assert laptop.rows("SELECT bucket FROM spend WHERE dim = 'global' AND bucket LIKE '2026-11-2%'") == \
        [{"bucket": "2026-11-21T21:00"}]
    assert laptop.rows("SELECT reason FROM sync_files WHERE path = ?", (f"mallory/{segment.name}",)) == \
        [{"reason": "1 invalid records left out"}]
    for view in ("trends", "anomalies"):
        laptop.run(view)
