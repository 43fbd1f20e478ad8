package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
)

// Listen delivers notifications on channels to onNotify until ctx ends, on a
// dedicated connection that it re-establishes after failures. onState is
// called with true once listening and false when the connection is lost:
// notifications may have been missed in between, so a cache must not trust
// its copy while the state is false.
func (db *DB) Listen(ctx context.Context, log *slog.Logger, channels []string, onNotify func(channel, payload string), onState func(listening bool)) {
	b := listenBackOff()
	backoff.Retry(ctx, func() (struct{}, error) {
		err := db.listenOnce(ctx, channels, onNotify, func() {
			b.Reset() // a connection that worked starts the schedule over
			onState(true)
		})
		onState(false)
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, _ time.Duration) {
		log.Warn("listen connection lost; reconnecting", "err", err)
	}))
}

// listenBackOff is Listen's reconnection schedule: 100 ms growing to 5 s,
// each wait randomised by ±50 % so that every service does not reconnect in
// lockstep when Postgres comes back.
func listenBackOff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second,
		RandomizationFactor: 0.5}
}

func (db *DB) listenOnce(ctx context.Context, channels []string, onNotify func(string, string), listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	listening()
	for {
		// A connection whose server vanished (a Postgres container replaced
		// on another address) sends nothing and hears no RST: without a
		// probe it would wait for TCP keepalive, minutes of missed
		// notifications. So a quiet connection is pinged every
		// listenProbe, and one that does not answer is replaced.
		wctx, cancel := context.WithTimeout(ctx, listenProbe)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			onNotify(n.Channel, n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, listenProbe)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("listen connection silent and not answering: %w", err)
			}
		default:
			return err
		}
	}
}

// listenProbe is how long the listen connection may stay quiet before it is
// pinged, and how long the ping may take.
const listenProbe = 5 * time.Second
