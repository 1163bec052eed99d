"""Crashed recordings: ``imkd bag recover`` saves the readable part of a cut or damaged bag as a valid bag.

The bags are real (the exporter's MCAP and sqlite3 bags of the session's synthetic scene, bags written by rosbags'
Writer in a child process killed with SIGKILL), read back with rosbags. For MCAP the expected messages come from
the intact file's own index (chunk index and message index records at its end, which the recovery never reads):
a message survives a cut when its record lies wholly before it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imkd_ros.bag.errors import BagError
from imkd_ros.bag.recover import MCAP_MAGIC, recover_bag
from imkd_ros.bag.source import BagSource
from imkd_ros.cli import main as cli_main

Msg = tuple[str, int, bytes]


def _messages(bag: Path) -> list[Msg]:
    """Every message of a bag, read with rosbags, as (topic, log time, raw bytes) in log-time order."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as r:
        return sorted((c.topic, int(t), bytes(raw)) for c, t, raw in r.messages())


def _indexed_messages(mcap: Path) -> list[tuple[int, Msg]]:
    """(end offset of its record in the file, message) of every message of an intact, uncompressed MCAP file, from
    the file's summary: rosbags' chunk index, then the message index records it points to."""
    from rosbags.rosbag2.storage_mcap import McapReader

    reader = McapReader(mcap)
    reader.open()
    try:
        topic = {cid: ch.topic for cid, ch in reader.channels.items()}
        chunks = list(reader.chunks)
    finally:
        reader.close()
    blob = mcap.read_bytes()
    le = int.from_bytes
    out = []
    for ch in chunks:
        assert ch.compression == ""
        records = ch.chunk_start_offset + 9 + 8 + 8 + 8 + 4 + 4 + len(ch.compression) + 8  # the chunk's records
        for cid, index_at in ch.message_index_offsets.items():
            assert blob[index_at] == 0x07
            n = le(blob[index_at + 11 : index_at + 15], "little") // 16
            for k in range(n):
                e = index_at + 15 + 16 * k
                log_time, offset = le(blob[e : e + 8], "little"), le(blob[e + 8 : e + 16], "little")
                at = records + offset
                assert blob[at] == 0x05
                length = le(blob[at + 1 : at + 9], "little")
                data = blob[at + 9 + 22 : at + 9 + length]
                out.append((at + 9 + length, (topic[cid], log_time, data)))
    return out


