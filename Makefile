# Convenience targets; each is one command you can also run by hand.
.PHONY: build test bench run fuzz image scale

build:
	CGO_ENABLED=0 go build -trimpath -o bin/ferry ./cmd/ferry

test:
	go vet ./... && go test -race ./...

bench:
	go test -run '^$$' -bench . -benchmem ./...

run:
	go run ./cmd/ferry run

fuzz:
	bash .ci/run

# The FROM-scratch image ferry:dev (override with IMAGE=...). Builds the
# static binary first (without symbol tables: a third smaller); no image is
# pulled, so this works offline.
IMAGE ?= ferry:dev
image:
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/ferry ./cmd/ferry
	docker build -t $(IMAGE) .

# Throughput against the number of worker containers (docs/docker.md).
scale: image
	bash scripts/scale.sh

# Random NATS passwords for the compose files (docs/auth.md); never committed.
.env:
	umask 077; printf 'FERRY_WORKER_PASSWORD=%s\nFERRY_COORDINATOR_PASSWORD=%s\nFERRY_CLUSTER_PASSWORD=%s\n' \
	  "$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
	  "$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
	  "$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > $@
