// Package web holds the dashboard's files: a page, its style sheet and its
// JavaScript modules, with the chart library vendored beside them.
//
// The dashboard has no build step, so the files here are exactly what a
// browser gets; they are embedded in every binary that serves them (the
// local server and the admin Lambda function), so that there is nothing to
// deploy apart from the binary and the page can never be out of step with
// the API it calls. `make web-vendor` writes dashboard/vendor from the
// pinned npm package, and `make web-vendor-check` keeps it honest.
package web

import (
	"embed"
	"io/fs"
)

// files is the dashboard folder as built into the binary.
//
//go:embed dashboard
var files embed.FS

// Dashboard returns the dashboard's files, rooted at the dashboard folder:
// "index.html", "app.js", "vendor/uPlot.esm.js" and so on. It is rooted
// there so that a server maps GET /dashboard/{file} to the file of that
// name, with no prefix to strip and nothing outside the folder to reach.
// The page refers to its assets by relative URLs under dashboard/, so it
// works at /dashboard and under an API Gateway stage prefix alike.
//
// The files never change while the program runs; the FS is safe for
// concurrent use.
func Dashboard() fs.FS {
	sub, err := fs.Sub(files, "dashboard")
	if err != nil {
		// Unreachable: fs.Sub fails only on an invalid path, and
		// "dashboard" is valid. The tests would see a tree without
		// index.html at its root.
		return files
	}
	return sub
}
