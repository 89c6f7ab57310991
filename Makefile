# Thin targets; anything longer than a line lives in scripts/.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build demo demo-secure test lint fuzz bench clean

# Static binaries: the same files run on the host and in the Vagrant VMs.
# bin/etcd is etcd built from the module meshpool pins (internal/cmd/etcd).
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/meshpool ./cmd/meshpool
	CGO_ENABLED=0 $(GO) build -o bin/etcd ./internal/cmd/etcd

demo: build
	./bin/meshpool dev --nodes 3 --task-interval 2s --work-time 500ms-3s

# The same with every lock on: a throw-away CA, certificates, a route secret and users.
demo-secure: build
	./bin/meshpool dev --secure --nodes 3 --task-interval 2s --work-time 500ms-3s

test:
	scripts/test.sh

lint:
	scripts/lint.sh

fuzz:
	scripts/fuzz.sh

bench:
	scripts/bench.sh

clean:
	rm -rf bin
