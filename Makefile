# teos-go. `make demo` and `make test` work on a fresh machine with Go installed: they fetch
# Go modules and the pinned btcd (into .bin/) themselves.
GO ?= go

.PHONY: all build demo test test-purego test-short fuzz e2e bench proto proto-check vet fmt-check btcd tor postgres lnd deps test-lnd clean

all: build

build:
	$(GO) build ./...

btcd:
	scripts/install-btcd.sh

# The pinned lnd and lncli for the lnd/ module's end-to-end tests (10+ minutes the first time).
lnd:
	scripts/install-lnd.sh

# Debian's tor and PostgreSQL for their tests, which start their own servers on loopback
# (apt-get; root or sudo). Each script returns at once when its program is there.
tor:
	scripts/install-tor.sh

postgres:
	scripts/install-postgres.sh

# Everything the whole suite runs against, besides Go's modules.
deps: btcd tor postgres lnd

# The tower end to end on a local regtest chain (btcd + teosd in a temp dir), narrated.
demo:
	GO=$(GO) scripts/demo.sh

# The whole suite, real btcd, tor, PostgreSQL and lnd included; CI runs exactly this.
test: deps vet fmt-check
	TEOS_REQUIRE_BTCD=1 $(GO) test -race -count=1 -timeout 45m ./...
	$(MAKE) test-purego
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh
	$(MAKE) test-lnd

# The lnd/ module (teosd with lnd's tower protocol): its tests, with real lnd nodes when
# .bin/lnd is there (make lnd; skipped otherwise unless CI or TEOS_REQUIRE_LND=1), and on
# PostgreSQL (the front end on a shared database). Under -race, teosd included (lnd/e2e).
test-lnd: btcd lnd postgres
	cd lnd && $(GO) vet ./... && TEOS_REQUIRE_BTCD=1 TEOS_REQUIRE_LND=1 $(GO) test -race -count=1 -timeout 30m ./...

# The build without cgo (pure-Go secp256k1): everything builds, the crypto packages pass.
test-purego:
	CGO_ENABLED=0 $(GO) build ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./pkg/wtcrypto/... ./pkg/teos/... ./internal/gatekeeper/...

# Every fuzz target for FUZZTIME each (5s by default; e.g. make fuzz FUZZTIME=10m).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Unit tests only (no node).
test-short:
	$(GO) test -short -race ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./pkg/... ./internal/store/ ./e2e/

vet:
	$(GO) vet ./...
	$(GO) vet -tags perf ./e2e/ ./internal/store/pgstore/ # the perf scripts' tests must compile too

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

proto:
	scripts/gen-proto.sh

proto-check:
	scripts/gen-proto.sh --check

clean:
	rm -rf .bin
