# syntax=docker/dockerfile:1.7
# One image recipe, one image per role (the extras each role needs):
#   engine   docker build --build-arg EXTRAS=kafka,lsl,tracking,gcs         -t bcistream/engine:0.1.0 .
#   serving  docker build --build-arg EXTRAS=serving,tracking,gcs           -t bcistream/serving:0.1.0 .
#   batch    docker build --build-arg EXTRAS=tracking,gcs,kafka,postgres    -t bcistream/batch:0.1.0 .
#   mlflow   docker build --build-arg EXTRAS=tracking,gcs,postgres          -t bcistream/mlflow:0.1.0 .
# (`make images` builds all four; docs/kubernetes.md has the push steps.)

# Pinned tag; pin the digest too in CI (python:3.11.14-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: compilers only here, never in the final image ------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=kafka,lsl,tracking,gcs
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (cached layer), then the package itself.
COPY pyproject.toml README.md ./
COPY bcistream ./bcistream
RUN pip install --upgrade pip \
 && pip install ".[${EXTRAS}]" \
 && python -m compileall -q /opt/venv

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG EXTRAS=kafka,lsl,tracking,gcs
LABEL org.opencontainers.image.title="bcistream" \
      org.opencontainers.image.description="Real-time motor-imagery EEG decoding (extras: ${EXTRAS})" \
      org.opencontainers.image.licenses="BSD-3-Clause" \
      io.bcistream.extras="${EXTRAS}"
# Fixed uid/gid: the k8s manifests run as 10001 (runAsUser) with a read-only root filesystem.
RUN groupadd --system --gid 10001 bcistream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/bcistream --create-home \
      --shell /usr/sbin/nologin bcistream \
 && mkdir -p /var/lib/bcistream \
 && chown 10001:10001 /var/lib/bcistream
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BCISTREAM_HOME=/var/lib/bcistream \
    MLFLOW_DISABLE_TELEMETRY=true \
    BENTOML_DO_NOT_TRACK=true
WORKDIR /var/lib/bcistream
USER 10001:10001
# engine metrics, BentoML service, MLflow server
EXPOSE 9100 3000 5000
ENTRYPOINT ["bcistream"]
CMD ["--help"]
