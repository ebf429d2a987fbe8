# ferry's image: one static binary, nothing else. No base image is pulled,
# so it builds on a machine without registry access. Build the binary first:
#   make image          (or: CGO_ENABLED=0 go build -trimpath -o bin/ferry ./cmd/ferry
#                             && docker build -t ferry:dev .)
# The role is the command: docker run ferry:dev broker|worker|coordinator|health ...
FROM scratch
COPY bin/ferry /ferry
COPY configs/ferry.yaml /configs/ferry.yaml
# /data is the broker's JetStream store. A scratch image has no RUN to chown
# it, so a file copied with --chown creates it owned by the runtime user, and
# a volume mounted there starts with that owner. ferry itself needs no /tmp.
COPY --chown=65532:65532 configs/ferry.yaml /data/.ferry.yaml
USER 65532:65532
ENTRYPOINT ["/ferry"]
CMD ["--help"]
