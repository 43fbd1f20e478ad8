// Command stack runs surge locally, renders its deployment, and tells how a
// running one is doing.
//
//	go run ./stack run --port 8080 --shards 3 --workers 2
//	go run ./stack status
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	root := &cobra.Command{Use: "stack", Short: "Run and deploy surge", SilenceUsage: true}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCommand(getenv))
	root.AddCommand(loadCommand())
	root.AddCommand(renderCommand())
	root.AddCommand(statusCommand())
	return root.ExecuteContext(ctx)
}
