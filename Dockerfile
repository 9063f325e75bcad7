# The code location as its own image: the gRPC code server that the Dagster webserver and daemon
# load definitions from, and (on Kubernetes) the image of every run and step pod.
FROM python:3.11-slim

# DAGSTER_EVENT_BATCH_SIZE: Dagster hands the event log whole batches: a range run's per-partition
# materializations (one INSERT per output on Postgres instead of one transaction each: a year's
# backfill 51.7 s -> 41.3 s before the metadata change) and a run's planned partition events, which
# the instance's event log (ml_assets/postgres_storage.py) writes in one transaction (the year's
# backfill on the bench 19.9 s -> 8.0 s); without the setting, every event goes in one by one.
# MALLOC_ARENA_MAX: the IO manager's threads would each keep a glibc arena (20-55 MB at a year's peak).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    ML_ASSETS_ENV=production \
    DAGSTER_EVENT_BATCH_SIZE=1000 \
    MALLOC_ARENA_MAX=2 \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/ml_assets
# Dependencies first, so a code change rebuilds only the last layers.
# constraints.txt: the versions the suite and the bench ran with (`make lock` rewrites it), pip and
# the build backend (setuptools, pinned in pip's isolated build environment by --build-constraint)
# included.
COPY setup.py pyproject.toml README.md constraints.txt ./
RUN mkdir ml_assets && touch ml_assets/__init__.py \
    && pip install -c constraints.txt --upgrade pip \
    && pip install -c constraints.txt --build-constraint constraints.txt '.[production]' \
    && pip uninstall -y ml_assets
COPY ml_assets ./ml_assets
RUN pip install --no-deps --build-constraint constraints.txt . && mkdir -p "$DAGSTER_HOME"
COPY deploy/dagster.production.yaml /opt/dagster/home/dagster.yaml

RUN useradd --create-home --uid 1000 dagster && chown -R dagster "$DAGSTER_HOME"
USER dagster

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-m", "ml_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
