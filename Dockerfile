# syntax=docker/dockerfile:1
# ip-timestamp: nginx on :8080 in front of Deno workers on Unix sockets,
# started by the stack supervisor (stack.ts) under tini.

# Keep in step with the Deno version in .github/workflows/ci.yml (a test checks).
ARG DENO_VERSION=2.9.6

FROM denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /app
ENV DENO_DIR=/deno-dir DENO_NO_UPDATE_CHECK=1
# Dependency layer: only the packages the service imports, at the versions
# deno.json pins; it is rebuilt only when deno.json or deno.lock change.
COPY deno.json deno.lock ./
RUN printf 'import "hono";\nimport "hono/html";\nimport "hono/http-exception";\nimport "hono/utils/accept";\nimport "ipaddr.js";\n' > deps.ts \
  && deno cache --frozen deps.ts \
  && rm deps.ts
COPY *.ts ./
COPY service/ service/
COPY stack/ stack/
COPY nginx/ nginx/
COPY static/ static/
# Nothing may be missing from the layer above (--cached-only), and loading
# each program once (a bad PORT makes it stop with exit 2) leaves its
# transpiled modules in the cache, so nothing is fetched or compiled at start.
# One bundle of main.ts caches the esbuild that the stack bundles the
# workers with at start.
RUN deno cache --frozen --cached-only main.ts stack.ts stack/permissions.ts \
  && { PORT=invalid deno run --cached-only --allow-env main.ts; test $? -eq 2; } \
  && { PORT=invalid deno run --cached-only --allow-env stack.ts; test $? -eq 2; } \
  && deno bundle --frozen --quiet --output /dev/null main.ts

FROM denoland/deno:debian-${DENO_VERSION}
ARG VERSION=dev
LABEL org.opencontainers.image.title="ip-timestamp" \
  org.opencontainers.image.description="The current UTC time and the caller's IP address, as JSON, text or a page" \
  org.opencontainers.image.source="https://github.com/ip-timestamp/ip-timestamp" \
  org.opencontainers.image.licenses="MIT" \
  org.opencontainers.image.version="${VERSION}"
# nginx in front, tini as PID 1, procps for `kill` of nginx's process group.
RUN apt-get update \
  && apt-get install -y --no-install-recommends nginx-light tini procps \
  && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
  && groupadd --system --gid 10001 ip-timestamp \
  && useradd --system --uid 10001 --gid ip-timestamp --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin ip-timestamp
WORKDIR /app
ENV DENO_DIR=/deno-dir DENO_NO_UPDATE_CHECK=1 \
  PORT=8080 RUNTIME_DIR=/tmp/ip-timestamp
COPY --from=build /deno-dir /deno-dir
COPY --from=build /app /app
EXPOSE 8080
# Through nginx to a worker, like a client.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["deno", "eval", "--quiet", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT')}/healthz`); Deno.exit(r.ok ? 0 : 1)"]
# The supervisor drains nginx, then the workers, on SIGTERM.
STOPSIGNAL SIGTERM
USER ip-timestamp:ip-timestamp
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["deno", "task", "--quiet", "stack"]
