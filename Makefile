# tollgate — the two commands that matter are `make run` and `make test`.
GO      ?= go
PORT    ?= 8080
GOFILES  = $(shell git ls-files --cached --others --exclude-standard '*.go')

.PHONY: run test vet fmt-check unit deploy-dry-run bench fuzz

## run: both functions locally on the Functions Framework, memory store,
## user_token mode with a printed development ADMIN_KEY (or yours).
run:
	PORT=$(PORT) $(GO) run ./cmd/local

## test: vet, formatting, and every test with the race detector.
test: vet fmt-check unit

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $(GOFILES))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -timeout 25m ./...

## deploy-dry-run: print the gcloud commands the deploy would run.
deploy-dry-run:
	deploy/deploy.sh --dry-run --config deploy/env.example.yaml

## bench: hot-path Go benchmarks (-benchmem), then the end-to-end table:
## direct vs a bare ReverseProxy vs tollgate, side by side in one run
## (README.md, "Performance", explains it). One to two minutes.
BENCH_PKGS = ./functions/proxy ./shared/gatekeeper ./shared/models ./shared/ratelimit ./shared/users/...
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300ms $(BENCH_PKGS)
	$(GO) run ./cmd/bench

## fuzz: every fuzz target for a bounded time each (FUZZTIME, default 20s).
fuzz:
	bash scripts/fuzz.sh
