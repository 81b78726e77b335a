# The two commands a new user needs are `go run ./local` and `make test`.
# Every tool a target uses is pinned here and fetched by `go run`, so nothing
# has to be installed by hand.

# Go 1.27.3 fixes standard library vulnerabilities that govulncheck reports in
# 1.26.8, the Go these machines start with. The go command fetches it from
# the module proxy on first use (about 80 MB, once).
export GOTOOLCHAIN := go1.27.3

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
# The vulnerability database, as a Go module, so that govulncheck runs with
# no other network access than the module proxy. Bump it to pick up new
# advisories.
VULNDB      := golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018
VULNDB_DIR  := build/vulndb/$(notdir $(VULNDB))
BENCHTIME   ?= 1s
BENCHCOUNT  ?= 1
FUZZTIME    ?= 30s
BENCH_OUT   ?= out/bench.txt

.PHONY: test bench lint run fuzz vulncheck dynamodb-table chromium screenshots

## test: vet, then every test with the race detector. The Lambda tests run
## the functions under the emulator that `rie` installs; the dashboard's
## tests drive the Chromium that `chromium` installs. The DynamoDB
## store's package runs its conformance suite, reach included, against a
## protocol server under the race detector, which on two cores takes
## longer than go test's default 10 minutes can allow when it shares them
## with the other packages.
test: rie chromium web-vendor-check
	$(GO) vet ./...
	$(RIE_ENV) $(GO) test -race -count=1 -timeout 30m ./...

# The concurrency tests: every test whose outcome depends on how goroutines,
# processes or DynamoDB instances interleave, as package:pattern for -run.
# Add a test here when you write one; `make stress` is to pass before an
# issue that touches concurrency is resolved.
STRESS_TESTS := \
	./shared/dynamostore:^TestStoresShareOneTableExactly$$ \
	./shared/dynamostore:^TestConformance$$/^Concurrent \
	./shared/dynamostore:^TestPingIsCachedBriefly$$ \
	./shared/memstore:^TestConformance$$/^Concurrent \
	./shared/memstore:^TestPersistentConformance$$/^Concurrent \
	./shared/memstore:^TestHighVolumeConcurrentImpressions$$ \
	./shared/memstore:^TestStatsNeverShowACountAFailedFsyncTakesBack$$ \
	./shared/memstore:^TestDuplicateWaitsOnlyForTheRecordThatMadeIt$$ \
	./shared/memstore:^TestConcurrentBatchesOverManyCampaigns$$ \
	./shared/memstore:^TestReopenConformance$$/^Concurrent \
	./shared/dynamostore:^TestBatchConcurrencyIsBounded$$ \
	./shared/dynamostore:^TestBatchFailureIsWholeAndRetrySafe$$ \
	./shared/dynamostore:^TestApplyExactlyOnce$$ \
	./shared/dynamostore:^TestConcurrentAggregatorsLoseNoUser$$ \
	./shared/dynamostore:^TestReachMergeRetriesAConflict$$ \
	./shared/dynamostore:^TestCampaignReadsAreShared$$ \
	./shared/dynamostore:^TestCampaignChangesReachEveryStoreWithinTheRefresh$$ \
	./shared/memstore:^TestListIsStableUnderCreates$$ \
	./shared/memstore:^TestSnapshotsAmidTrafficRestoreExactly$$ \
	./shared/streampoll:^TestTwoPollersCountExactly$$ \
	./shared/streampoll:^TestReshardWhileCounting$$ \
	./shared/streampoll:^TestTwoPollersGiveExactCounts$$ \
	./shared/streampoll:^TestReshardMidRun$$ \
	./local:^TestLoadHarnessVerifiesTwoServersOnOneTable$$ \
	./shared/httpapi:^TestConcurrentIngestCountsEachOnce$$ \
	./shared/botfilter:^TestConcurrentUse$$ \
	./shared/memstore/wal:^TestGroupCommitUnderConcurrency$$ \
	./shared/logbuf:^TestWriterConcurrentWriters$$ \
	./shared/logbuf:^TestWriterFlush$$ \
	./shared/logbuf:^TestWriterGathersLines$$ \
	./shared/logbuf:^TestWriterNeverBlocksOnAStoppedReader$$ \
	./local:^TestCleanShutdownWritesEveryRequestLine$$ \
	./shared/syncbuf:^TestConcurrentWritesStayWhole$$ \
	./shared/httpapi:^TestClientHangUpIs499$$ \
	./shared/httpapi:^TestStoreFailureDuringHangUpStaysAStoreFailure$$ \
	./shared/apiclient:^TestNoAnswer$$ \
	./loadtest:^TestTargeterIsSafeForConcurrentUse$$ \
	./local:^TestConformanceThroughTheClient$$/^Concurrent \
	./local:^TestBlockedStdoutDoesNotBlockRequests$$ \
	./local:^TestStdoutThatNeverReadsAgain$$ \
	./local:^TestConnectionLimit$$ \
	./local:^TestRestartKeepsAcknowledgedImpressions$$ \
	./functions:^TestDynamoDBUnderEmulator$$ \
	./functions:^TestConformanceUnderEmulator$$
