"""A second process for the warehouse lock and crash tests (run with sys.executable).

Usage: python warehouse_helper.py COMMAND DATABASE [ARGS...]

  hold DATABASE SECONDS
      Insert one row ('holder', 1) in a transaction, print "holding", keep the
      transaction open for SECONDS, commit, print "done".
  append-rows DATABASE LABEL COUNT START_FILE
      Print "ready", wait until START_FILE exists, then insert COUNT rows (LABEL, i),
      each in its own transaction; print "done".
  append-frame DATABASE ROWS CHUNK_ROWS
      append_frame() ROWS rows tagged batch 'long' in chunks of CHUNK_ROWS, printing
      "chunk <rows written>" after each chunk; print "done".
  hang-in-transaction DATABASE ROWS
      Insert ROWS rows tagged batch 'uncommitted' inside a transaction, print
      "inserted", then sleep (the test kills the process) without committing.

Every table used is ``events(source VARCHAR, n BIGINT, batch_id VARCHAR)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas

from mlops_app.warehouse import Warehouse

EVENTS_TABLE = "CREATE TABLE IF NOT EXISTS events (source VARCHAR, n BIGINT, batch_id VARCHAR)"


def say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str]) -> int:
    command, database, *args = argv
    warehouse = Warehouse(database, lock_timeout=30)
    warehouse.execute(EVENTS_TABLE)

    if command == "hold":
        seconds = float(args[0])
        with warehouse.transaction() as connection:
            connection.execute("INSERT INTO events VALUES ('holder', 1, NULL)")
            say("holding")
            time.sleep(seconds)
        say("done")
    elif command == "append-rows":
        label, count, start_file = args[0], int(args[1]), Path(args[2])
        say("ready")
        while not start_file.exists():
            time.sleep(0.005)
        for index in range(count):
            warehouse.execute("INSERT INTO events VALUES (?, ?, NULL)", [label, index])
        say("done")
    elif command == "append-frame":
        rows, chunk_rows = int(args[0]), int(args[1])
        frame = pandas.DataFrame({"n": range(rows), "source": "append", "batch_id": "long"})
        warehouse.append_frame(
            "events", frame, chunk_rows=chunk_rows, on_chunk=lambda written, total: say(f"chunk {written}")
        )
        say("done")
    elif command == "hang-in-transaction":
        rows = int(args[0])
        with warehouse.transaction() as connection:
            connection.execute(
                "INSERT INTO events SELECT 'hang', range, 'uncommitted' FROM range(?)", [rows]
            )
            say("inserted")
            time.sleep(120)
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
