# The iam-sidecar image: `docker build -t iam-sidecar:0.1.0 .` (docs/HELM.md).
# Installed as the README's Makefile installs it (pip install of this project), without the dev
# tools. It runs as a non-root user and writes nothing to its root filesystem, so it works with
# readOnlyRootFilesystem: true (the chart mounts an emptyDir on /tmp for anything temporary).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
RUN python -m pip install . && rm -rf /src

# A fixed numeric uid/gid so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 iam-sidecar \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin iam-sidecar
USER 10001:10001
WORKDIR /

EXPOSE 50051 9901 9902
ENTRYPOINT ["iam-sidecar"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:9901", \
     "--health-listen", "0.0.0.0:9902"]
