// Package deploy holds the files docker-stack.yml refers to: the HAProxy
// configuration mounted as a Swarm config, and (in standins/) the scripts
// that build stand-in images for the Swarm test.
package deploy

import _ "embed"

// HAProxyConfigPath is haproxy.cfg's path relative to the repository root,
// where docker-stack.yml lives.
const HAProxyConfigPath = "stack/deploy/haproxy.cfg"

// HAProxyConfig is the content of haproxy.cfg.
//
//go:embed haproxy.cfg
var HAProxyConfig []byte
