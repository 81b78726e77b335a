// Command ingest is the Lambda function behind the open impression routes
// that ad tags call: POST /api/v1/impressions and its CORS preflight. Its
// role may only record impressions. The SAM template routes only those
// routes here; docs/lambda.md says why functions are grouped this way.
package main

import (
	"os"

	"github.com/adcount/impression-counter/functions/internal/serve"
)

func main() { os.Exit(serve.Main(serve.Ingest)) }
