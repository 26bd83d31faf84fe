# bootfarm's server image: build the TypeScript, then a slim runtime with only
# dist/, templates/, the production node_modules and the system tools bootfarm
# may call. BASE_IMAGE is any Debian bookworm image with Node >= 20.19 and npm:
# the official node image where a registry is reachable, or the local one that
# `bootfarm server-image` makes (debootstrap + this host's Node runtime).
#   docker build -t bootfarm/server:dev .                       (with a registry)
#   bootfarm server-image --tag bootfarm/server:dev             (without one)
# Run it with --network host, or attached to a lab bridge (server/lab/server-container.ts):
#   docker run -d --network host -v /etc/bootfarm:/etc/bootfarm:ro \
#     -v /var/lib/bootfarm:/var/lib/bootfarm bootfarm/server:dev
ARG BASE_IMAGE=node:20-bookworm-slim
# iproute2: addresses and links from inside the container (lab, debugging);
# nbd-server: the nbd.backend "nbd-server" option (about 10 MB with glib).
# radvd: dhcp.routerAdvertisements (iPXE stops waiting ~16 s for IPv6).
# nbdkit is left out (it pulls in curl, ssh, torrent libraries: add it here if
# you use nbd.backend "nbdkit").
ARG RUNTIME_PACKAGES="iproute2 nbd-server radvd mtools dosfstools"

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# npm-ca.pem (optional, build stage only): CA certificates npm must trust to
# reach the registry through a TLS-inspecting proxy; `bootfarm server-image`
# puts the host's NODE_EXTRA_CA_CERTS there. It never reaches the runtime stage.
COPY package.json package-lock.json npm-ca*.pem ./
# Optional native add-ons (ssh2's cpu-features) fail to compile without a
# toolchain and are left out; nothing bootfarm uses needs them.
RUN --mount=type=cache,target=/root/.npm \
    if [ -f npm-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/src/npm-ca.pem; fi; \
    npm ci --no-audit --no-fund --loglevel=error && rm -f npm-ca.pem
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
COPY templates ./templates
RUN npm run --silent build && npm prune --omit=dev --no-audit --no-fund --loglevel=error

FROM ${BASE_IMAGE} AS runtime
# RUNTIME_PACKAGES (declared above): the system tools bootfarm calls.
ARG RUNTIME_PACKAGES
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
WORKDIR /opt/bootfarm
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/templates ./templates
# The fleet dashboard's page and script (served as they are: tsc does not copy them to dist).
COPY --from=build /src/server/http/dashboard ./server/http/dashboard
COPY --from=build /src/dist ./dist
ENV NODE_ENV=production
VOLUME ["/var/lib/bootfarm"]
LABEL org.opencontainers.image.title="bootfarm" \
      org.opencontainers.image.description="bootfarm network-boot server (DHCP, TFTP, HTTP, NBD)"
# The build's own name (server/lab/server-image.ts buildId): the lab's upgrade
# test builds a second image of the same tree this way, cheaply (last layer only).
ARG BOOTFARM_BUILD=unnamed
LABEL dev.bootfarm.build="${BOOTFARM_BUILD}"
ENTRYPOINT ["node", "/opt/bootfarm/dist/server/cli/main.js"]
CMD ["serve", "--config", "/etc/bootfarm/bootfarm.yaml"]

# The whole emulation lab in one container (issue 23; `bootfarm lab image`):
# bootfarm's runtime plus the lab's peers. Run it privileged (--privileged, or the
# privileges docs/ci.md names); the lab makes its
# namespaces, bridge, taps and QEMU guests inside it, and bootfarm serves in a
# container of a Docker daemon inside it (`lab run --server docker`, the default
# here), or as a process in a lab namespace (`--server host`):
#   docker run --rm --privileged -v bootfarm-lab-cache:/var/lib/bootfarm-lab \
#     -v <images>:/var/lib/bootfarm/images:ro bootfarm/lab:dev lab run --nodes amd64-bios
# The packages come before bootfarm's files, so a change to bootfarm rebuilds
# only the last layer. qemu-system-x86 (SeaBIOS, iPXE's NIC ROMs), ovmf,
# qemu-system-arm and qemu-efi-aarch64 (AAVMF), u-boot-qemu: the boards; ipxe,
# grub-common, shim-signed, grub-efi-amd64-signed: what bootfarm serves them;
# curl: the lab's operator calls bootfarm's API; swtpm, swtpm-tools: --admission
# tpm; openssl: the lab's PKI; docker.io: the inner dockerd that runs bootfarm's
# server container (server/lab/inner-docker.ts).
FROM ${BASE_IMAGE} AS lab
ARG RUNTIME_PACKAGES
ARG LAB_PACKAGES="qemu-system-x86 ipxe-qemu seabios ovmf qemu-system-arm qemu-efi-aarch64 u-boot-qemu ipxe grub-common shim-signed grub-efi-amd64-signed curl swtpm swtpm-tools openssl procps docker.io"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} ${LAB_PACKAGES} \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
# The arm64 bootloaders bootfarm serves to the arm64 UEFI boards (GRUB, and the
# signed shim + GRUB for Secure Boot), as .debs for server/boot/bootloaders.ts:
# fetched now, with a private apt state (the image's dpkg stays amd64 only),
# because a lab container on a CI runner often cannot reach a Debian mirror.
RUN mkdir -p /opt/bootfarm/lab/debs /tmp/arm64-apt/lists/partial /tmp/arm64-apt/cache/archives/partial \
 && set -- -qq -o Dir::State::Lists=/tmp/arm64-apt/lists -o Dir::Cache=/tmp/arm64-apt/cache \
      -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
 && apt-get "$@" update \
 && cd /opt/bootfarm/lab/debs && apt-get "$@" download grub-efi-arm64-bin shim-signed grub-efi-arm64-signed \
 && rm -rf /tmp/arm64-apt
WORKDIR /opt/bootfarm
COPY --from=runtime /opt/bootfarm ./
# BOOTFARM_LAB_CONTAINER: `lab run` defaults to --server docker (its own dockerd,
# data root on the cache volume) and looks for images on that volume too.
ENV NODE_ENV=production BOOTFARM_LAB_CONTAINER=1
VOLUME ["/var/lib/bootfarm-lab"]
# The server image the inner dockerd loads (no registry): `bootfarm lab image` puts
# server-image.tar (docker save) and server-image.id in the context. Last, so a new
# server image rebuilds only this layer. The Dockerfile is named too because COPY
# needs one source that exists: a plain `docker build --target lab .` has no saved
# image, and its lab runs with --server host.
COPY Dockerfile server-image.* /opt/bootfarm/lab/
LABEL org.opencontainers.image.title="bootfarm lab" \
      org.opencontainers.image.description="bootfarm's emulation lab: bootfarm, QEMU boards and a scripted Raspberry Pi on a private bridge"
ENTRYPOINT ["node", "/opt/bootfarm/dist/server/cli/main.js"]
CMD ["lab", "run", "--help"]
