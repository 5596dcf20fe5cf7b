# The Loyalloop app image: `loyalloop worker`, `loyalloop api`, `loyalloop db upgrade`, and the
# support and finance commands, all from one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/loyalloop \
    PATH=/opt/loyalloop/bin:$PATH \
    LOYALLOOP_TEMPLATES_DIR=/app/templates

WORKDIR /src
# The runtime pins of uv.lock first (no dev group, no Temporal binaries), so a code change does
# not reinstall them; uv at the version the lock pins for it, removed once it has done its work.
COPY pyproject.toml uv.lock ./
RUN pip install "uv==$(sed -n '/^name = "uv"$/{n;s/^version = "\(.*\)"$/\1/p;}' uv.lock)" \
    && uv sync --locked --no-dev --no-install-project

COPY . .
RUN uv sync --locked --no-dev --no-editable \
    && pip uninstall --yes uv \
    && mkdir -p /app \
    && cp -r templates /app/templates \
    && rm -rf /src \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin loyalloop

WORKDIR /app
USER loyalloop
EXPOSE 8000 9000
CMD ["loyalloop", "worker"]
