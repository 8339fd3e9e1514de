# syntax=docker/dockerfile:1

# perf-metrics API image.
#   docker build -t perf-metrics:local .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgresql://... perf-metrics:local
# Both stages must use the same Python image: the venv copied out of the builder points at
# that image's interpreter (/usr/local/bin/python3.12).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---- builder: a wheel of the project plus its dependencies' wheels, installed into a venv --------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /src
# Only what the wheel is built from (README.md is the `readme` named in pyproject.toml; the
# migrations are mapped into the package by pyproject.toml).
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations

# Every compiled dependency (asyncpg, uvloop, httptools, orjson, numpy, pgserver) ships manylinux
# x86_64 wheels, so no compiler is installed; one that needed a compiler would fail here loudly.
# On arm64 hosts pgserver has no wheel (nor sdist): build with --platform linux/amd64.
# pip's cache lives in a BuildKit cache mount: it speeds up rebuilds and never enters a layer.
# Then out of the venv goes what the service never runs (measured: 198 MB -> 159 MB): pip
# and setuptools (~25 MB) and the dependencies' own test suites (~18 MB, mostly numpy's).
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip wheel --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-index --find-links /wheels perf-metrics \
 && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && find /opt/venv/lib -path '*/site-packages/*' -type d -name tests -prune -exec rm -rf {} +

# ---- runtime: the venv and a non-root user, nothing else --------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    WEB_CONCURRENCY=2

RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /home/app
EXPOSE 8000

# Liveness only (/healthz needs no database); no curl in the image, so Python's urllib.
# Any error (refused, timeout, non-2xx) is an uncaught exception: exit status 1 = unhealthy.
# The empty ProxyHandler keeps an HTTP(S)_PROXY in the environment from catching 127.0.0.1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8000/healthz', timeout=4)"]

# `perf-metrics serve` has no environment variable for the worker count, so a shell expands
# WEB_CONCURRENCY and then `exec`s: the server replaces the shell as PID 1 and gets SIGTERM
# itself (uvicorn drains for up to 20 s). Overriding the command (`perf-metrics migrate`,
# `perf-metrics keys create ...`) replaces this line entirely: there is no ENTRYPOINT.
CMD ["sh", "-c", "exec perf-metrics serve --host 0.0.0.0 --port 8000 --workers \"${WEB_CONCURRENCY:-2}\""]
