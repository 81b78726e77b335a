// Command admin is the Lambda function behind the routes that need an
// admin key: creating and reading campaigns and reading their stats. Its
// role may create and read campaigns and read counts, never count. The SAM
// template routes only those routes here; docs/lambda.md says why functions
// are grouped this way.
package main

import (
	"os"

	"github.com/adcount/impression-counter/functions/internal/serve"
)

func main() { os.Exit(serve.Main(serve.Admin)) }
