# Convenience targets; each is one command you can also run by hand.
.PHONY: build test bench run fuzz image scale up down figures

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

# Compose v2 (docker compose) or v1 (docker-compose, Debian's package):
# whichever answers. make up WORKERS=4 runs a job on 4 worker containers.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
WORKERS ?= 2
up: image .env
	FERRY_EXPECT_WORKERS=$(WORKERS) $(COMPOSE) up --scale worker=$(WORKERS) --exit-code-from coordinator

down:
	$(COMPOSE) down -v

# Throughput against the number of worker containers (docs/docker.md).
scale: image
	bash scripts/scale.sh

# Every measured figure in README.md and docs/, rerun and rewritten
# (FIGURES_QUICK=1 for small sizes; see scripts/figures.sh).
figures:
	bash scripts/figures.sh

# Random NATS passwords for the compose files (docs/auth.md); never committed.
.env:
	umask 077; printf 'FERRY_WORKER_PASSWORD=%s\nFERRY_COORDINATOR_PASSWORD=%s\nFERRY_CLUSTER_PASSWORD=%s\n' \
	  "$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
	  "$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
	  "$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > $@
