"""Start ``bqemulator`` (run by the emulator's own interpreter, .tools/bqemulator)
with the patches the production-profile tests need, each naming the symptom it
answers. Nothing here is imported by the platform or by the project's venv:
every emulator gap is confined to this file.

Usage: ``.tools/bqemulator/bin/python tests/production/emulator/launch.py
start --rest-port N --grpc-port M --project P`` (bqemulator's own CLI).
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import duckdb_extension_spatial

# Patch 1. Symptom: the emulator refuses to start with "DuckDB spatial
# extension is required ... INSTALL/LOAD spatial failed" (it downloads the
# extension from extensions.duckdb.org; there is no internet here). Every
# DuckDB connection of the emulator uses an extension directory inside its own
# environment, into which the extension file of the pinned
# duckdb-extension-spatial wheel (same DuckDB version) is INSTALLed; nothing is
# ever auto-installed from the network.
EXTENSIONS = Path(sys.prefix) / "duckdb_extensions"
SPATIAL = next(
    Path(duckdb_extension_spatial.__file__).parent.glob(
        f"extensions/v{duckdb.__version__}/spatial.duckdb_extension"
    )
)
_connect = duckdb.connect


def _connect_offline(database=":memory:", read_only=False, config=None, **kwargs):
    config = {
        "extension_directory": str(EXTENSIONS),
        "autoinstall_known_extensions": False,
        **(config or {}),
    }
    return _connect(database, read_only=read_only, config=config, **kwargs)


duckdb.connect = _connect_offline
_connect_offline().execute(f"INSTALL '{SPATIAL}'")


def _patch_multipart_content_type() -> None:
    """Patch 2. Symptom: Feast's entity upload (``load_table_from_dataframe``)
    fails with ``400 multipart upload's second part has unsupported
    Content-Type '*/*'`` (google-cloud-bigquery sends the parquet media part as
    ``*/*``; real BigQuery accepts it)."""
    from bqemulator.api.routes import upload

    upload._PERMITTED_MEDIA_CONTENT_TYPES = (
        *upload._PERMITTED_MEDIA_CONTENT_TYPES,
        "*/*",
    )


def _patch_script_temp_tables() -> None:
    """Patch 3. Symptom: the second ``get_historical_features`` fails with
    ``409 Already Exists: entity_dataframe``. Feast's point-in-time script runs
    ``CREATE TEMP TABLE entity_dataframe``; in BigQuery a script's temporary
    tables end with the script, in the emulator they are DuckDB temp tables of
    its one shared connection and live on. Drop the ones a script created."""
    from bqemulator.scripting.interpreter import ScriptInterpreter

    run = ScriptInterpreter.run
    temp_tables = "SELECT schema_name, table_name FROM duckdb_tables() WHERE temporary"

    async def run_and_drop_temp_tables(self, source):  # type: ignore[no-untyped-def]
        engine = self._ctx.engine
        before = set(engine.execute(temp_tables).fetchall())
        try:
            return await run(self, source)
        finally:
            for schema, table in set(engine.execute(temp_tables).fetchall()) - before:
                engine.execute(f'DROP TABLE IF EXISTS "{schema}"."{table}"')

    ScriptInterpreter.run = run_and_drop_temp_tables


def _patch_storage_read_of_query_results() -> None:
    """Patch 4. Symptom: reading any query result (Feast's ``to_df`` /
    ``to_arrow``) through the Storage Read API fails with ``404 Table read
    failed: Catalog Error: Table with name
    "<project>___bqemu_anonymous.anon<job>" does not exist``. BigQuery writes
    every query's result to an anonymous table that the Storage Read API can
    read; the emulator keeps results in memory (``JOB_RESULTS``) and serves
    them over REST only. For the read session's lifetime, put the job's result
    in the DuckDB table the read session's SELECT names."""
    from bqemulator.grpc_api import read_servicer
    from bqemulator.jobs.executor import JOB_RESULTS
    from bqemulator.storage.sql_identifiers import quoted_schema, quoted_table_ref

    handler = read_servicer.BigQueryReadHandler
    create = handler._handle_create_read_session

    def create_with_query_results(self, request_bytes, context):  # type: ignore[no-untyped-def]
        from google.cloud.bigquery_storage_v1 import types

        table_path = types.CreateReadSessionRequest.deserialize(
            request_bytes
        ).read_session.table
        parsed = read_servicer._parse_table_path(table_path)
        if parsed is None or parsed[1] != "_bqemu_anonymous":
            return create(self, request_bytes, context)
        project, dataset, table = parsed
        flat = table.removeprefix("anon")
        job_id = "-".join(
            (flat[0:8], flat[8:12], flat[12:16], flat[16:20], flat[20:32])
        )
        result = JOB_RESULTS.get(job_id, JOB_RESULTS.get(flat))
        if result is None:
            return create(self, request_bytes, context)
        conn = self._ctx.engine.connection
        target = quoted_table_ref(project, dataset, table)
        view = f"__bqemu_result_{flat}"
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema(project, dataset)}")
        conn.register(view, result)
        try:
            conn.execute(f'CREATE OR REPLACE TABLE {target} AS SELECT * FROM "{view}"')
            return create(self, request_bytes, context)
        finally:
            conn.unregister(view)
            conn.execute(f"DROP TABLE IF EXISTS {target}")

    handler._handle_create_read_session = create_with_query_results


def main() -> int:
    _patch_multipart_content_type()
    _patch_script_temp_tables()
    _patch_storage_read_of_query_results()
    from bqemulator.cli import main as bqemulator

    return bqemulator()


if __name__ == "__main__":
    sys.exit(main())
