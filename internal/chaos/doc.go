// Package chaos holds the fault-tolerance suite: each schedule runs the
// whole pipeline under steady load (votes with changes, and orders) while it
// kills or cuts off parts, heals, waits for the queues to drain and checks
// with the load tool's verifier that nothing was lost, duplicated or
// oversold. `make chaos` runs the full sizes; `make test` a shortened one.
package chaos
