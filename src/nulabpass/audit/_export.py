"""Streaming exports of an organization's audit log, with a signed manifest.

An export covers the contiguous events ``first_seq``..``last_seq`` (for a month: from the
first event at or after its start to the last event before its end) of a log whose
checkpoint was signed when the export began. Its lines are produced from keyset batches,
each read in its own short transaction, so memory is constant and the log keeps taking
appends meanwhile. The manifest, available once every line was produced, names the
range, the file's SHA-256, the first and last event hashes with their inclusion proofs
in the checkpoint's tree, and is signed with the organization's key: a recipient checks
it offline with :func:`nulabpass.audit.verifier.verify_export`.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nulabpass.audit._chain import format_time
from nulabpass.audit._checkpoint import Checkpoint
from nulabpass.audit._formats import csv_header, csv_row, jsonl_line, ocsf_line
from nulabpass.audit._ledger import events_after
from nulabpass.audit._merkle import inclusion_ranges, leaf_hash, subtree_hashes
from nulabpass.audit._model import EventRecord, PersonalDatum
from nulabpass.audit.verifier import MANIFEST_FORMAT, manifest_bytes
from nulabpass.errors import InvalidInput
from nulabpass.ports import SigningKey, Store

__all__ = ["FORMATS", "AuditExport"]

Formatter = Callable[[EventRecord, Sequence[PersonalDatum]], str]

#: Export formats: name -> (line formatter, header line or "", file suffix).
FORMATS: dict[str, tuple[Formatter, str, str]] = {
    "csv": (csv_row, csv_header(), ".csv"),
    "jsonl": (jsonl_line, "", ".jsonl"),
    "ocsf": (ocsf_line, "", ".ocsf.jsonl"),
}


class AuditExport:
    """One export, ready to stream. Iterate :meth:`lines` (or call :meth:`write`) once;
    then :meth:`manifest` returns the signed manifest."""

    def __init__(
        self,
        *,
        store: Store,
        scope: str,
        fmt: str,
        first_seq: int | None,
        last_seq: int | None,
        since: datetime | None,
        until: datetime | None,
        checkpoint: Checkpoint,
        key: SigningKey,
        frontier_start: int,
        frontier: tuple[str, ...],
        batch_size: int = 1000,
    ) -> None:
        if fmt not in FORMATS:
            raise InvalidInput(
                f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.",
                code="audit.invalid_format",
            )
        self.store = store
        self.scope = scope
        self.format = fmt
        self.first_seq = first_seq
        self.last_seq = last_seq
        self.since = since
        self.until = until
        self.checkpoint = checkpoint
        self._key = key
        self._frontier_start = frontier_start
        self._frontier = frontier
        self._batch = batch_size
        self._digest = hashlib.sha256()
        self._count = 0
        self._first_hash: str | None = None
        self._last_hash: str | None = None
        self._done = False
        self._started = False

    @property
    def suffix(self) -> str:
        """The usual file suffix of this format."""
        return FORMATS[self.format][2]

    def _batches(self) -> Iterator[tuple[list[EventRecord], dict[str, tuple[PersonalDatum, ...]]]]:
        if self.first_seq is None or self.last_seq is None:
            return
        after = self.first_seq - 1
        while after < self.last_seq:
            with self.store.snapshot() as uow:
                events = []
                for event in events_after(uow, self.scope, after, batch_size=self._batch):
                    if event.seq > self.last_seq:
                        break
                    events.append(event)
                    if len(events) >= self._batch:
                        break
                personal = dict(uow.audit.personal_for([e.id for e in events]))
            if not events:
                return
            yield events, personal
            after = events[-1].seq

    def lines(self) -> Iterator[str]:
        """The export's lines (header first for CSV), each ending in a newline."""
        if self._started:
            raise InvalidInput("An export can be streamed once.", code="audit.export_consumed")
        self._started = True
        formatter, header, _ = FORMATS[self.format]
        if header:
            self._digest.update(header.encode("utf-8"))
            yield header
        for events, personal in self._batches():
            for event in events:
                line = formatter(event, personal.get(event.id, ()))
                self._digest.update(line.encode("utf-8"))
                if self._first_hash is None:
                    self._first_hash = event.hash
                self._last_hash = event.hash
                self._count += 1
                yield line
        self._done = True

    def write(self, path: str | Path) -> Path:
        """Write the export to ``path`` and its manifest beside it
        (``<path>.manifest.json``); return the manifest's path."""
        target = Path(path)
        with target.open("w", encoding="utf-8", newline="") as out:
            for line in self.lines():
                out.write(line)
        manifest_path = target.with_name(target.name + ".manifest.json")
        manifest_path.write_text(json.dumps(self.manifest(), indent=2) + "\n", encoding="utf-8")
        return manifest_path

    def manifest(self) -> dict[str, Any]:
        """The signed manifest; available once every line was produced."""
        if not self._done:
            raise InvalidInput(
                "Stream the whole export before asking for its manifest.",
                code="audit.export_incomplete",
            )
        first = self.first_seq if self._count else None
        last = (first + self._count - 1) if first is not None else None
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "file_format": self.format,
            "scope": self.scope,
            "since": None if self.since is None else format_time(self.since),
            "until": None if self.until is None else format_time(self.until),
            "first_seq": first,
            "last_seq": last,
            "count": self._count,
            "first_event_hash": self._first_hash,
            "last_event_hash": self._last_hash,
            "file_sha256": self._digest.hexdigest(),
            "checkpoint": self.checkpoint.to_json(),
            "inclusion": self._proofs(first, last),
            "key_id": self._key.key_id,
        }
        key = Ed25519PrivateKey.from_private_bytes(self._key.private_key)
        manifest["signature"] = key.sign(manifest_bytes(manifest)).hex()
        return manifest

    def _proofs(self, first: int | None, last: int | None) -> dict[str, list[str]]:
        if first is None or last is None:
            return {}
        size = self.checkpoint.tree_size
        first_ranges = inclusion_ranges(first - 1, size)
        last_ranges = inclusion_ranges(last - 1, size)
        frontier = [binascii.unhexlify(h) for h in self._frontier]
        with self.store.snapshot() as uow:
            leaves = (
                leaf_hash(binascii.unhexlify(e.hash))
                for e in events_after(uow, self.scope, self._frontier_start)
            )
            hashes = subtree_hashes(
                [*first_ranges, *last_ranges],
                leaves,
                start=self._frontier_start,
                frontier=frontier,
            )
        return {
            "first": [hashes[r].hex() for r in first_ranges],
            "last": [hashes[r].hex() for r in last_ranges],
        }
