"""Crashed recordings: ``imkd bag recover IN OUT`` writes the readable part of a truncated or damaged bag as a new,
valid bag (:func:`recover_bag`).

A recorder killed mid-drive (``kill -9``, power cut, full disk) leaves a bag no reader opens: an MCAP file without
its summary and footer (rosbags, the mcap libraries and rosbag2 read the index at the end first), or an SQLite file
with a hot journal, no ``metadata`` row and often no ``metadata.yaml``. Everything up to the damage is still
there. This module reads it in order and writes it again with rosbags' ``Writer`` (same storage, topics, message
types and definitions, type hashes and offered QoS), so the result has an index, a footer and ``metadata.yaml``.

**MCAP** (own record reader, following the MCAP specification: magic, then records of ``opcode u8 | length u64 |
body``): Schema and Channel records are collected, Message records kept, Chunks (none, ``zstd`` or ``lz4``
compression) decompressed and their CRC checked when they carry one. Reading stops at the first damage: a record
running past the end of the file, an unknown or zero opcode, a chunk that does not decompress or fails its CRC, a
message on a channel never defined. Of a chunk cut by the end of the file, the messages whose records lie complete
in the part that is there (for ``zstd``/``lz4`` chunks: in what decompresses of it) are kept, as ``mcap recover``
does; a chunk that fails its CRC is dropped whole. The end-of-data record (or the footer) means the file was
complete.

**SQLite3** (``.db3``): the file is copied with its ``-journal`` / ``-wal`` beside it into a temporary folder, so
that SQLite itself rolls back an interrupted transaction (or replays the committed WAL frames): the copy holds the
bag as of its last complete transaction. A file cut short (lost pages) is cut to whole pages and its header's page
count set to what is there (without that SQLite calls the whole file malformed); then the rows of ``messages`` are
read in id order until the first that cannot be read (a page beyond the cut: its data, or part of the table's
tree). Rows after that point are not looked for (a page-level scan such as ``sqlite3 FILE .recover`` can sometimes
find more).

Messages are written in the order read, with their log time; MCAP publish times and sequence numbers are not kept.
The report (:class:`RecoveryReport`) counts the messages and seconds saved and, where the bag's
``metadata.yaml`` says how many there were, lost; without it, a cut MCAP chunk's header still bounds the seconds
lost from below.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from imkd_ros.bag.errors import BagError, check_output_bag
from imkd_ros.core.atomic import atomic_dir

__all__ = ["MCAP_MAGIC", "McapScanner", "RecoveryReport", "recover_bag", "RECOVER_HINT"]

#: The magic bytes that open and close an MCAP file.
MCAP_MAGIC = b"\x89MCAP0\r\n"
#: What the bag pipelines suggest when a bag cannot be read.
RECOVER_HINT = "save its readable part with `imkd bag recover {path} OUT`"

_HEADER, _FOOTER, _SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _DATA_END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F
_KNOWN_OPS = frozenset(range(0x01, 0x11))
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class McapSchema:
    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class McapChannel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class McapMessage:
    channel_id: int
    log_time: int
    data: bytes


class _Cut(Exception):
    """Parsing a record ran past the bytes at hand."""


class _Damaged(Exception):
    """A record that parses but cannot be kept; the message names the damage (without its place)."""


class _Buf:
    """A little-endian reader over bytes; raises :class:`_Cut` past the end."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise _Cut
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8")

    def left(self) -> int:
        return len(self.data) - self.pos


def _schema(body: memoryview) -> McapSchema:
    b = _Buf(body)
    return McapSchema(b.u16(), b.string(), b.string(), bytes(b.take(b.u32())))


def _channel(body: memoryview) -> McapChannel:
    b = _Buf(body)
    cid, sid, topic, enc = b.u16(), b.u16(), b.string(), b.string()
    meta_b = _Buf(b.take(b.u32()))
    meta = {}
    while meta_b.left():
        key = meta_b.string()
        meta[key] = meta_b.string()
    return McapChannel(cid, sid, topic, enc, meta)


