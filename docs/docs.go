// Package docs embeds the documents that the service itself serves, so that
// the contract a client downloads is the file the tests check.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the API's OpenAPI 3.1 contract.
//
//go:embed openapi.yaml
var OpenAPI []byte
