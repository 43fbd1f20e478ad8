package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/surge-vote/surge/internal/loadgen"
)

// loadCommand is `surge load` (`stack load`): see internal/loadgen and README
// ("Load testing and benchmarks").
func loadCommand() *cobra.Command {
	cfg := loadgen.DefaultConfig()
	var passwordFile, choices string
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load a surge deployment and verify that every acknowledged vote and order is counted once",
		Long: `Sends votes from --voters distinct voters (each with their own cookie jar; a --change fraction of them
change their vote) and a --orders fraction of orders against items it creates through the admin API.

  --mode rate   a constant --rate for --duration (--rate 0: as fast as --connections allow)
  --mode max    the highest rate whose p<--percentile> latency holds --objective (rates doubled, then bisected)

Every run is bounded by --duration and --max-requests. Only this machine is loaded unless --target is given.
--verify waits for the queues to drain, compares what was acknowledged with what is counted, and exits non-zero
if anything is lost, duplicated, oversold or unexpected.`,
		Example: `  go run ./stack load --rate 2000 --duration 20s --verify
  go run ./stack load --mode max --objective 50ms --duration 2m
  go run ./stack load --target http://10.0.0.5:8080 --rate 500 --admin-password-file secret.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.AllowRemote = cmd.Flags().Changed("target")
			if choices != "" {
				cfg.Choices = strings.Split(choices, ",")
			}
			if cfg.AdminPass == "" {
				if passwordFile == "" {
					passwordFile = os.Getenv("SURGE_ADMIN_PASSWORD_FILE")
				}
				if passwordFile == "" && !cfg.AllowRemote {
					// What `make run` generates, if it is there.
					if _, err := os.Stat(".surge/admin.password"); err == nil {
						passwordFile = ".surge/admin.password"
					}
				}
				if passwordFile != "" {
					b, err := os.ReadFile(passwordFile)
					if err != nil {
						return fmt.Errorf("admin password: %w", err)
					}
					cfg.AdminPass = strings.TrimSpace(string(b))
				}
			}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok {
				cfg.Progress = f
				if st, err := f.Stat(); err == nil {
					cfg.TTY = st.Mode()&os.ModeCharDevice != 0
				}
			}
			_, err := loadgen.Run(cmd.Context(), cfg, cmd.OutOrStdout())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Target, "target", cfg.Target, "base URL to load (HAProxy or one frontend); anything but this machine needs this flag")
	f.StringVar(&cfg.AdminURL, "admin-url", "", "admin API base URL (default: the target)")
	f.StringVar(&cfg.ResultsURL, "results-url", "", "results API base URL (default: the target)")
	f.StringVar(&cfg.AdminUser, "admin-user", cfg.AdminUser, "admin user")
	f.StringVar(&cfg.AdminPass, "admin-password", "", "admin password (prefer --admin-password-file)")
	f.StringVar(&passwordFile, "admin-password-file", "", "file holding the admin password (default $SURGE_ADMIN_PASSWORD_FILE, else .surge/admin.password)")

	f.StringVar(&cfg.Mode, "mode", cfg.Mode, "rate (constant rate) or max (highest rate holding the objective)")
	f.Float64Var(&cfg.Rate, "rate", cfg.Rate, "requests per second (rate mode); 0 = as fast as --connections allow")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "bound on the load phase (all steps in max mode)")
	f.Int64Var(&cfg.MaxRequests, "max-requests", cfg.MaxRequests, "bound on the number of requests")
	f.IntVar(&cfg.Connections, "connections", cfg.Connections, "concurrent requests at most")
	f.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per request; a timeout is an unknown outcome")

	f.DurationVar(&cfg.Objective, "objective", cfg.Objective, "max mode: latency objective")
	f.Float64Var(&cfg.ObjectiveQ, "percentile", cfg.ObjectiveQ, "max mode: percentile the objective applies to")
	f.Float64Var(&cfg.MaxErrorRatio, "max-errors", cfg.MaxErrorRatio, "max mode: error ratio a step may have")
	f.Float64Var(&cfg.StartRate, "start-rate", cfg.StartRate, "max mode: first rate tried")
	f.DurationVar(&cfg.StepDuration, "step", cfg.StepDuration, "max mode: duration of each rate tried")

	f.IntVar(&cfg.Voters, "voters", cfg.Voters, "distinct voters, each with their own cookie jar")
	f.Float64Var(&cfg.ChangeRatio, "change", cfg.ChangeRatio, "fraction of voters who change their vote")
	f.StringVar(&cfg.Poll, "poll", "", "poll to vote in (default: a new poll for this run if the admin API is at hand, else cats-vs-dogs)")
	f.StringVar(&choices, "choices", "", "the poll's options, comma-separated (default: read from the results API)")
	f.Float64Var(&cfg.OrderRatio, "orders", cfg.OrderRatio, "fraction of requests that are orders")
	f.Float64Var(&cfg.RepeatRatio, "repeat", cfg.RepeatRatio, "fraction of orders that repeat an acknowledged order id")
	f.IntVar(&cfg.Items, "items", cfg.Items, "items created for the orders")
	f.Int64Var(&cfg.Stock, "stock", cfg.Stock, "units of each item")
	f.IntVar(&cfg.MaxQuantity, "max-quantity", cfg.MaxQuantity, "each order line takes 1 to this many units")
	f.IntVar(&cfg.CartLines, "cart-lines", cfg.CartLines, "lines per order: 1 sends single-item orders, 2-20 carts of that many distinct items (at most --items), each confirmed or rejected whole")

	f.BoolVar(&cfg.Verify, "verify", false, "after the run, wait for the queues to drain and verify the counts")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "how long --verify waits for the queues to drain")
	f.StringVar(&cfg.JSONPath, "json", cfg.JSONPath, "report with every figure (empty: none)")
	f.StringVar(&cfg.PlotPath, "plot", cfg.PlotPath, "latency and throughput plot, .png or .svg (empty: none)")
	f.Uint64Var(&cfg.Seed, "seed", 0, "random seed of the workload (0: from the clock)")
	return cmd
}