def _message(body: memoryview) -> McapMessage:
    b = _Buf(body)
    cid = b.u16()
    b.u32()  # sequence
    log_time = b.u64()
    b.u64()  # publish time
    return McapMessage(cid, log_time, bytes(b.take(b.left())))


class McapScanner:
    """Reads an MCAP file's records in order up to the first damage (see the module docstring).

    Iterate :meth:`records` for :class:`McapSchema`, :class:`McapChannel` and :class:`McapMessage` objects; then
    :attr:`damage` says why reading stopped (None: the file ended properly), :attr:`intact_bytes` how far it was
    read, and :attr:`lost_from_ns` / :attr:`lost_to_ns` the time span of a chunk cut by the damage (None: no such
    chunk header).
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.damage: str | None = None
        self.complete = False
        self.intact_bytes = 0
        self.lost_from_ns: int | None = None
        self.lost_to_ns: int | None = None
        self.channels: dict[int, McapChannel] = {}
        self.schemas: dict[int, McapSchema] = {}

    def records(self) -> Iterator[McapSchema | McapChannel | McapMessage]:
        with open(self.path, "rb") as f:
            if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
                self.damage = "no MCAP magic at the start (not an MCAP file?)"
                return
            self.intact_bytes = len(MCAP_MAGIC)
            while True:
                start = f.tell()
                head = f.read(9)
                if not head:
                    self.damage = f"the file ends at byte {start} without an end-of-data record (cut)"
                    return
                if len(head) < 9:
                    self.damage = f"cut inside a record header at byte {start}"
                    return
                op, length = head[0], int.from_bytes(head[1:], "little")
                if op not in _KNOWN_OPS and op < 0x80:
                    self.damage = f"unknown record opcode 0x{op:02x} at byte {start} (damaged data)"
                    return
                if op in (_DATA_END, _FOOTER):
                    self.complete = True
                    self.intact_bytes = start
                    return
                available = self.size - f.tell()
                if length > available:
                    if op == _CHUNK:
                        yield from self._chunk(f.read(available), start, cut=True)
                    else:
                        self.damage = f"record 0x{op:02x} at byte {start} runs past the end of the file (cut)"
                    if self.damage is None:
                        self.damage = f"chunk at byte {start} is cut by the end of the file"
                    return
                body = f.read(length)
                if op == _CHUNK:
                    yield from self._chunk(body, start, cut=False)
                    if self.damage is not None:
                        return
                else:
                    try:
                        rec = self._plain(op, memoryview(body))
                    except _Damaged as exc:
                        self.damage = f"{exc} at byte {start}"
                        return
                    except (_Cut, UnicodeDecodeError) as exc:
                        self.damage = f"malformed record 0x{op:02x} at byte {start} ({type(exc).__name__})"
                        return
                    if rec is not None:
                        yield rec
                self.intact_bytes = f.tell()

    def _plain(self, op: int, body: memoryview) -> McapSchema | McapChannel | McapMessage | None:
        """A top-level or in-chunk record: the object, or None (a record that carries no data to keep).

        Raises:
            _Damaged: a message on an undefined channel, or a chunk inside a chunk.
        """
        if op == _SCHEMA:
            s = _schema(body)
            self.schemas[s.id] = s
            return s
        if op == _CHANNEL:
            c = _channel(body)
            self.channels[c.id] = c
            return c
        if op == _MESSAGE:
            m = _message(body)
            if m.channel_id not in self.channels:
                raise _Damaged(f"message on channel {m.channel_id}, which was never defined (damaged data)")
            return m
        if op == _CHUNK:
            raise _Damaged("a chunk inside a chunk (damaged data)")
        return None

    def _chunk(self, body: bytes, start: int, *, cut: bool) -> Iterator[McapSchema | McapChannel | McapMessage]:
        b = _Buf(body)
        try:
            t0, t1, size, crc = b.u64(), b.u64(), b.u64(), b.u32()
            self.lost_from_ns, self.lost_to_ns = t0, t1
            compression = b.string()
            n = b.u64()
        except (_Cut, UnicodeDecodeError):
            self.damage = f"chunk at byte {start} cut in its header"
            return
        data = b.take(min(n, b.left()))
        complete = not cut and len(data) == n
        try:
            raw = _decompress(bytes(data), compression, complete)
        except Exception as exc:  # noqa: BLE001 - zstd/lz4 raise their own kinds for bad data
            self.damage = f"chunk at byte {start} does not decompress ({compression}: {exc})"
            return
        if complete and (len(raw) != size or (crc and zlib.crc32(raw) != crc)):
            self.damage = f"chunk at byte {start} fails its size or CRC check (damaged data); dropped whole"
            return
        inner = _Buf(raw)
        out: list[McapSchema | McapChannel | McapMessage] = []
        while inner.left():
            pos = inner.pos
            try:
                op, length = inner.take(1)[0], inner.u64()
                if op not in _KNOWN_OPS:
                    raise _Damaged(f"unknown opcode 0x{op:02x}")
                rec = self._plain(op, inner.take(length))
            except _Damaged as exc:
                self.damage = f"{exc} at offset {pos} of the chunk at byte {start}"
                break
            except (_Cut, UnicodeDecodeError):
                if complete:
                    self.damage = f"malformed record at offset {pos} of the chunk at byte {start}"
                break
            if rec is not None:
                out.append(rec)
        yield from out
        if self.damage is None and not cut:
            self.lost_from_ns = self.lost_to_ns = None  # the chunk was read whole


def _zstd() -> Any:
    """The zstd module rosbags uses (the standard library's from Python 3.14, else backports.zstd)."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef]
    return zstd


def _decompress(data: bytes, compression: str, complete: bool) -> bytes:
    """A chunk's records; of a cut chunk (``complete`` False) as much as decompresses."""
    if compression == "":
        return data
    if compression == "zstd":
        zstd = _zstd()
        return zstd.decompress(data) if complete else zstd.ZstdDecompressor().decompress(data)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data) if complete else lz4.frame.LZ4FrameDecompressor().decompress(data)
    raise ValueError(f"unsupported chunk compression {compression!r}")


