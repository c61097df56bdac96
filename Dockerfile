# segmap service on the bundled data: docker build -t segmap . && docker run -p 8000:8000 segmap
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SEGMAP_DATA_DIR=/var/lib/segmap

WORKDIR /srv/segmap
# Dependencies first so code edits don't invalidate the install layer.
COPY pyproject.toml README.md constraints.txt ./
COPY spatial ./spatial
COPY app ./app
COPY maps ./maps
RUN pip install -c constraints.txt . && useradd --system --home /var/lib/segmap segmap \
    && mkdir -p /var/lib/segmap && chown segmap /var/lib/segmap
COPY data ./data

USER segmap
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
# Inside a container the service must listen on all interfaces; the CLI default stays 127.0.0.1.
CMD ["segmap", "serve", "--host", "0.0.0.0", "--port", "8000"]
