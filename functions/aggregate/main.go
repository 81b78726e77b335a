// Command aggregate is the Lambda function that the table's stream
// triggers: it folds each batch of counted dedup markers into the
// campaigns' counter items, exactly once however often Lambda delivers
// the batch. It serves no HTTP route. Its role may read the table's stream,
// read and update the table, and send a failed batch's description to the
// mapping's on-failure queue; docs/lambda.md says how its event source
// mapping is set and why.
package main

import (
	"os"

	"github.com/adcount/impression-counter/functions/internal/serve"
)

func main() { os.Exit(serve.Main(serve.Aggregate)) }