# -- the report ---------------------------------------------------------------------------------------------------
@dataclass
class RecoveryReport:
    """What :func:`recover_bag` saved.

    Attributes:
        source, out: the damaged bag and the recovered one.
        storage: ``"mcap"`` or ``"sqlite3"``.
        messages: messages saved; ``topics``: per topic.
        start_ns, end_ns: log times of the first and last saved message (0 when none).
        seconds: ``(end_ns - start_ns) / 1e9``.
        damage: where and why reading stopped (per file); empty: the bag was intact.
        expected_messages, expected_seconds: what the bag's ``metadata.yaml`` says it held (None: no metadata).
        lost_messages, lost_seconds: expected minus saved (None: unknown).
        lost_seconds_at_least: without ``metadata.yaml``: the time span of a cut chunk after the last saved message
            (a lower bound of what was lost; None: unknown).
        bytes_read, bytes_total: how far the files were read intact, of their size.
    """

    source: str
    out: str
    storage: str
    messages: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0
    seconds: float = 0.0
    damage: list[str] = field(default_factory=list)
    expected_messages: int | None = None
    expected_seconds: float | None = None
    lost_messages: int | None = None
    lost_seconds: float | None = None
    lost_seconds_at_least: float | None = None
    bytes_read: int = 0
    bytes_total: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: saved and lost messages and seconds."""
        saved = f"saved {self.messages} messages ({self.seconds:.1f} s) of {self.source} into {self.out}"
        if not self.damage:
            return saved + "; the bag was intact, nothing lost"
        if self.lost_messages is not None:
            lost = f"lost {self.lost_messages} messages ({self.lost_seconds or 0.0:.1f} s, per metadata.yaml)"
        else:
            lost = "lost an unknown number of messages (no metadata.yaml)"
            if self.lost_seconds_at_least:
                lost += f", at least {self.lost_seconds_at_least:.1f} s"
        cut = self.bytes_total - self.bytes_read
        return f"{saved}; {lost}; {cut} of {self.bytes_total} bytes unreadable; stopped: {'; '.join(self.damage)}"


# -- recovering ---------------------------------------------------------------------------------------------------
def _storage_files(src: Path) -> tuple[list[Path], dict[str, Any]]:
    """The storage files of a bag (folder or single file) and its metadata (``rosbag2_bagfile_information``; empty
    when absent or unreadable)."""
    import yaml

    if src.is_file():
        return [src], {}
    meta: dict[str, Any] = {}
    meta_path = src / "metadata.yaml"
    if meta_path.is_file():
        with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
            meta = dict((yaml.safe_load(meta_path.read_text()) or {}).get("rosbag2_bagfile_information") or {})
    listed = [src / p for p in meta.get("relative_file_paths") or []]
    files = [p for p in listed if p.is_file()] or sorted([*src.glob("*.mcap"), *src.glob("*.db3")])
    return files, meta


def _msgtype_hashes(meta: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(topic, type) -> the topic's metadata.yaml entry."""
    out = {}
    for t in meta.get("topics_with_message_count") or []:
        m = t.get("topic_metadata") or {}
        out[(m.get("name", ""), m.get("type", ""))] = m
    return out


