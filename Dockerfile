# syntax=docker/dockerfile:1
# ip-timestamp: nginx on :8080 in front of Deno workers on Unix sockets,
# started by the stack supervisor under the base image's tini.
# Build: docker build -t ip-timestamp .   (podman: add --format docker, or the
# HEALTHCHECK is dropped). docs/container.md has the details.

# Keep in step with the Deno version in .github/workflows/ci.yml (a test checks).
ARG DENO_VERSION=2.9.6

FROM docker.io/denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /src
ENV DENO_NO_UPDATE_CHECK=1
# Dependency layer, rebuilt only when deno.json or deno.lock change. Deno
# fetches every package the lock pins, test-only ones too: they stay in this
# stage, as nothing but the bundles below leaves it.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY *.ts ./
COPY service/ service/
COPY stack/ stack/
COPY tasks/ tasks/
COPY nginx/ nginx/
COPY static/ static/
# Each program in one file, its npm packages, nginx template and static files
# inside (tasks/bundle.ts, as the tests build them): the final stage needs no
# npm cache, and nothing is fetched, bundled or transpiled at start. The
# country database stays a file of the image's that worker.js imports as
# bytes (DENO_UNSTABLE_RAW_IMPORTS below): inlined as base64 JavaScript, it
# would cost each worker over 100 MB to parse (docs/geo.md).
RUN deno run -A --frozen tasks/bundle.ts /app /usr/share/ip-timestamp/geo-whois-asn-country.mmdb

FROM docker.io/denoland/deno:debian-${DENO_VERSION}
# deno.json's version (the workflow and .ci/container/check.sh pass it).
ARG VERSION
LABEL org.opencontainers.image.title="ip-timestamp" \
  org.opencontainers.image.description="The current UTC time and the caller's IP address, as JSON, text or a page" \
  org.opencontainers.image.source="https://github.com/ip-timestamp/ip-timestamp" \
  org.opencontainers.image.licenses="MIT" \
  org.opencontainers.image.version="${VERSION}"
# nginx in front; procps for `kill` (nginx's worker processes).
# The base image brings /tini.
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light procps \
  && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old \
    /etc/nginx/sites-enabled/* \
  && groupadd --system --gid 10001 ip-timestamp \
  && useradd --system --uid 10001 --gid ip-timestamp --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin ip-timestamp
WORKDIR /app
# WORKER_BUNDLE: the workers run the bundle built above instead of bundling
# main.ts at start.
ENV DENO_NO_UPDATE_CHECK=1 PORT=8080 RUNTIME_DIR=/tmp/ip-timestamp \
  WORKER_BUNDLE=/app/worker.js DENO_UNSTABLE_RAW_IMPORTS=1
COPY --from=build /app/ /app/
COPY --from=build /usr/share/ip-timestamp/ /usr/share/ip-timestamp/
EXPOSE 8080
# Through nginx to a worker, like a client, for about 2 ms of CPU: bash's
# /dev/tcp, not a Deno runtime per check (docs/container.md).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET /livez HTTP/1.1\\r\\nHost: healthcheck\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 3 status <&3 && [[ $status == 'HTTP/1.1 200 '* ]]"]
# The supervisor drains nginx, then the workers, on SIGTERM.
STOPSIGNAL SIGTERM
USER ip-timestamp:ip-timestamp
ENTRYPOINT ["/tini", "--"]
# `deno task stack`, with the bundles: the supervisor's permission flags
# follow the settings (exact socket paths), so flags.js prints them first.
CMD ["/bin/sh", "-c", "exec deno run $(deno run --quiet --allow-env --allow-sys=uid --allow-run=cat flags.js stack) stack.js"]
