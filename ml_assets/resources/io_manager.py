"""Parquet tables per partition, written atomically; partition ranges read and written in one step."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from ml_assets.domain.contract import PARTITION_COLUMN
from ml_assets.domain.tables import TEXT
from ml_assets.pools import map_threads
from ml_assets.resources.files import write_bytes_atomic, write_files_atomic

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# Input metadata: load the partitions that exist instead of failing on a missing one.
ALLOW_MISSING_PARTITIONS = "allow_missing_partitions"
# Input metadata: load only these columns of a table (the key Dagster's database IO managers read).
COLUMNS = "columns"


def _to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def split_by_partition(
    frame: pd.DataFrame, partition_keys: list[str], chunk_rows: int = 50_000, threads: int = 1
) -> dict[str, bytes]:
    """One Parquet file's bytes per partition key (an empty, typed table for a key with no rows).

    Whole days are converted to Arrow together, about `chunk_rows` rows at a time, with the schema
    inferred once from the whole frame (so a column empty in one chunk keeps its type): converting
    365 one-day frames cost more than writing them, converting the whole year at once held a
    second copy of it while the step's input and output were still in memory. A chunk's days are
    encoded on `threads` threads (Arrow's writer releases the GIL), one chunk at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if PARTITION_COLUMN not in frame.columns:
        raise ValueError(
            f"a partitioned table must carry a '{PARTITION_COLUMN}' column to be split by partition"
        )
    positions = frame.groupby(PARTITION_COLUMN, sort=False, observed=True).indices
    unknown = set(positions) - set(partition_keys)
    if unknown:
        raise ValueError(f"rows for partitions outside this run: {sorted(unknown)[:5]}")
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    # A day's file is one row group of ~900 rows, and most of its cost is per column: min/max
    # statistics would prune nothing its path does not, and dictionaries pay off for text only.
    # Encoding the year's feature days: 0.35 -> 0.25 s on two threads, 31 -> 35 MB, read 10 % faster.
    text = [
        field.name
        for field in schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ]

    def parquet(table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, use_dictionary=text, write_statistics=False)
        return sink.getvalue().to_pybytes()

    # Days without rows (most of a quarantine's) share one encoding of the empty table.
    empty = [key for key in partition_keys if key not in positions]
    parts = dict.fromkeys(empty, parquet(schema.empty_table())) if empty else {}
    chunks: list[list[str]] = [[]]
    rows = 0
    for key in (key for key in partition_keys if key in positions):
        if chunks[-1] and rows + len(positions[key]) > chunk_rows:
            chunks.append([])
            rows = 0
        chunks[-1].append(key)
        rows += len(positions[key])
    for chunk in (chunk for chunk in chunks if chunk):
        picked = np.concatenate([positions[key] for key in chunk])
        # A table already in day order (as our assets write theirs) is sliced, not copied.
        contiguous = bool((np.diff(picked) == 1).all())
        taken = frame.iloc[picked[0] : picked[-1] + 1] if contiguous else frame.take(picked)
        table = pa.Table.from_pandas(taken, schema=schema, preserve_index=False)
        del taken
        offsets = itertools.accumulate((len(positions[key]) for key in chunk), initial=0)
        slices = [table.slice(start, end - start) for start, end in itertools.pairwise(offsets)]
        parts.update(zip(chunk, map_threads(parquet, slices, threads), strict=True))
    return {key: parts[key] for key in partition_keys}


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, its text columns Arrow-backed (`domain.tables.TEXT`) whatever
    dtype wrote them: as the pipeline holds them, without a Python object per cell."""
    import pandas as pd
    import pyarrow as pa

    text = pd.api.types.pandas_dtype(TEXT)
    return table.to_pandas(
        types_mapper=lambda arrow: text if arrow in (pa.string(), pa.large_string()) else None
    )


def concat_parquet(files: list[bytes], threads: int = 1, columns: list[str] | None = None) -> pd.DataFrame:
    """Parquet files' rows as one DataFrame, in order, converted to pandas once.

    Arrow decodes each file and the concatenation is a list of chunks: a year's 365 files cost
    one pandas conversion instead of 365 (and a pd.concat copy). Each file is read as one file
    (`ParquetFile.read`), not through `pq.read_table`, which builds a dataset around it: the same
    table at a third of the cost (0.25 s against 0.71 s for a year's 365 validated days). Files are
    decoded on `threads` threads; with `columns`, only those columns are decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not files:
        import pandas as pd

        return pd.DataFrame()
    tables = list(
        map_threads(lambda data: pq.ParquetFile(pa.BufferReader(data)).read(columns=columns), files, threads)
    )
    non_empty = [table for table in tables if table.num_rows] or tables[:1]
    return to_pandas(pa.concat_tables(non_empty, promote_options="default"))


def select_columns(frame: pd.DataFrame, columns: list[str] | None, source: str) -> pd.DataFrame:
    """`frame`'s `columns`, in that order, sharing its memory: once `frame` itself is dropped, the
    columns not selected are freed (`frame[columns]` copied the selected ones instead). A column
    `frame` lacks is an error naming `source`. No `columns` (the input names none): `frame` itself."""
    import pandas as pd

    if columns is None:
        return frame
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise KeyError(f"{source}: no column {', '.join(missing)} to load")
    return pd.DataFrame({column: frame[column] for column in columns}, copy=False)


def reads_back_as_written(frame: pd.DataFrame, partition_keys: list[str]) -> bool:
    """Whether reading the partitions `frame` is written to gives `frame` back exactly.

    True when its index is 0..n-1, its rows run in `partition_keys`' order (how a range is read
    back: file after file, the keys sorted) and every column's type survives Parquet (Arrow's pandas metadata
    keeps nullable integers and `string` columns; an `object` column of numbers would come back
    as numbers). Only such a frame may be handed to the next step instead of being read back."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    index = frame.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        return False
    if PARTITION_COLUMN not in frame.columns:
        return False
    # Each row's place in the keys, by Arrow's hash lookup (null where a row's key is not one of
    # them): a tenth of pandas' Categorical, 0.004 s against 0.04 s for the year's raw table.
    try:
        text = pc.cast(pa.array(frame[PARTITION_COLUMN]), pa.string())
        order = pc.index_in(text, value_set=pa.array(partition_keys, pa.string()))
    except (pa.ArrowException, TypeError, ValueError):
        return False
    if order.null_count or (np.diff(np.asarray(order)) < 0).any():
        return False
    try:
        read_back = to_pandas(pa.Schema.from_pandas(frame, preserve_index=False).empty_table())
    except (pa.ArrowException, TypeError, ValueError):
        return False
    return list(read_back.columns) == list(frame.columns) and read_back.dtypes.equals(frame.dtypes)


def give_back_freed_memory() -> None:
    """Return memory the process has freed to the system: Arrow's pool keeps its segments, and
    glibc's heap the pages between live small allocations (a step's temporaries freed among them).

    Counted against the process until then, and not reused by the other allocator: on the year's
    backfill the features step began at ~560 MB resident, 352 MB after trimming both. Before a
    range's output is encoded, the step's own freed temporaries: the features step's peak 590-594
    -> 554-562 MB (three sampled runs each). A few milliseconds each time."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        trim = getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)
    except OSError:  # no glibc (macOS, musl): its allocator is left as it is
        return
    if trim is not None:  # a libc.so.6 shim without it (musl's gcompat)
        trim(0)


def release_unreachable_tables() -> None:
    """Free what only reference cycles still hold, and give freed memory back to the system
    (`give_back_freed_memory`), before a range of partitions is read.

    Recording a materialization, Dagster's sqlite event storage inserts the asset key, catches the
    IntegrityError of a key it already has, and updates instead. The caught exception's traceback
    keeps the frames that logged the event, and with them the step's output: the previous step's
    year-long table stayed in memory until Python's cycle collector happened to run. Measured on
    the year's backfill: 1 in 4 hash seeds peaked at 1,170 MB instead of 940 MB (the features step
    holding validated_data twice); a full collection costs tens of milliseconds, once per range read.
    """
    import gc

    gc.collect()
    give_back_freed_memory()


class ParquetTables(dg.ConfigurableIOManager):
    """DataFrames as `<asset>/<partition>.parquet`; records (dicts) as `<asset>.json`.

    A multi-partition output (a single-run backfill) is one DataFrame with a `landing_day` column,
    split here into one object per partition, so re-materializing a partition replaces it exactly.
    Subclasses say where the bytes go: each write must be atomic (a reader sees old or new).

    Within one run on the in-process executor (one IO manager for the whole run), a partitioned
    table the previous step wrote is handed to the next step that reads the same partitions as the
    object itself, once written, instead of being read back: a year's table is 0.4-0.5 s to decode.
    Only a table that would read back equal is kept (`reads_back_as_written`), only until the next
    step's outputs are written, and only for the run; the multiprocess and Kubernetes executors
    (a process per step) read every input from storage.
    """

    threads: int = Field(
        default=4,
        description="Partitions encoded, written and read at once (Parquet coding, fsync and S3 "
        "requests release the GIL); 1 for one at a time.",
    )

    # (asset key, partition keys) -> (step key, table), for this run; None outside a run.
    _written_this_run: dict[tuple[dg.AssetKey, tuple[str, ...]], tuple[str, Any]] | None = PrivateAttr(
        default=None
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._written_this_run = {}

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._written_this_run = None

    def location(self, relative: str) -> str:
        raise NotImplementedError

    def write(self, relative: str, data: bytes) -> None:
        raise NotImplementedError

    def write_many(self, writes: list[tuple[str, bytes]]) -> list[str]:
        """Each (relative path, bytes) written as `write` writes one, `threads` at a time; returns the
        leftovers of killed writes it removed on the way (none here: an object store has no temps)."""
        for _ in map_threads(lambda write: self.write(*write), writes, self.threads):
            pass
        return []

    def read(self, relative: str) -> bytes:
        raise NotImplementedError

    def exists(self, relative: str) -> bool:
        raise NotImplementedError

    @staticmethod
    def _relative(asset_key: dg.AssetKey, partition_key: str | None, suffix: str) -> str:
        if partition_key is None:
            return "/".join(asset_key.path) + suffix
        return "/".join([*asset_key.path, partition_key + suffix])

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        import pandas as pd

        self._forget_earlier_steps(context)
        if obj is None:
            return
        key = context.asset_key
        if isinstance(obj, pd.DataFrame):
            if context.has_asset_partitions:
                # Sorted, as a range is read: chunks of consecutive days are slices of a table in day order.
                keys = sorted(context.asset_partition_keys)
                if len(keys) > 1:
                    # The step's freed temporaries back to the system before the encoding allocates.
                    give_back_freed_memory()
                parts = split_by_partition(obj, keys, threads=self.threads)
                writes = [(self._relative(key, day, ".parquet"), data) for day, data in parts.items()]
                del parts
                swept = self.write_many(writes)
                if swept:
                    shown = ", ".join(swept[:5]) + (" ..." if len(swept) > 5 else "")
                    context.log.warning(
                        f"removed {len(swept)} temp file(s) a killed run left beside "
                        f"{key.to_user_string()}'s files: {shown}"
                    )
                self._keep_for_next_step(context, obj, keys)
            else:
                self.write(self._relative(key, None, ".parquet"), _to_parquet_bytes(obj))
            return
        if isinstance(obj, dict):
            payload = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
            self.write(self._relative(key, None, ".json"), payload)
            return
        raise TypeError(f"{key.to_user_string()}: cannot store a {type(obj).__name__}")

    def _forget_earlier_steps(self, context: dg.OutputContext) -> None:
        """A step's outputs replace the previous step's: at most one step's tables are held."""
        kept = self._written_this_run
        for held, (step, _) in list((kept or {}).items()):
            if step != context.step_key:
                del kept[held]

    def _keep_for_next_step(self, context: dg.OutputContext, table: pd.DataFrame, keys: list[str]) -> None:
        kept = self._written_this_run
        if kept is None:
            return
        if reads_back_as_written(table, keys):
            kept[(context.asset_key, tuple(keys))] = (context.step_key, table)

    def _written_earlier_in_run(self, context: dg.InputContext, keys: list[str]) -> pd.DataFrame | None:
        kept = self._written_this_run
        if not kept:
            return None
        held = kept.pop((context.asset_key, tuple(keys)), None)
        return None if held is None else held[1]

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        metadata = context.definition_metadata or {}
        columns = metadata.get(COLUMNS)
        if context.has_asset_partitions:
            # In key order (for our days, by date): Dagster gives a range run's keys as a set, which
            # iterates in an order that follows the process's hash seed.
            keys = sorted(context.asset_partition_keys)
            table = self._written_earlier_in_run(context, keys)
            if table is not None:
                table = select_columns(table, columns, key.to_user_string())
            if len(keys) > 1:
                # After the selection: the columns not selected are freed and given back with the rest.
                release_unreachable_tables()
            if table is not None:
                return table
            names = [self._relative(key, k, ".parquet") for k in keys]
            if metadata.get(ALLOW_MISSING_PARTITIONS):
                # A day held back by a blocking check has no table: train on the days that passed.
                present = list(map_threads(self.exists, names, self.threads))
                missing = [k for k, here in zip(keys, present, strict=True) if not here]
                if missing:
                    context.log.warning(
                        f"{key.to_user_string()}: {len(missing)} of {len(keys)} partitions not "
                        f"materialized, loading the rest: {missing[:10]}"
                    )
                names = [name for name, here in zip(names, present, strict=True) if here]
            table = concat_parquet(list(map_threads(self.read, names, self.threads)), self.threads, columns)
            # Arrow's reader skips a column the files lack; the input must say so instead.
            return select_columns(table, columns, key.to_user_string())
        json_name = self._relative(key, None, ".json")
        if self.exists(json_name):
            return json.loads(self.read(json_name))
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self.read(self._relative(key, None, ".parquet"))
        table = to_pandas(pq.ParquetFile(pa.BufferReader(data)).read(columns=columns))
        return select_columns(table, columns, key.to_user_string())


class ParquetIOManager(ParquetTables):
    """Asset tables under a local directory, each written to a temp file and renamed into place."""

    base_dir: str = Field(description="Directory under which asset outputs are stored.")

    def _file(self, relative: str) -> Path:
        return Path(self.base_dir) / relative

    def location(self, relative: str) -> str:
        return str(self._file(relative))

    def write(self, relative: str, data: bytes) -> None:
        write_bytes_atomic(self._file(relative), data)

    def write_many(self, writes: list[tuple[str, bytes]]) -> list[str]:
        swept = write_files_atomic([(self._file(relative), data) for relative, data in writes], self.threads)
        return [path.name for path in swept]

    def read(self, relative: str) -> bytes:
        return self._file(relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return self._file(relative).exists()
