"""Reading an offline wandb run file (`run-<id>.wandb`) back, to test what lanbot logged without a server.

The file is wandb's header (":W&B", a 2-byte magic, a version byte) followed by a LevelDB-style log: 32 KiB
blocks of chunks, each with a 7-byte header (CRC32C, little-endian length, type 1 full / 2 first / 3 middle
/ 4 last). Each record is a wandb_internal_pb2.Record.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7


def records(path: str | Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the block's tail is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if pos + HEADER + length > len(data):  # a chunk still being written
            break
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def run_file(run_dir: str | Path) -> Path:
    """The one offline run file under a lanbot run folder."""
    [found] = list(Path(run_dir).rglob("offline-run-*/run-*.wandb"))
    return found


def artifacts(run_dir: str | Path, names: set[str] = frozenset(), wait_s: float = 30.0) -> dict[str, pb.ArtifactRecord]:
    """{name: artifact record} of the run; waits up to `wait_s` for `names` to appear, since wandb's service
    process may still be writing the file after `run.finish()` returned."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {r.artifact.name: r.artifact for r in records(run_file(run_dir))
                 if r.WhichOneof("record_type") == "artifact"}
        if set(names) <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
