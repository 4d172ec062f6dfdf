# syntax=docker/dockerfile:1
# DICOM Vault: one image for every service. `dicomvault run <service>` picks the service:
#   docker run dicomvault                   # the gateway (default)
#   docker run dicomvault run catalogue     # any other service
# Settings come from DICOMVAULT_* environment variables (see docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# --- builder: compilers and headers, builds every wheel ---------------------------------------
FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first (cached while only the sources change).
COPY pyproject.toml README.md ./
COPY libs/ libs/
COPY cli/ cli/
COPY services/ services/
RUN pip wheel --wheel-dir /wheels ".[k8s,media,transcode]"
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels "dicomvault[k8s,media,transcode]" \
 && /opt/venv/bin/dicomvault --help > /dev/null

# --- viewer: the pinned prebuilt OHIF viewer (npm @ohif/app), rewritten for /viewer ----------
FROM ${NODE_IMAGE} AS viewer
COPY scripts/install-ohif.sh /src/install-ohif.sh
RUN /src/install-ohif.sh /opt/ohif

# --- runtime: Python, runtime libraries and the virtual environment; no compilers -------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dicomvault" \
      org.opencontainers.image.description="DICOM Vault: event-sourced DICOM archive" \
      org.opencontainers.image.licenses="Apache-2.0"
# xorriso: the optical-burner's ISO 9660 / burner back end; ca-certificates: https exporters.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates xorriso \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dicomvault \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dicomvault --no-create-home \
      --shell /usr/sbin/nologin dicomvault \
 && mkdir -p /var/lib/dicomvault \
 && chown 10001:10001 /var/lib/dicomvault
COPY --from=builder /opt/venv /opt/venv
# Served at /viewer when DICOMVAULT_VIEWER__DIST_DIR names it (chart: gateway.viewer.enabled).
COPY --from=viewer /opt/ohif/dist /opt/dicomvault/ohif
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DICOMVAULT_HTTP__HOST=0.0.0.0 \
    DICOMVAULT_GATEWAY__DIMSE_HOST=0.0.0.0 \
    DICOMVAULT_CACHE__ROOT=/var/lib/dicomvault/cache
WORKDIR /var/lib/dicomvault
USER 10001:10001
EXPOSE 11112 8080
ENTRYPOINT ["dicomvault"]
CMD ["run", "gateway"]