STRESS_COUNT ?= 20
STRESS_ONLY  ?=

.PHONY: stress

## stress: each concurrency test in STRESS_TESTS (package:pattern, one test
## an entry, no spaces or parentheses), STRESS_COUNT (20) times on
## 1 and 2 cores with the race detector; any failure fails it.
## STRESS_ONLY=dynamostore keeps the entries that contain that text.
stress: rie
	@set -e; for entry in $(STRESS_TESTS); do \
		case "$$entry" in *"$(STRESS_ONLY)"*) ;; *) continue ;; esac; \
		pkg="$${entry%%:*}"; run="$${entry#*:}"; \
		echo "stress: $$pkg -run '$$run'"; \
		$(GO) test -list "$${run%%/*}" "$$pkg" | grep -q '^Test' || { echo "stress: no test in $$pkg matches $${run%%/*}"; exit 1; }; \
		$(RIE_ENV) $(GO) test -race -count=$(STRESS_COUNT) -cpu 1,2 -timeout 60m -run "$$run" "$$pkg"; \
	done

# The dashboard's browser tests (local/dashboard_test.go) drive Debian's
# Chromium through chromedp; they fail, rather than skip, without it.
CHROMIUM := /usr/bin/chromium

# apt-install: the recipe lines that install the Debian packages $(2) with
# apt-get, as root or through sudo, unless the shell test $(1) passes
# already, and that fail unless it passes afterwards. Every target that
# installs what the tests need from Debian's packages uses it.
define apt-install
@{ $(1); } >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $(2); \
}
@{ $(1); } >/dev/null 2>&1 || { echo "$@: $(2) installed, but '$(1)' still fails"; exit 1; }
endef

## chromium: Debian's chromium package, unless $(CHROMIUM) is there already
## (apt-get, as root or through sudo).
chromium:
	$(call apt-install,test -x $(CHROMIUM),chromium)

## screenshots: the dashboard's list and campaign page, desktop (1280x800)
## and phone (390x844), with seeded data, into docs/screenshots/*.png.
screenshots: chromium
	$(GO) test -count=1 -run '^TestDashboardScreenshots$$' ./local -args -screenshots=$(CURDIR)/docs/screenshots

## bench: the Go benchmarks of the store and the handler, on 1 and 2 cores,
## recorded in $(BENCH_OUT) and summarised with benchstat.
bench:
	@mkdir -p $(dir $(BENCH_OUT))
	@echo "benchmarks -> $(BENCH_OUT)"
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2 -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./shared/... > $(BENCH_OUT) || { cat $(BENCH_OUT); exit 1; }
	@cat $(BENCH_OUT)
	$(GO) run $(BENCHSTAT) $(BENCH_OUT)

## lint: formatting, vet, staticcheck and govulncheck; vet and staticcheck
## also over the container tests, which build only with their tag.
lint: vulncheck
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) vet -tags container ./local/containertest
	$(GO) run $(STATICCHECK) -tags container ./local/containertest

## vulncheck: govulncheck against a local copy of the Go vulnerability database.
vulncheck: $(VULNDB_DIR)/index/db.json
	$(GO) run $(GOVULNCHECK) -db file://$(abspath $(VULNDB_DIR)) ./...

