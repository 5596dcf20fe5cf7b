# The Loyalloop app image: `loyalloop worker`, `loyalloop api`, `loyalloop db upgrade`, and the
# support and finance commands, all from one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOYALLOOP_TEMPLATES_DIR=/app/templates

WORKDIR /src
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
RUN pip install --no-deps . \
    && mkdir -p /app \
    && cp -r templates /app/templates \
    && rm -rf /src \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin loyalloop

WORKDIR /app
USER loyalloop
EXPOSE 8000 9000
CMD ["loyalloop", "worker"]