def _cut_copy(bag: Path, dst: Path, at: int, keep_metadata: bool = False) -> Path:
    """A bag folder holding ``bag``'s storage file cut to its first ``at`` bytes (and its metadata.yaml)."""
    dst.mkdir(parents=True)
    (f,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    with open(f, "rb") as src, open(dst / f.name, "wb") as out:
        out.write(src.read(at))
    if keep_metadata:
        shutil.copy(bag / "metadata.yaml", dst / "metadata.yaml")
    return dst


def test_cut_mcap_keeps_exactly_the_messages_before_the_cut(exported_bag: Path, tmp_path: Path) -> None:
    (mcap,) = exported_bag.glob("*.mcap")
    indexed = _indexed_messages(mcap)
    everything = _messages(exported_bag)
    assert sorted(m for _, m in indexed) == everything  # the index covers the whole bag
    size = mcap.stat().st_size
    # cuts inside chunks, right after one, and mid-file: each keeps exactly the messages whose records are whole
    ends = sorted(e for e, _ in indexed)
    cuts = [int(size * f) for f in (0.12, 0.35, 0.5, 0.81)] + [ends[len(ends) // 3], ends[len(ends) // 3] - 1]
    for i, at in enumerate(cuts):
        bag = _cut_copy(exported_bag, tmp_path / f"cut{i}", at, keep_metadata=i == 0)
        with pytest.raises(BagError, match="imkd bag recover"):
            BagSource(bag)  # the pipelines cannot open it, and say what to do
        out = tmp_path / f"rec{i}"
        rep = recover_bag(bag, out)
        expected = sorted(m for end, m in indexed if end <= at)
        got = _messages(out)
        assert got == expected, f"cut at {at}: {len(got)} messages recovered, {len(expected)} expected"
        assert rep.messages == len(expected) and rep.damage and 0 < rep.bytes_read <= at
        assert BagSource(out).message_count == len(expected)  # a valid bag: metadata.yaml, types, hashes
        if i == 0:  # metadata.yaml tells what was lost
            assert rep.lost_messages == len(everything) - len(expected) and rep.lost_seconds > 0
        else:
            assert rep.lost_messages is None
    # the intact bag is copied whole, with its types and QoS
    rep = recover_bag(exported_bag, tmp_path / "whole")
    assert not rep.damage and rep.lost_messages == 0 and _messages(tmp_path / "whole") == everything
    from rosbags.rosbag2 import Reader

    with Reader(exported_bag) as a, Reader(tmp_path / "whole") as b:
        key = {c.topic: (c.msgtype, c.digest, c.msgdef.data, c.ext.offered_qos_profiles) for c in a.connections}
        assert {c.topic: (c.msgtype, c.digest, c.msgdef.data, c.ext.offered_qos_profiles) for c in b.connections} == key


def test_damage_inside_an_mcap_stops_there(
    exported_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Zeroed bytes (a block lost in a crash) in the middle: the messages of the records before them survive."""
    (mcap,) = exported_bag.glob("*.mcap")
    indexed = _indexed_messages(mcap)
    ends = sorted(e for e, _ in indexed)
    at = ends[len(ends) // 2]  # just after a message record
    bag = tmp_path / "zeroed"
    shutil.copytree(exported_bag, bag)
    (f,) = bag.glob("*.mcap")
    blob = bytearray(f.read_bytes())
    blob[at : at + 4096] = bytes(4096)
    f.write_bytes(bytes(blob))
    assert cli_main(["bag", "recover", str(bag), str(tmp_path / "rec")]) == 0
    printed = capsys.readouterr().out
    assert "saved" in printed and "lost" in printed
    got = _messages(tmp_path / "rec")
    # the chunk holding the zeroed bytes is parsed up to them (no CRC to check in rosbags' chunks)
    assert got == sorted(m for end, m in indexed if end <= at)
    assert cli_main(["bag", "recover", str(bag), str(tmp_path / "rec")]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "x.mcap").write_bytes(MCAP_MAGIC + b"\x01")
    with pytest.raises(BagError, match="no complete message"):
        recover_bag(empty, tmp_path / "rec_nothing")
    assert not (tmp_path / "rec_nothing").exists()


@pytest.fixture(scope="module")
def sqlite_bag(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imkd_ros.bag.export import export_bag

    from .conftest import EXPORTED_SCENES

    out = tmp_path_factory.mktemp("bag_db3") / "synth_val"
    export_bag(synth_root, out, scenes=EXPORTED_SCENES, storage="sqlite3")
    return out


def test_cut_sqlite3_bag_keeps_the_readable_rows_in_order(sqlite_bag: Path, tmp_path: Path) -> None:
    """A cut .db3 cannot be opened at all (SQLite: "database disk image is malformed"); recovered, it gives the
    first rows (id order) up to the first whose pages are gone, byte for byte, and more for a later cut."""
    import sqlite3

    (db,) = sqlite_bag.glob("*.db3")
    with sqlite3.connect(db) as con:
        topic = dict(con.execute("SELECT id, name FROM topics"))
        rows = [
            (topic[t], int(s), bytes(d))
            for t, s, d in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
        ]
    size = db.stat().st_size
    counts = []
    for i, f in enumerate((0.2, 0.5, 0.9)):
        bag = _cut_copy(sqlite_bag, tmp_path / f"cut{i}", int(size * f) + 123)
        with pytest.raises(sqlite3.DatabaseError):
            sqlite3.connect(next(bag.glob("*.db3"))).execute("SELECT count(*) FROM messages").fetchone()
        rep = recover_bag(bag, tmp_path / f"rec{i}")
        got = _messages(tmp_path / f"rec{i}")
        assert got == sorted(rows[: len(got)])  # a prefix of the rows, intact
        assert rep.messages == len(got) and rep.damage
        counts.append(len(got))
    assert 0 < counts[0] < counts[1] < counts[2] < len(rows)


_WRITER = r"""
import sys, time
from rosbags.rosbag2 import StoragePlugin, Writer
from imkd_ros.bag.convert import default_typestore

out, storage, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = default_typestore()
String = store.types["std_msgs/msg/String"]
w = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
w.open()
conn = w.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
for i in range(100000):
    data = store.serialize_cdr(String(data=f"{i:06d}:" + "x" * 40000), "std_msgs/msg/String")
    w.write(conn, 10**9 + i * 10**7, data)
    if (i + 1) % every == 0:
        if storage == "sqlite3":
            w.storage.conn.commit()  # a recorder's periodic transaction (rosbag2 commits in batches too)
        print(i + 1, flush=True)
"""


def _kill_writer(tmp: Path, storage: str, every: int, after: int, delay: float) -> tuple[Path, int]:
    """Run a bag writer and SIGKILL it ``delay`` seconds after it reported ``after`` messages (while it goes on
    writing); returns the bag folder and the last count it reported (committed, for sqlite3)."""
    out = tmp / f"killed_{storage}_{after}"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(out), storage, str(every)], stdout=subprocess.PIPE)
    assert child.stdout is not None
    last = 0
    try:
        for line in child.stdout:
            last = int(line)
            if last >= after:
                time.sleep(delay)
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.kill()
        reported = [int(x) for x in child.communicate()[0].split()]  # what it printed before it died
        child.wait()
    assert child.returncode == -signal.SIGKILL and not (out / "metadata.yaml").exists()
    return out, max([last, *reported])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_killed_recorder_leaves_a_recoverable_bag(storage: str, tmp_path: Path) -> None:
    """Writers killed at (seeded) random moments while writing: the recovered bag holds the first messages written,
    intact; for sqlite3 exactly those of the last committed transaction (never part of one)."""
    rng = random.Random(17 if storage == "mcap" else 18)
    every = 25 if storage == "sqlite3" else 1
    for after in sorted(rng.sample(range(80, 160), 2)):
        bag, last = _kill_writer(tmp_path, storage, every, after, rng.uniform(0.0, 0.03))
        if storage == "mcap":  # no summary, no footer: no reader opens it
            with pytest.raises(BagError, match="imkd bag recover"):
                BagSource(bag)
        out = tmp_path / f"rec_{after}"
        rep = recover_bag(bag, out)
        got = _messages(out)
        n = len(got)
        assert [int(raw[8:14]) for _, _, raw in got] == list(range(n))  # the first n messages, in order
        assert all(raw[15:] == b"x" * 40000 + b"\x00" for _, _, raw in got)  # intact
        if storage == "sqlite3":
            assert n in (last, last + every)  # the last commit (it may have completed just before the kill)
        else:  # what reached the file: whole chunks (1 MiB, 26 messages) and the whole records of a cut one
            assert 0 < n <= last + 1 and last - n <= 30
        assert rep.messages == n and BagSource(out).message_count == n


_EXPORT = r"""
import sys
from imkd_ros.bag.export import export_bag
export_bag(sys.argv[1], sys.argv[2], scenes=sys.argv[3:], storage="mcap")
"""


def test_a_killed_export_leaves_no_bag_but_a_recoverable_partial(
    synth_root: Path, exported_bag: Path, tmp_path: Path
) -> None:
    """``imkd bag export`` writes into ``.NAME.partial/`` and renames at the end: killed midway, no bag appears under
    its name, and the partial one holds a prefix of what the finished export holds."""
    from imkd_ros.core.atomic import partial_dir_of

    from .conftest import EXPORTED_SCENES

    out = tmp_path / "export"
    inner = partial_dir_of(out) / out.name
    child = subprocess.Popen([sys.executable, "-c", _EXPORT, str(synth_root), str(out), *EXPORTED_SCENES])
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            files = list(inner.glob("*.mcap"))
            if files and files[0].stat().st_size > 12_000_000:  # a few chunks written
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert not out.exists() and inner.is_dir()
    rep = recover_bag(inner, tmp_path / "rescued")
    got, full = _messages(tmp_path / "rescued"), _messages(exported_bag)
    assert 0 < rep.messages == len(got) < len(full) and set(got) <= set(full)
