# Convenience targets; each is one command you can also run by hand.
.PHONY: build test bench run fuzz

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