class _Out:
    """The recovered bag being written: connections added on first use, counts kept."""

    def __init__(self, writer: Any, meta: dict[str, Any], report: RecoveryReport) -> None:
        from imkd_ros.bag.convert import default_typestore

        self.writer = writer
        self.meta_topics = _msgtype_hashes(meta)
        self.report = report
        self.conns: dict[tuple[str, str, str, str], Any] = {}
        self.base = default_typestore()
        self._hash: dict[tuple[str, str], str] = {}
        self.uncompress: bool | None = None

    def _rihs01(self, msgtype: str, msgdef: str) -> str | None:
        key = (msgtype, msgdef)
        if key not in self._hash:
            from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

            try:
                if msgdef.startswith("=" * 80 + "\nIDL: "):
                    types: dict[str, Any] = {}
                    for part in msgdef.split("=" * 80 + "\n")[1:]:
                        types.update(get_types_from_idl(part.split("\n", 1)[1]))
                else:
                    types = get_types_from_msg(msgdef, msgtype) if msgdef.strip() else {}
                store = get_typestore(Stores.EMPTY)
                store.register({**self.base.fielddefs, **types})
                self._hash[key] = store.hash_rihs01(msgtype)
            except Exception:  # noqa: BLE001 - an unparsable definition: no hash
                self._hash[key] = ""
        return self._hash[key] or None

    def connection(self, topic: str, msgtype: str, msgdef: str, encoding: str, qos: str) -> Any:
        key = (topic, msgtype, encoding, qos)
        if key not in self.conns:
            from rosbags.rosbag2.metadata import parse_qos

            m = self.meta_topics.get((topic, msgtype), {})
            digest = m.get("type_description_hash") or self._rihs01(msgtype, msgdef)
            profiles = parse_qos(qos) if qos else parse_qos(m.get("offered_qos_profiles") or [])
            if digest and msgdef.strip():
                conn = self.writer.add_connection(
                    topic,
                    msgtype,
                    msgdef=msgdef,
                    rihs01=digest,
                    serialization_format=encoding,
                    offered_qos_profiles=profiles,
                )
            elif msgtype in self.base.fielddefs:  # no usable definition in the bag: the known one
                conn = self.writer.add_connection(
                    topic, msgtype, typestore=self.base, serialization_format=encoding, offered_qos_profiles=profiles
                )
            else:
                raise BagError(
                    f"topic {topic}: type {msgtype} has no definition in the bag and is not a known type; "
                    "it cannot be written to a valid bag"
                )
            self.conns[key] = conn
        return self.conns[key]

    def write(self, conn: Any, log_ns: int, data: bytes) -> None:
        if self.uncompress is None:  # message-compressed bags (zstd per message): store them uncompressed
            self.uncompress = data[:4] == _ZSTD_MAGIC
        if self.uncompress:
            data = _zstd().decompress(data)
        self.writer.write(conn, log_ns, data)
        r = self.report
        r.messages += 1
        r.topics[conn.topic] = r.topics.get(conn.topic, 0) + 1
        r.start_ns = log_ns if r.messages == 1 else min(r.start_ns, log_ns)
        r.end_ns = max(r.end_ns, log_ns)