$(VULNDB_DIR)/index/db.json:
	@src="$$($(GO) mod download -json $(VULNDB) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')"; \
	test -n "$$src" || { echo "could not download $(VULNDB)"; exit 1; }; \
	rm -rf $(VULNDB_DIR) && $(GO) run golang.org/x/vulndb/cmd/indexdb@$(lastword $(subst @, ,$(VULNDB))) -vulns "$$src/data/osv" -out $(VULNDB_DIR)

## fuzz: run each fuzz target for FUZZTIME (make test runs only their seeds).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzBatchItem$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzBatchBody$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzAppendMarshaledString$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzAppendJSONString$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzAppendJSONFloat$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzTimeText$$' -fuzztime $(FUZZTIME) ./shared/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzIsBot$$' -fuzztime $(FUZZTIME) ./shared/botfilter
	$(GO) test -run '^$$' -fuzz '^FuzzParseBatchReply$$' -fuzztime $(FUZZTIME) ./loadtest

## run: the local server on :8080 with the in-memory store.
run:
	$(GO) run ./local

# ---- AWS Lambda -------------------------------------------------------------
# `make build` builds every function as build/<function>/bootstrap for the
# provided.al2023 runtime; `sam build` calls the build-<LogicalId> targets with
# ARTIFACTS_DIR set. Release flags: a static binary without the RPC mode that
# provided.al2023 never uses, without build paths, symbols or DWARF. The
# emulator tests build with the same flags (functions/emulator_test.go).

# The functions, grouped by what they may do (docs/lambda.md): ingest records
# impressions, admin creates and reads campaigns and reads stats, aggregate
# folds the table's stream into the counts. Each has a build-<LogicalId>
# target below for sam build.
FUNCTIONS    := ingest admin aggregate
GOARCH       ?= arm64
LAMBDA_BUILD  = CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -tags lambda.norpc -trimpath -ldflags "-s -w"

# The Lambda runtime interface emulator, installed into the repository.
RIE_VERSION  := v0.0.0-20261030222936-bef5c4ba774d
RIE          := $(CURDIR)/build/bin/aws-lambda-rie
RIE_ENV      := AWS_LAMBDA_RIE=$(RIE)

.PHONY: build rie lambda-figures FORCE

## build: every function's bootstrap for Lambda, arm64 unless GOARCH says otherwise.
build: $(FUNCTIONS:%=build/%/bootstrap)

build/%/bootstrap: FORCE
	$(LAMBDA_BUILD) -o $@ ./functions/$*

build-IngestFunction: build/ingest/bootstrap
	cp $< $(ARTIFACTS_DIR)/bootstrap

build-AdminFunction: build/admin/bootstrap
	cp $< $(ARTIFACTS_DIR)/bootstrap

build-AggregateFunction: build/aggregate/bootstrap
	cp $< $(ARTIFACTS_DIR)/bootstrap

## rie: the pinned Lambda runtime interface emulator, into build/bin.
rie:
	GOBIN=$(CURDIR)/build/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

## lambda-figures: each function's arm64 release size and its Init Duration
## under the emulator (built for this machine), with the date and machine.
lambda-figures: build rie
	@date; echo "nproc: $$(nproc)"; grep -m1 'model name' /proc/cpuinfo
	@for f in $(FUNCTIONS); do echo "$$f: $$(stat -c %s build/$$f/bootstrap) bytes (linux/$(GOARCH) release build)"; done
	$(RIE_ENV) $(GO) test ./functions -run '^$$' -bench ColdStart -benchtime 10x
## DynamoDB store -------------------------------------------------------------

## dynamodb-table: create DYNAMODB_TABLE (default impressions) with the key
## schema and TTL the deployment uses, on the endpoint the AWS SDK settings
## name (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
DYNAMODB_TABLE ?= impressions
dynamodb-table:
	DYNAMODB_TABLE=$(DYNAMODB_TABLE) $(GO) run ./local create-table

# ---- Load testing and the performance budget (loadtest/, docs/performance.md) ----
VEGETA_CLI := github.com/tsenart/vegeta/v12@v12.13.0
BENCHSTAT  := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

