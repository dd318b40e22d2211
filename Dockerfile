# syntax=docker/dockerfile:1
# One image for `mip serve` (the API) and `mip worker`. See docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: resolve the pinned dependencies and build the service into a venv ----------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/mip

# Dependencies first, from pyproject.toml alone, so a code change reuses this layer.
COPY pyproject.toml ./
# torch from PyTorch's CPU index first: from PyPI the same pin pulls several GB of CUDA wheels.
# (A GPU image for training workers swaps this index for a CUDA one; see docs/deploy.md.)
RUN /opt/mip/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/mip/bin/pip install --requirement requirements.txt

COPY README.md ./
COPY app ./app
COPY asr ./asr
COPY curation ./curation
COPY durable ./durable
COPY migrations ./migrations
RUN /opt/mip/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/mip/bin/pip install --no-deps /wheels/*.whl

# ---- runtime: the venv only, no build tools, no sources, a non-root user ------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/mip/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MIP_ENV=production \
    MIP_HOST=0.0.0.0 \
    MIP_PORT=8000 \
    MIP_DATA_DIR=/var/lib/mip

# espeak-ng and the text corpora: training jobs mix general synthetic speech into every epoch
# against forgetting (and `mip asr synth` / `train-base` need them).
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng wordnet-base fortunes wamerican \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric id, so orchestrators can enforce runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 mip \
    && useradd --system --uid 10001 --gid mip --home-dir /var/lib/mip --create-home \
        --shell /usr/sbin/nologin mip

COPY --from=builder /opt/mip /opt/mip
# The base model package shipped with the repository (read-only; MIP_MODELS_DIR holds others).
COPY models /opt/mip-models
ENV MIP_BUNDLED_MODELS_DIR=/opt/mip-models

USER mip
WORKDIR /var/lib/mip
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MIP_PORT', '8000') + '/healthz', timeout=4)"]

# `exec` hands PID 1 to uvicorn, so `docker stop` (SIGTERM) shuts it down gracefully.
CMD ["sh", "-c", "mip migrate && exec mip serve --host 0.0.0.0"]
