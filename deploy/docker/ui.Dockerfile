# polyllm-ui:latest — the web UI for the compose stack: built with node, served by nginx, which
# passes the API paths to the router (streams unbuffered). The native stack needs none of this:
# there the router serves ui/dist itself at /.
#   docker build -f deploy/docker/ui.Dockerfile -t polyllm-ui:latest .

FROM node:20-bookworm-slim AS build
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
# Sources only (never a host's node_modules or dist); tsc also checks e2e/ and scripts/.
COPY ui/index.html ui/tsconfig.json ui/vite.config.ts ui/vitest.e2e.config.ts ./
COPY ui/src ./src
COPY ui/e2e ./e2e
COPY ui/scripts ./scripts
RUN npm run build

FROM nginxinc/nginx-unprivileged:1.27-alpine
COPY ui/nginx.conf /etc/nginx/conf.d/default.conf
COPY --from=build /ui/dist /usr/share/nginx/html
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
