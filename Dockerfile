# syntax=docker/dockerfile:1

# Build: compile TypeScript with the dev toolchain.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# Production dependencies only (no typescript, vitest or the "node" devDependency).
FROM node:24-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

# The image's Node: the binary of the lockfile's "node" devDependency version for this architecture
# (npm's node-linux-<arch>, as `npm run image` ships), checked against scripts/node-checksums.txt
# before anything runs it. The lockfile pins only the wrapper package, not the binary it fetches, and
# the distroless tag below follows every Node 24 release.
FROM node:24-bookworm-slim AS node
WORKDIR /src
COPY package-lock.json ./
COPY scripts/node-checksums.txt ./scripts/
RUN set -eu; \
    v="$(awk '/^    "node_modules\/node": \{/ { f = 1 } f && /"version":/ { gsub(/[",]/, "", $2); print $2; exit }' package-lock.json)"; \
    case "$(uname -m)" in x86_64) p=linux-x64 ;; aarch64) p=linux-arm64 ;; *) p="linux-$(uname -m)" ;; esac; \
    sum="$(awk -v v="$v" -v p="$p" '$1 == v && $2 == p { print $3 }' scripts/node-checksums.txt)"; \
    if [ -z "$v" ] || [ -z "$sum" ]; then echo "no SHA-256 for Node $v $p in scripts/node-checksums.txt" >&2; exit 1; fi; \
    npm pack --silent "node-$p@$v" >/dev/null; \
    tar -xzf "node-$p-$v.tgz" package/bin/node; \
    echo "$sum  package/bin/node" | sha256sum -c -; \
    install -D -m 0755 package/bin/node /out/node

# The netpin-ipam CNI plugin (a Go module of its own), built by the script `npm run image` runs: a
# static binary (CGO_ENABLED=0), which the chart's optional DaemonSet copies onto each node.
FROM golang:1.26-bookworm AS ipam
WORKDIR /src
COPY netpin-ipam ./netpin-ipam
RUN mkdir -p /out && bash netpin-ipam/build.sh /out/netpin-ipam

# Runtime: Node 24 on distroless Debian 12 (glibc, like the build stages), no shell, uid 65532;
# its Node replaced by the one checked above.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
COPY --from=node /out/node /nodejs/bin/node
WORKDIR /app
ENV NODE_ENV=production
# package.json carries "type": "module", which dist/ needs at run time.
COPY package.json ./
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# Owned by root, 0755: the image's user (65532) may run it, not change it.
COPY --from=ipam --chmod=0755 /out/netpin-ipam /netpin-ipam/netpin-ipam
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "dist/src/cli/main.js"]
CMD ["serve"]
