# posbridge — build and check.
#
#   make build        the binary in bin/posbridge (version stamped)
#   make check        everything CI runs: gofmt, vet, staticcheck, all tests
#                     with the race detector, the OpenAPI lint, the systemd
#                     unit checks and the container build check
#   make crash-soak   the long crash sweep (≥200 kills per failpoint,
#                     ≥1,000 random kills)
#   make bench        the benchmarks

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)

.PHONY: build check fmt vet staticcheck test lint-openapi check-systemd check-container crash-soak bench

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/posbridge ./cmd/posbridge

check: fmt vet staticcheck test lint-openapi check-systemd check-container

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags failpoint ./...

staticcheck:
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags failpoint ./...

test:
	$(GO) test -race -count=1 -timeout 30m ./...

lint-openapi:
	scripts/lint-openapi.sh

check-systemd:
	scripts/check-systemd.sh

check-container:
	scripts/check-container.sh

crash-soak:
	POSBRIDGE_CRASH_SOAK=1 $(GO) test -count=1 -timeout 6h -run 'TestCrash' -v ./cmd/posbridge

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
