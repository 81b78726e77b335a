// Command admin is the Lambda function behind the routes that need an
// admin key: creating and reading campaigns and reading their stats. Its
// role may create and read campaigns and read counts, never count. The SAM
// template routes only those routes here, and the dashboard's page and
// files, which are embedded in this binary and call those routes;
// docs/lambda.md says why functions are grouped this way.
package main

import (
	"os"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/web"
)

func main() { os.Exit(serve.Main(serve.Admin, serve.WithDashboard(web.Dashboard()))) }
