"""ETL: load files into tables."""

import csv
import re
from pathlib import Path

from flask import current_app
from sqlalchemy import Column, MetaData, Table, Text, create_engine, insert

from .registry import Param, task_type

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
BATCH = 1000


def _import_file(name: str) -> Path:
    """Return a file inside the import folder; refuse paths that leave it."""
    folder = Path(current_app.config["ETL_IMPORT_DIR"]).resolve()
    path = (folder / name).resolve()
    if folder not in path.parents:
        raise PermissionError(f"'{name}' is outside the import folder {folder}.")
    if not path.is_file():
        raise FileNotFoundError(f"No file '{name}' in the import folder {folder}.")
    return path


@task_type(
    "etl.load_csv",
    queue="etl",
    title="Load a CSV file into a table",
    params=[
        Param("file", "str", label="File (in the import folder)", required=True, max_length=255),
        Param("table", "str", label="Table", required=True, max_length=63,
              help="Letters, digits and underscores; the table is created if missing."),
        Param("mode", "choice", default="append", choices=("append", "replace")),
        Param("delimiter", "choice", default=",", choices=(",", ";", "\t", "|")),
    ],
)
def load_csv(run, file, table, mode="append", delimiter=","):
    """Load the rows of a CSV file (header row first) into a table of the ETL database."""
    if not IDENTIFIER.match(table):
        raise ValueError(f"'{table}' is not a valid table name.")
    path = _import_file(file)
    engine = create_engine(current_app.config["ETL_DATABASE_URL"])
    rows = 0
    try:
        with path.open(newline="") as handle, engine.begin() as conn:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next((row for row in reader if any(f.strip() for f in row)), None)
            if not header:
                raise ValueError(f"{file} is empty.")
            columns = [c.strip() or f"column_{i}" for i, c in enumerate(header)]
            target = Table(table, MetaData(), *(Column(c, Text) for c in columns))
            if mode == "replace":
                target.drop(conn, checkfirst=True)
            target.create(conn, checkfirst=True)
            batch = []
            for record in reader:
                if not any(field.strip() for field in record):
                    continue  # blank lines carry no row
                padded = (record + [None] * len(columns))[:len(columns)]
                batch.append(dict(zip(columns, padded)))
                if len(batch) == BATCH:
                    conn.execute(insert(target), batch)
                    rows += len(batch)
                    batch = []
            if batch:
                conn.execute(insert(target), batch)
                rows += len(batch)
    finally:
        engine.dispose()
    return {"file": file, "table": table, "rows": rows, "columns": columns, "mode": mode}
