package testenv

import "time"

// Bounds on what tests wait for, on a 2-core machine that other tests load
// at the same time. Each is far above what an idle machine needs; a wait
// that runs past one has found a fault, not a slow machine.
const (
	// RedisStart: redis-server starting and loading its AOF (at most a few
	// hundred thousand entries in the chaos suite; under a second idle).
	RedisStart = 30 * time.Second
	// PostgresStart: Postgres starting again after a fast shutdown, with no
	// recovery to replay (a second or two idle).
	PostgresStart = 60 * time.Second
	// ProcStart: a surge service process starting until it listens (well
	// under a second idle).
	ProcStart = 10 * time.Second
	// PatroniStart: etcd, then initdb with checksums on one Patroni member
	// and a base backup on each other, until one streams as synchronous
	// standby (15-30 s idle).
	PatroniStart = 4 * time.Minute
)

// AnswerRateFloor is the fewest answers a second a closed loop of a few
// clients gets through HAProxy from servers on this machine while other
// tests load its 2 cores (seen: 100 at worst, thousands when idle).
const AnswerRateFloor = 50

// RequestBound bounds one request's answer: the clients' timeout.
const RequestBound = 10 * time.Second

// AnswersBound bounds a wait for n more answers of a closed loop: one
// request that may take up to its timeout, and n at the rate floor.
func AnswersBound(n int) time.Duration {
	return RequestBound + time.Duration(n)*time.Second/AnswerRateFloor
}