.PHONY: vegeta load bench-http bench-compare bench-persistence rss chaos

## vegeta: the vegeta CLI that loadtest/scripts use, into bin/.
vegeta:
	GOBIN=$(CURDIR)/bin $(GO) install $(VEGETA_CLI)

## load: the local server, a 20 s verified load test against it, then stop it.
load:
	loadtest/scripts/load.sh

## bench-http: the service's impression route against a bare net/http floor;
## BASELINE=<rev> also measures that revision's server in every round.
bench-http:
	loadtest/scripts/bench-http.sh

## bench-compare: the Go benchmarks of this tree against BASELINE=<rev>, in
## paired rounds (ROUNDS, BENCH, BENCHTIME, PKGS), summarised by benchstat.
bench-compare:
	BENCHSTAT=$(BENCHSTAT) loadtest/scripts/bench-compare.sh

## bench-persistence: the local server with and without DATA_DIR, verified.
bench-persistence:
	loadtest/scripts/bench-persistence.sh

.PHONY: bench-ingest

## bench-ingest: impressions per second through the single route and the
## batch route (SIZES, default 10 100 1000), with and without DATA_DIR, in
## paired rounds (ROUNDS, DURATION), every run verified exactly; then the
## store's batch benchmark, the in-process ceiling. Prints the medians and
## the targets (batches of 1000: 500,000/s, 250,000/s with DATA_DIR).
bench-ingest:
	loadtest/scripts/bench-ingest.sh

## rss: the local server's resident memory after a million distinct impressions.
rss:
	loadtest/scripts/rss.sh

## chaos: kill -9 and SIGTERM under load, kills during replay, corrupt files,
## concurrent duplicates and slow clients against the real local server, each
## verified: exits 1 on any loss or double count, or a damaged directory that
## starts. About 3 minutes on 2 cores; CYCLES (10) and SCENARIOS scale and
## pick them.
chaos:
	loadtest/scripts/chaos.sh

# ---- Invalid-traffic list (shared/botfilter) ---------------------------------
# The bot patterns come from the npm package crawler-user-agents, pinned by
# version and by the integrity npm publishes for its tarball
# (`npm view crawler-user-agents@VERSION dist.integrity`), so that an update
# is a deliberate change. The list is committed: builds need no network.
CRAWLER_LIST_VERSION   := 1.60.0
CRAWLER_LIST_INTEGRITY := sha512-p8hKVsnZl3msolBhGW8s86V0tmmcuBSwhTXkzkegGQzTt0A/ysKDHKzek9fichfqL5qBEgDrR9CuGBU0Y7bDrg==
CRAWLER_LIST_DIR       := shared/botfilter

.PHONY: crawler-list

## crawler-list: fetch crawler-user-agents@CRAWLER_LIST_VERSION with npm, check
## it against CRAWLER_LIST_INTEGRITY, write its list, LICENSE and version into
## shared/botfilter, then test that package. To update, bump both and run it.
crawler-list:
	@set -e; tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	npm pack --silent --pack-destination "$$tmp" crawler-user-agents@$(CRAWLER_LIST_VERSION) >/dev/null; \
	tgz="$$tmp/crawler-user-agents-$(CRAWLER_LIST_VERSION).tgz"; \
	got="sha512-$$(openssl dgst -sha512 -binary "$$tgz" | base64 -w0)"; \
	if [ "$$got" != "$(CRAWLER_LIST_INTEGRITY)" ]; then \
		echo "crawler-list: crawler-user-agents@$(CRAWLER_LIST_VERSION) is $$got,"; \
		echo "crawler-list: not CRAWLER_LIST_INTEGRITY $(CRAWLER_LIST_INTEGRITY)"; exit 1; \
	fi; \
	tar -xzf "$$tgz" -C "$$tmp" package/crawler-user-agents.json package/LICENSE; \
	cp "$$tmp/package/crawler-user-agents.json" $(CRAWLER_LIST_DIR)/crawler-user-agents.json; \
	cp "$$tmp/package/LICENSE" $(CRAWLER_LIST_DIR)/crawler-user-agents.LICENSE; \
	printf '%s\n' "$(CRAWLER_LIST_VERSION)" > $(CRAWLER_LIST_DIR)/crawler-user-agents.version; \
	echo "crawler-list: crawler-user-agents@$(CRAWLER_LIST_VERSION) -> $(CRAWLER_LIST_DIR)"
	$(GO) test -count=1 ./$(CRAWLER_LIST_DIR)

