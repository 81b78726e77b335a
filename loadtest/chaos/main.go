// Command chaos is the traffic and the verification half of `make chaos`
// (loadtest/scripts/chaos.sh). The script starts, kills and corrupts the
// local server; this command talks to it over HTTP, keeps a ledger of every
// answer it got, and after the last restart checks the service against that
// ledger key by key:
//
//	chaos create    -target URL -n 2                   prints new campaign IDs
//	chaos load      -target URL -campaign-ids A,B -ledger F -prefix P
//	chaos campaigns -target URL -ledger F -prefix P    creates campaigns until stopped
//	chaos verify    -target URL -ledger F              exit 1 on loss or double count
//	chaos dup       -target URL -keys 500 -copies 32   concurrent identical requests
//	chaos slow      -target URL                        slow header and slow body cut-offs
//	chaos idle      -target URL -conns 1000            latency with idle connections open
//
// load and campaigns run until SIGINT or SIGTERM, -duration or -max, and
// then write what they have: a request in flight when the server died is
// recorded as unknown. The admin key comes from LOADTEST_ADMIN_KEY, as for
// the load harness. Like the harness it talks HTTP only and imports nothing
// of the service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// adminKeyEnv holds the admin key, so that it stays out of process listings.
const adminKeyEnv = "LOADTEST_ADMIN_KEY"

// errFailed means the service did something it promises not to; the
// details have been printed.
var errFailed = errors.New("check failed")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// errUsage marks bad arguments.
var errUsage = errors.New("usage")

// command is one subcommand: it registers its flags on fs and returns what
// to run once they are parsed.
type command func(fs *flag.FlagSet, env env) func(ctx context.Context) error

// env is what every subcommand gets besides its flags.
type env struct {
	target   *string
	adminKey string
	stdout   io.Writer
	stderr   io.Writer
}

var commands = map[string]command{
	"create":    createCommand,
	"load":      loadCommand,
	"campaigns": campaignsCommand,
	"verify":    verifyCommand,
	"dup":       dupCommand,
	"slow":      slowCommand,
	"idle":      idleCommand,
}

// run is the whole command; main only turns its error into an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || commands[args[0]] == nil {
		return fmt.Errorf("%w: chaos create|load|campaigns|verify|dup|slow|idle [flags]; -h after one for its flags", errUsage)
	}
	fs := flag.NewFlagSet("chaos "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := env{target: fs.String("target", "", "base URL of the server, such as http://127.0.0.1:8080 (required)"),
		adminKey: getenv(adminKeyEnv), stdout: stdout, stderr: stderr}
	do := commands[args[0]](fs, e)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *e.target == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: chaos %s needs -target and takes no arguments", errUsage, args[0])
	}
	return do(ctx)
}
