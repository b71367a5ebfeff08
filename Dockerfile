# spoolerd in a container (README.md, "Running it in a container"):
#
#   docker build -t spoolerd .
#   docker run -d --name spoolerd --stop-timeout 40 -e SPOOLERD_GRACE=30s \
#     -v spool:/var/spool/spoolerd -v "$PWD/tasks:/opt/spoolerd/tasks:ro" \
#     spoolerd --import /opt/spoolerd/tasks/tasks.mjs
#
# Task modules under /opt/spoolerd/ can `import { Spooler } from 'spoolerd'` (the
# package refers to itself by name). Producers write into the volume: another
# container that mounts it, or the host through the volume's folder.
# NODE_IMAGE: any image with node >= 20.19, npm and a shell with groupadd/useradd.
ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY spool ./spool
COPY runtime ./runtime
COPY spooler ./spooler
COPY cli ./cli
COPY bench ./bench
COPY examples ./examples
COPY conformance ./conformance
RUN npm run build && rm -rf dist/bench dist/conformance && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /opt/spoolerd
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# A dedicated user owns the spool; the volume gets this folder's owner and mode on first use.
RUN groupadd --system spoolerd \
 && useradd --system --gid spoolerd --home-dir /nonexistent --shell /usr/sbin/nologin spoolerd \
 && install -d -o spoolerd -g spoolerd -m 0700 /var/spool/spoolerd \
 && install -d -m 0755 /opt/spoolerd/tasks
VOLUME /var/spool/spoolerd
USER spoolerd
# `docker stop` waits 10 s before SIGKILL: keep --grace under it, or raise both
# (docker run --stop-timeout 40 -e SPOOLERD_GRACE=30s).
ENV SPOOLERD_GRACE=8s
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/opt/spoolerd/dist/cli/spoolerd.js", "--dir", "/var/spool/spoolerd"]
# The bundled example tasks; give your own with --import (the arguments replace these).
CMD ["--import", "/opt/spoolerd/dist/examples/tasks.js"]
