// Package swarmtest deploys docker-stack.yml on a real single-node Docker
// Swarm and checks it end to end through HAProxy's published port: votes
// counted exactly, round robin over the frontends, a worker SIGKILLed with
// nothing lost, docker kill of a shard's Redis, a frontend and Postgres under
// the load tool with its verifier, a rolling update of the web services with
// no failed request, a shard added, and TLS at HAProxy from a Swarm secret.
// It also checks from Swarm that only HAProxy publishes a port and that the
// stores sit on internal networks.
//
// It runs from `make test-stack` (stack/deploy/test-stack.sh), which builds the
// surge image and the stand-in redis, postgres and haproxy images first and
// sets SURGE_SWARM_TEST=1; `go test ./...` alone skips it.
package swarmtest