def _recover_mcap(path: Path, out: _Out) -> None:
    scan = McapScanner(path)
    for rec in scan.records():
        if isinstance(rec, McapMessage):
            ch = scan.channels[rec.channel_id]
            schema = scan.schemas.get(ch.schema_id)
            if schema is None:
                out.report.damage.append(f"{path.name}: channel {ch.topic} has no schema; its messages are dropped")
                continue
            conn = out.connection(
                ch.topic,
                schema.name,
                schema.data.decode("utf-8", errors="replace"),
                ch.message_encoding,
                ch.metadata.get("offered_qos_profiles", ""),
            )
            out.write(conn, rec.log_time, rec.data)
    out.report.bytes_total += scan.size
    out.report.bytes_read += scan.size if scan.complete else scan.intact_bytes
    if scan.damage is not None:
        out.report.damage.append(f"{path.name}: {scan.damage}")
        if scan.lost_to_ns is not None:
            after = max(out.report.end_ns, scan.lost_from_ns or 0)
            span = max(0, scan.lost_to_ns - after) / 1e9
            out.report.lost_seconds_at_least = max(out.report.lost_seconds_at_least or 0.0, span)


def _sqlite_copy(path: Path, tmp: Path) -> tuple[Path, str | None, int]:
    """A copy of an SQLite file (and its journal or WAL) that SQLite can open: cut to whole pages, header page count
    set to the pages present. Returns the copy, a note when the file was cut, and the bytes kept."""
    dst = tmp / path.name
    shutil.copyfile(path, dst)
    for suffix in ("-journal", "-wal"):
        side = path.with_name(path.name + suffix)
        if side.is_file():
            shutil.copyfile(side, dst.with_name(dst.name + suffix))
    size = dst.stat().st_size
    with open(dst, "r+b") as f:
        head = f.read(100)
        if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
            raise BagError(f"{path}: not an SQLite database (no SQLite header)")
        page = int.from_bytes(head[16:18], "big")
        page = 65536 if page == 1 else page
        pages = int.from_bytes(head[28:32], "big")
        whole = size // page
        if size % page or whole < pages:
            f.truncate(whole * page)
            f.seek(28)
            f.write(struct.pack(">I", whole))
            return dst, f"cut: {size} bytes hold {whole} of the {pages} pages of the database", whole * page
    return dst, None, size


