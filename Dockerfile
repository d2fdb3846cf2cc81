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

# Runtime: Node 24 on distroless Debian 12 (glibc, like the build stages), no shell, uid 65532.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
# package.json carries "type": "module", which dist/ needs at run time.
COPY package.json ./
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "dist/src/cli/main.js"]
CMD ["serve"]
