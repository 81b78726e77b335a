# The two commands a new user needs are `go run ./local` and `make test`.
# Every tool a target uses is pinned here and fetched by `go run`, so nothing
# has to be installed by hand.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME   ?= 1s
BENCHCOUNT  ?= 1
BENCH_OUT   ?= out/bench.txt

.PHONY: test bench lint run

## test: vet, then every test with the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## bench: the Go benchmarks of the store and the handler, on 1 and 2 cores,
## recorded in $(BENCH_OUT) and summarised with benchstat.
bench:
	@mkdir -p $(dir $(BENCH_OUT))
	@echo "benchmarks -> $(BENCH_OUT)"
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2 -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./shared/... > $(BENCH_OUT) || { cat $(BENCH_OUT); exit 1; }
	@cat $(BENCH_OUT)
	$(GO) run $(BENCHSTAT) $(BENCH_OUT)

## lint: formatting, vet and staticcheck.
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## run: the local server on :8080 with the in-memory store.
run:
	$(GO) run ./local

# ---- Load testing and the performance budget (loadtest/, docs/performance.md) ----
VEGETA_CLI := github.com/tsenart/vegeta/v12@v12.13.0
BENCHSTAT  := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

.PHONY: vegeta load bench-http rss

## vegeta: the vegeta CLI that loadtest/scripts use, into bin/.
vegeta:
	GOBIN=$(CURDIR)/bin $(GO) install $(VEGETA_CLI)

## load: the local server, a 20 s verified load test against it, then stop it.
load:
	loadtest/scripts/load.sh

## bench-http: the service's impression route against a bare net/http floor.
bench-http:
	loadtest/scripts/bench-http.sh

## rss: the local server's resident memory after a million distinct impressions.
rss:
	loadtest/scripts/rss.sh
