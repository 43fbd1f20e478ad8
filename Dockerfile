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

ARG VERSION=dev
LABEL org.opencontainers.image.title="surge" \
      org.opencontainers.image.description="Captures bursts of votes durably: web frontends, workers, results" \
      org.opencontainers.image.source="https://github.com/surge-vote/surge" \
      org.opencontainers.image.version="${VERSION}"

COPY .surge/dist/web .surge/dist/worker .surge/dist/result .surge/dist/healthcheck /

# Every service listens on :8080 in a container; the probe reads the same
# variable. Override both together if you move the port.
ENV SURGE_LISTEN=:8080
EXPOSE 8080

# No passwd file on scratch: a numeric unprivileged user.
USER 65532:65532

HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 CMD ["/healthcheck"]

# docker run surge /worker, /result; web is the default.
CMD ["/web"]
