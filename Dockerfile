# One image, three services: web (also admin, with SURGE_MODE=admin), worker
# and result, plus the health probe. Static binaries on an empty base.
#
# The binaries are built on the host first, so the build pulls nothing:
#
#   make image                      # surge:latest and surge:<git commit>
#   make image IMAGE=registry.example.com/surge TAG=1.2.0
#
# (make image runs: CGO_ENABLED=0 go build -trimpath -o .surge/dist/ ./web
#  ./worker ./result ./stack/healthcheck, then docker build.)
FROM scratch

COPY .surge/dist/web .surge/dist/worker .surge/dist/result .surge/dist/healthcheck /

# Every service listens on :8080 in a container; the probe reads the same
# variable. Override both together if you move the port.
ENV SURGE_LISTEN=:8080
EXPOSE 8080

# No passwd file on scratch: a numeric unprivileged user.
USER 65532:65532

# The probe gives up after 3 s itself; a loaded host can take seconds just
# to start it (internal/stackfile explains the figures).
HEALTHCHECK --interval=5s --timeout=10s --start-period=20s --retries=10 CMD ["/healthcheck"]

# docker run surge /worker, /result; web is the default.
CMD ["/web"]

# Last, so that a rebuild with the same binaries reuses every layer above
# from Docker's build cache, whatever the version.
ARG VERSION=dev
LABEL org.opencontainers.image.title="surge" \
      org.opencontainers.image.description="Captures bursts of votes durably: web frontends, workers, results" \
      org.opencontainers.image.source="https://github.com/surge-vote/surge" \
      org.opencontainers.image.version="${VERSION}"