# ---- The dashboard's chart library (web/dashboard/vendor) --------------------
# uPlot, pinned by version and by the integrity npm publishes for its tarball
# (`npm view uplot@VERSION dist.integrity`), so that an update is a deliberate
# change. The files are committed, so that `go run ./local` serves a working
# dashboard from a clone with no network and no build step; `make test` runs
# web-vendor-check, so that the committed copy cannot drift from the package.
UPLOT_VERSION   := 1.6.32
UPLOT_INTEGRITY := sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
UPLOT_SHASUM    := c800a63b432bad692d6d746f44f0882aa73a49ae
UPLOT_DIR       := web/dashboard/vendor

# uplot-fetch: a shell fragment that packs uplot@UPLOT_VERSION into "$$tmp"
# (a new directory under build/, removed on exit), checks the tarball against
# UPLOT_INTEGRITY and UPLOT_SHASUM, and writes the vendored files and VERSION
# into "$$tmp/vendor". The recipe that uses it goes on from there.
define uplot-fetch
set -e; mkdir -p build; tmp="$$(mktemp -d "$(CURDIR)/build/web-vendor.XXXXXX")"; trap 'rm -rf "$$tmp"' EXIT; \
npm pack --silent --pack-destination "$$tmp" uplot@$(UPLOT_VERSION) >/dev/null; \
tgz="$$tmp/uplot-$(UPLOT_VERSION).tgz"; \
got="sha512-$$(openssl dgst -sha512 -binary "$$tgz" | base64 -w0)"; \
sum="$$(sha1sum "$$tgz" | cut -d' ' -f1)"; \
if [ "$$got" != "$(UPLOT_INTEGRITY)" ] || [ "$$sum" != "$(UPLOT_SHASUM)" ]; then \
	echo "web-vendor: uplot@$(UPLOT_VERSION) is $$got (sha1 $$sum),"; \
	echo "web-vendor: not UPLOT_INTEGRITY $(UPLOT_INTEGRITY) (sha1 $(UPLOT_SHASUM))"; exit 1; \
fi; \
tar -xzf "$$tgz" -C "$$tmp" package/dist/uPlot.esm.js package/dist/uPlot.min.css package/LICENSE; \
mkdir "$$tmp/vendor"; \
cp "$$tmp/package/dist/uPlot.esm.js" "$$tmp/package/dist/uPlot.min.css" "$$tmp/vendor/"; \
cp "$$tmp/package/LICENSE" "$$tmp/vendor/LICENSE"; \
printf 'package uplot\nversion %s\nintegrity %s\nshasum %s\n' \
	"$(UPLOT_VERSION)" "$(UPLOT_INTEGRITY)" "$(UPLOT_SHASUM)" > "$$tmp/vendor/VERSION"
endef

.PHONY: web-vendor web-vendor-check

## web-vendor: fetch uplot@UPLOT_VERSION with npm, check it against
## UPLOT_INTEGRITY, and write uPlot.esm.js, uPlot.min.css, LICENSE and VERSION
## into web/dashboard/vendor. To update, bump the three UPLOT_ pins and run it.
web-vendor:
	@$(uplot-fetch); \
	rm -rf $(UPLOT_DIR) && cp -R "$$tmp/vendor" $(UPLOT_DIR); \
	echo "web-vendor: uplot@$(UPLOT_VERSION) -> $(UPLOT_DIR)"

## web-vendor-check: fetch uplot@UPLOT_VERSION again and fail if the committed
## web/dashboard/vendor differs from it in any file.
web-vendor-check:
	@$(uplot-fetch); \
	if ! diff -r "$$tmp/vendor" $(UPLOT_DIR); then \
		echo "web-vendor-check: $(UPLOT_DIR) is not uplot@$(UPLOT_VERSION); run make web-vendor"; exit 1; \
	fi; \
	echo "web-vendor-check: $(UPLOT_DIR) is uplot@$(UPLOT_VERSION)"

