// Package swarmtest deploys docker-stack.yml on a real Docker Swarm of
// three nodes, each a Docker-in-Docker container of this machine's engine
// (internal/dind), laid out as the README tells users to (shards 1, 2
// and 3 each on its own node, Postgres beside shard 3, HAProxy on every node, published in
// host mode), and checks it end to end through HAProxy on the nodes' own
// addresses: votes counted exactly, round robin over the frontends of
// different nodes, a worker SIGKILLed with nothing lost, docker kill of a
// shard's Redis, a frontend and Postgres under the load tool with its
// verifier, whole nodes killed under load (shard 2's, back on its disk,
// then replaced without it, with nothing lost since every entry has a second
// copy; Postgres's), a rolling update of the web
// services with no failed request, a shard added, and TLS at HAProxy from
// a Swarm secret. It also checks from Swarm that only HAProxy publishes a
// port and that the stores sit on internal networks.
//
// It runs from `make test-stack` (stack/deploy/test-stack.sh), which builds the
// surge image, the stand-in redis, postgres and haproxy images and the node
// image first and sets SURGE_SWARM_TEST=1; `go test ./...` alone skips it.
package swarmtest
