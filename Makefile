# The two commands a new user needs are `go run ./local` and `make test`.
# Every tool a target uses is pinned here and fetched by `go run`, so nothing
# has to be installed by hand.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME   ?= 1s
BENCHCOUNT  ?= 1

.PHONY: test bench lint run

## test: vet, then every test with the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## bench: the Go benchmarks of the store and the handler, on 1 and 2 cores.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2 -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./shared/...

## lint: formatting, vet and staticcheck.
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## run: the local server on :8080 with the in-memory store.
run:
	$(GO) run ./local
