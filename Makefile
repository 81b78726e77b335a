# The two commands a new user needs are `go run ./local` and `make test`.
# Every tool a target uses is pinned here and fetched by `go run`, so nothing
# has to be installed by hand.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME   ?= 1s
BENCHCOUNT  ?= 1

.PHONY: test bench lint run dynamodb-table

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

## DynamoDB store -------------------------------------------------------------

## dynamodb-table: create DYNAMODB_TABLE (default impressions) with the key
## schema and TTL the deployment uses, on the endpoint the AWS SDK settings
## name (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
DYNAMODB_TABLE ?= impressions
dynamodb-table:
	DYNAMODB_TABLE=$(DYNAMODB_TABLE) $(GO) run ./local create-table