def _rows(con: sqlite3.Connection) -> Iterator[tuple[int, int, int, bytes]]:
    """``messages`` rows in id order, up to the first that cannot be read (then :class:`sqlite3.DatabaseError`)."""
    last = -(2**63)
    batch = 256
    while True:
        try:
            rows = con.execute(
                "SELECT id, topic_id, timestamp, data FROM messages WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
        except sqlite3.DatabaseError:
            if batch == 1:
                raise
            batch = 1  # find the last readable row one by one
            continue
        if not rows:
            return
        for row in rows:
            yield row
            last = row[0]


def _recover_sqlite(path: Path, out: _Out) -> None:
    with tempfile.TemporaryDirectory(prefix="imkd-recover-") as tmp:
        copy, cut, kept = _sqlite_copy(path, Path(tmp))
        if cut:
            out.report.damage.append(f"{path.name}: {cut}")
        con = sqlite3.connect(copy)  # read-write on the copy: SQLite rolls back a hot journal here
        try:
            try:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                cur = con.execute("SELECT * FROM topics")
                cols = [d[0] for d in cur.description]
                topics = {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}
                defs: dict[str, tuple[str, str]] = {}
                if "message_definitions" in tables:
                    for t, enc, text in con.execute(
                        "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
                    ):
                        defs[t] = (enc, text)
            except sqlite3.DatabaseError as exc:
                raise BagError(f"{path}: its topic table cannot be read ({exc}); nothing can be recovered") from exc
            try:
                for _, topic_id, stamp, data in _rows(con):
                    t = topics.get(topic_id)
                    if t is None:
                        out.report.damage.append(f"{path.name}: a message of unknown topic id {topic_id}")
                        break
                    conn = out.connection(
                        t["name"],
                        t["type"],
                        defs.get(t["type"], ("", ""))[1],
                        t.get("serialization_format", "cdr"),
                        t.get("offered_qos_profiles", ""),
                    )
                    out.write(conn, int(stamp), bytes(data))
            except sqlite3.DatabaseError as exc:
                out.report.damage.append(
                    f"{path.name}: rows after the {out.report.messages}th message cannot be read ({exc})"
                )
        finally:
            con.close()
    out.report.bytes_total += path.stat().st_size
    out.report.bytes_read += kept


def recover_bag(source: str | PathLike[str], out: str | PathLike[str]) -> RecoveryReport:
    """Write the readable part of the bag ``source`` (a rosbag2 folder, with or without ``metadata.yaml``, or a
    single ``.mcap`` / ``.db3`` file) as a new bag ``out`` of the same storage (see the module docstring). ``out``
    appears only when complete (:func:`imkd_ros.core.atomic.atomic_dir`).

    Raises:
        BagError: ``source`` missing or not a bag, ``out`` exists, or nothing readable.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    src, dst = Path(source), Path(out)
    if not src.exists():
        raise BagError(f"bag {src} does not exist")
    if dst.exists():
        raise BagError(f"{dst} exists; a bag is never overwritten (choose another OUT)")
    check_output_bag(dst)
    files, meta = _storage_files(src)
    if not files:
        raise BagError(f"{src}: no .mcap or .db3 file to recover")
    kinds = {p.suffix for p in files}
    if len(kinds) != 1 or not kinds <= {".mcap", ".db3"}:
        raise BagError(
            f"{src}: storage files {[p.name for p in files]}; recover reads .mcap or .db3 files of one kind "
            "(a file-compressed bag: decompress its readable part first, e.g. `zstd -d`)"
        )
    storage = "mcap" if kinds == {".mcap"} else "sqlite3"
    report = RecoveryReport(str(src), str(dst), storage)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with atomic_dir(dst) as inner:
        writer = Writer(inner, version=9, storage_plugin=plugin)
        writer.open()
        try:
            w = _Out(writer, meta, report)
            for p in files:
                (_recover_mcap if storage == "mcap" else _recover_sqlite)(p, w)
            if report.messages == 0:
                raise BagError(
                    f"bag {src}: no complete message before the damage ({'; '.join(report.damage) or 'empty bag'})"
                )
            writer.close()
        except BaseException:
            with contextlib.suppress(Exception):
                writer.abort()
            raise
    report.seconds = (report.end_ns - report.start_ns) / 1e9
    if meta.get("message_count") is not None:
        report.expected_messages = int(meta["message_count"])
        report.lost_messages = max(0, report.expected_messages - report.messages)
        start = int((meta.get("starting_time") or {}).get("nanoseconds_since_epoch", 0))
        dur = int((meta.get("duration") or {}).get("nanoseconds", 0))
        report.expected_seconds = dur / 1e9
        report.lost_seconds = max(0, start + dur - report.end_ns) / 1e9 if report.lost_messages else 0.0
    return report