# ---- Container image (Dockerfile, compose.yaml) --------------------------------
# `make image` builds the local server as a static binary with the Go
# toolchain on this host and stages it, with the host's CA certificates and
# the unprivileged user's /etc files (local/rootfs), in build/image, the
# context Dockerfile builds FROM scratch: no base image, so no registry.
# Dockerfile.multistage is the same image built inside golang: for hosts
# that can pull it; nothing here tests that one.
IMAGE        ?= impression-counter
IMAGE_TAG    ?= latest
DOCKER       ?= docker
# `docker compose` where the plugin is there, else docker-compose (1.29+).
COMPOSE      ?= $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo "$(DOCKER) compose" || echo docker-compose)
# Debian's bundle; on another host, point CA_CERTS at its PEM bundle.
CA_CERTS     ?= /etc/ssl/certs/ca-certificates.crt
# The binary is built for the engine's architecture, as the engine
# reports it, so that the image runs where it is built.
IMAGE_GOARCH  = $(shell $(DOCKER) version -f '{{.Server.Arch}}')
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE := https://github.com/adcount/impression-counter
# compose.yaml names its image by these two.
COMPOSE_IMAGE = IMAGE=$(IMAGE) IMAGE_TAG=$(IMAGE_TAG)

.PHONY: image compose-up compose-down docker-engine container-test

## image: the local server's image, $(IMAGE):$(IMAGE_TAG), from Dockerfile
## (FROM scratch, a static binary, non-root); prints its size.
image:
	@test -r $(CA_CERTS) || { echo "image: no CA bundle at $(CA_CERTS); set CA_CERTS"; exit 1; }
	@test -n "$(IMAGE_GOARCH)" || { echo "image: $(DOCKER) reaches no engine"; exit 1; }
	rm -rf build/image && mkdir -p build/image/rootfs/etc/ssl/certs build/image/data
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_GOARCH) $(GO) build -buildvcs=auto -trimpath -ldflags "-s -w" \
		-o build/image/rootfs/impression-counter ./local
	cp $(CA_CERTS) build/image/rootfs/etc/ssl/certs/ca-certificates.crt
	cp local/rootfs/etc/passwd local/rootfs/etc/group build/image/rootfs/etc/
	$(DOCKER) build -f Dockerfile -t $(IMAGE):$(IMAGE_TAG) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg SOURCE=$(IMAGE_SOURCE) \
		build/image
	@$(DOCKER) image inspect -f '$(IMAGE):$(IMAGE_TAG): {{.Size}} bytes' $(IMAGE):$(IMAGE_TAG)

## compose-up: the image, then compose.yaml's service in the background on
## :8080 (HOST_PORT), its counts on the named volume; settings from the
## environment or .env.
compose-up: image
	$(COMPOSE_IMAGE) $(COMPOSE) up -d --no-build
	$(COMPOSE_IMAGE) $(COMPOSE) ps

## compose-down: stop and remove the service; the volume, and so the
## counts, stay (`$(COMPOSE) down -v` deletes them).
compose-down:
	$(COMPOSE_IMAGE) $(COMPOSE) down

## docker-engine: Debian's docker.io and docker-compose, unless dockerd and
## docker-compose are there already (apt-get, as root or through sudo).
docker-engine:
	$(call apt-install,command -v dockerd && command -v docker-compose && test -x /usr/bin/docker,docker.io docker-compose)

## container-test: build the image and test it, and compose.yaml, with a
## Docker engine of its own that it starts, and stops and removes with
## everything the tests made, even when they fail
## (local/containertest/run.sh; as root, or with sudo for the engine).
## CONTAINER_TEST_ARGS="-count=5 -cpu 1,2" repeats the tests on one engine.
CONTAINER_TEST_ARGS ?=
container-test: docker-engine
	GO="$(GO)" MAKE="$(MAKE)" CONTAINER_TEST_ARGS="$(CONTAINER_TEST_ARGS)" local/containertest/run.sh
