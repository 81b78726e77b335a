// Package containertest tests the local server's container image and
// compose.yaml with a real Docker engine: health, the API over HTTP, a
// graceful stop, counts that survive a crash and compose's down and up,
// and the load harness verified exactly against the container.
//
// Its tests build only with the container tag and need the engine and
// image that local/containertest/run.sh provides: run them with
// `make container-test`, never by hand against a Docker you use.
package containertest
