# syntax=docker/dockerfile:1
# The platform's Airflow image: the official Airflow 3.3.2 image plus requirements.lock (the same
# lock `make setup` installs) and the project's dags/, operators/, include/ and plugins/.
#
#   docker build --target airflow -t sre-delivery-airflow:3.3.2-dev .
#   docker build --target sandbox -t sre-delivery-sandbox:3.3.2-dev .   # plus the stand-ins
#
# The lock is compiled into wheels in a throw-away stage that has the compilers mysqlclient
# needs; the final image only installs those wheels.

FROM apache/airflow:3.3.2-python3.11 AS wheels
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config default-libmysqlclient-dev \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow
COPY requirements.lock /tmp/requirements.lock
RUN pip wheel --no-cache-dir --wheel-dir /tmp/wheels -r /tmp/requirements.lock

FROM apache/airflow:3.3.2-python3.11 AS airflow
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN --mount=type=bind,from=wheels,source=/tmp/wheels,target=/tmp/wheels \
    pip install --no-cache-dir --no-index --find-links /tmp/wheels -r /opt/airflow/requirements.lock
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 operators/ /opt/airflow/operators/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
# `import operators` and `import include` work in every Airflow process and in task code.
ENV PYTHONPATH=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# The local stand-ins (Kubernetes sites, gateway, Elasticsearch) for `--profile sandbox`;
# production images are built with `--target airflow` and never contain them.
FROM airflow AS sandbox
COPY --chown=airflow:0 sandbox/ /opt/airflow/sandbox/
