package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen delivers notifications on channels to onNotify until ctx ends, on a
// dedicated connection that it re-establishes after failures. onState is
// called with true once listening and false when the connection is lost:
// notifications may have been missed in between, so a cache must not trust
// its copy while the state is false.
func (db *DB) Listen(ctx context.Context, log *slog.Logger, channels []string, onNotify func(channel, payload string), onState func(listening bool)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, channels, onNotify, func() {
			backoff = 100 * time.Millisecond
			onState(true)
		})
		onState(false)
		if ctx.Err() != nil {
			return
		}
		log.Warn("listen connection lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
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
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		onNotify(n.Channel, n.Payload)
	}
}
