// Package dind runs a Docker Swarm of several nodes on one machine, for
// tests: each node is a container running its own dockerd (Docker in
// Docker), on a user bridge of its own with a fixed address, its
// /var/lib/docker on a named volume so that a killed node comes back with
// its images and its tasks' data. The machine's engine runs the node
// containers; each node's daemon is reached through a socket in a folder
// the machine mounts into it.
//
// Nodes need no --privileged (refused on machines whose capability set
// lacks CAP_SYS_RESOURCE): every capability but that one, no seccomp or
// AppArmor profile, unmasked /proc and /sys, and every device. The node
// image's entrypoint remounts /sys and the cgroup hierarchies read-write
// (stack/deploy/standins/node).
package dind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Options describe a cluster.
type Options struct {
	Image  string // the node image (NODE_IMAGE of stack/deploy/standins/build.sh)
	Prefix string // names the containers, volumes and network: <prefix>-1, …
	Nodes  int    // at least 1; node 1 is the manager, the others workers
	// Subnet is the bridge's IPv4 prefix, at most a /24's worth of hosts
	// needed; node k gets the (10+k)th address. It must not overlap the
	// nodes' own address pools (Swarm's overlays take 10.0.0.0/8 by
	// default, so a 172.16.0.0/12 or 192.168.0.0/16 prefix is safe).
	Subnet string
	// SocketDir is a folder of this machine; node k's daemon socket is
	// SocketDir/<prefix>-k/docker.sock.
	SocketDir string
	// Engine is the DOCKER_HOST of the machine's own engine, which runs the
	// nodes; empty: the CLI's default.
	Engine string
	Log    func(format string, args ...any) // progress; nil: none
}

// Bounds of the waits, from what each waits for (measured on a 2-core
// machine: a daemon starts in ~5 s, a node joins in ~2 s and is Ready in
// ~7 s after a restart), with room for a loaded machine.
const (
	DaemonReady = 90 * time.Second
	NodeReady   = 90 * time.Second
)

// Node is one Swarm node.
type Node struct {
	Name   string // the container's name and the node's hostname
	Volume string // its /var/lib/docker
	Addr   netip.Addr
	Host   string // DOCKER_HOST reaching its daemon from this machine
	ID     string // its Swarm node ID; a replaced node gets a new one
	socket string // the folder mounted at /run/dind
}

// Cluster is a running Swarm of nodes.
type Cluster struct {
	opt     Options
	Nodes   []*Node
	network string
	token   string // the worker join token
}

// Manager is the node that runs the Swarm's control plane: node 1.
func (c *Cluster) Manager() *Node { return c.Nodes[0] }

// Node returns the node of a Swarm node ID, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// plan names the nodes and gives each its address.
func plan(opt Options) ([]*Node, error) {
	if opt.Nodes < 1 {
		return nil, fmt.Errorf("dind: %d nodes, want at least 1", opt.Nodes)
	}
	if opt.Prefix == "" || opt.Image == "" || opt.SocketDir == "" {
		return nil, errors.New("dind: prefix, image and socket folder are required")
	}
	subnet, err := netip.ParsePrefix(opt.Subnet)
	if err != nil || !subnet.Addr().Is4() {
		return nil, fmt.Errorf("dind: subnet %q is not an IPv4 prefix", opt.Subnet)
	}
	subnet = subnet.Masked()
	nodes := make([]*Node, opt.Nodes)
	addr := subnet.Addr()
	for range 10 {
		addr = addr.Next()
	}
	for k := range nodes {
		addr = addr.Next()
		if !subnet.Contains(addr) {
			return nil, fmt.Errorf("dind: subnet %s has no room for %d nodes", subnet, opt.Nodes)
		}
		name := fmt.Sprintf("%s-%d", opt.Prefix, k+1)
		socket := filepath.Join(opt.SocketDir, name)
		nodes[k] = &Node{Name: name, Volume: name, Addr: addr, socket: socket,
			Host: "unix://" + filepath.Join(socket, "docker.sock")}
	}
	return nodes, nil
}

// runArgs is `docker run` for a node (see the package comment for the
// security options).
func runArgs(opt Options, network string, n *Node) []string {
	return []string{"run", "-d", "--name", n.Name, "--hostname", n.Name,
		"--network", network, "--ip", n.Addr.String(),
		"--label", "surge.dind=" + opt.Prefix,
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
		// /run on tmpfs: a restarted node starts without the pid files and
		// sockets of the daemon that was killed.
		"--tmpfs", "/run",
		"-v", n.Volume + ":/var/lib/docker", "-v", n.socket + ":/run/dind",
		opt.Image}
}

// Start creates the network, volumes and node containers, waits for every
// daemon, initialises the Swarm on node 1 and joins the others as workers.
// On error, what it created is removed.
func Start(ctx context.Context, opt Options) (c *Cluster, err error) {
	nodes, err := plan(opt)
	if err != nil {
		return nil, err
	}
	c = &Cluster{opt: opt, Nodes: nodes, network: opt.Prefix}
	// A run that was killed (a test's timeout) could not clean up: what it
	// left under this prefix goes first.
	if err := c.Close(ctx); err != nil {
		return nil, fmt.Errorf("dind: remove what an earlier run left: %w", err)
	}
	defer func() {
		if err != nil {
			c.Close(context.WithoutCancel(ctx))
			c = nil
		}
	}()
	if _, err := c.engine(ctx, nil, "network", "create", "--driver", "bridge", "--subnet", opt.Subnet,
		"--label", "surge.dind="+opt.Prefix, c.network); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if err := c.run(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := c.each(func(n *Node) error { return c.waitDaemon(ctx, n) }); err != nil {
		return nil, err
	}
	m := c.Manager()
	if _, err := c.Docker(ctx, m, nil, "swarm", "init", "--advertise-addr", m.Addr.String()); err != nil {
		return nil, err
	}
	if c.token, err = c.Docker(ctx, m, nil, "swarm", "join-token", "-q", "worker"); err != nil {
		return nil, err
	}
	for _, n := range nodes[1:] {
		if err := c.join(ctx, n); err != nil {
			return nil, err
		}
	}
	for _, n := range nodes {
		if err := c.waitReady(ctx, n); err != nil {
			return nil, err
		}
	}
	c.log("swarm of %d nodes formed: %s manager", len(nodes), m.Name)
	return c, nil
}

func (c *Cluster) run(ctx context.Context, n *Node) error {
	if err := os.MkdirAll(n.socket, 0o755); err != nil {
		return fmt.Errorf("dind: %w", err)
	}
	if _, err := c.engine(ctx, nil, "volume", "create", "--label", "surge.dind="+c.opt.Prefix, n.Volume); err != nil {
		return err
	}
	_, err := c.engine(ctx, nil, runArgs(c.opt, c.network, n)...)
	return err
}

// join makes n a worker of the Swarm and learns its node ID.
func (c *Cluster) join(ctx context.Context, n *Node) error {
	_, err := c.Docker(ctx, n, nil, "swarm", "join", "--token", c.token,
		"--advertise-addr", n.Addr.String(), c.Manager().Addr.String()+":2377")
	return err
}

// waitDaemon waits until n's dockerd answers.
func (c *Cluster) waitDaemon(ctx context.Context, n *Node) error {
	return wait(ctx, DaemonReady, "the daemon of "+n.Name, func() error {
		if state, err := c.engine(ctx, nil, "inspect", "-f", "{{.State.Status}}", n.Name); err != nil || state != "running" {
			return backoff.Permanent(fmt.Errorf("node container %s is %q: %v", n.Name, state, err))
		}
		_, err := c.Docker(ctx, n, nil, "version", "--format", "{{.Server.Version}}")
		return err
	})
}

// waitReady waits until the manager sees n Ready and records its ID.
func (c *Cluster) waitReady(ctx context.Context, n *Node) error {
	return wait(ctx, NodeReady, n.Name+" Ready in the Swarm", func() error {
		id, err := c.Docker(ctx, n, nil, "info", "--format", "{{.Swarm.NodeID}}")
		if err != nil || id == "" {
			return fmt.Errorf("node ID: %q %v", id, err)
		}
		state, err := c.Docker(ctx, c.Manager(), nil, "node", "inspect", "-f", "{{.Status.State}}", id)
		if err != nil || state != "ready" {
			return fmt.Errorf("state %q %v", state, err)
		}
		n.ID = id
		return nil
	})
}

// Load copies images from the machine's engine into every node, in
// parallel.
func (c *Cluster) Load(ctx context.Context, images ...string) error {
	return c.each(func(n *Node) error { return c.LoadInto(ctx, n, images...) })
}

// LoadInto copies images from the machine's engine into n.
func (c *Cluster) LoadInto(ctx context.Context, n *Node, images ...string) error {
	save := command(ctx, c.opt.Engine, append([]string{"save"}, images...)...)
	load := command(ctx, n.Host, "load", "-q")
	var saveErr, loadErr bytes.Buffer
	save.Stderr, load.Stderr = &saveErr, &loadErr
	pipe, err := save.StdoutPipe()
	if err != nil {
		return fmt.Errorf("dind: load into %s: %w", n.Name, err)
	}
	load.Stdin = pipe
	if err := save.Start(); err != nil {
		return fmt.Errorf("dind: docker save: %w", err)
	}
	lerr := load.Run()
	if lerr != nil {
		io.Copy(io.Discard, pipe) // let save finish
	}
	serr := save.Wait()
	if serr != nil || lerr != nil {
		return fmt.Errorf("dind: load %s into %s: save: %v %s; load: %v %s", strings.Join(images, " "), n.Name,
			serr, saveErr.String(), lerr, loadErr.String())
	}
	return nil
}

// Kill kills n's container at once, as a power cut would: every task on it
// dies with it. Its volume stays.
func (c *Cluster) Kill(ctx context.Context, n *Node) error {
	_, err := c.engine(ctx, nil, "kill", n.Name)
	return err
}

// Restart starts a killed n again on its volume, and waits until its
// daemon answers and the Swarm has it Ready.
func (c *Cluster) Restart(ctx context.Context, n *Node) error {
	if _, err := c.engine(ctx, nil, "start", n.Name); err != nil {
		return err
	}
	if err := c.waitDaemon(ctx, n); err != nil {
		return err
	}
	return c.waitReady(ctx, n)
}

// Replace puts a fresh node, with an empty volume, in the place of a
// killed n (its disk is gone): same name and address, a new Swarm node ID,
// the old one removed from the Swarm. It loads images into it. Node labels
// are the caller's to add again. n must not be the manager.
func (c *Cluster) Replace(ctx context.Context, n *Node, images ...string) error {
	if n == c.Manager() {
		return errors.New("dind: the manager cannot be replaced")
	}
	old := n.ID
	if _, err := c.engine(ctx, nil, "rm", "-f", "-v", n.Name); err != nil {
		return err
	}
	if _, err := c.engine(ctx, nil, "volume", "rm", n.Volume); err != nil {
		return err
	}
	if old != "" {
		if _, err := c.Docker(ctx, c.Manager(), nil, "node", "rm", "--force", old); err != nil {
			return err
		}
	}
	n.ID = ""
	if err := c.run(ctx, n); err != nil {
		return err
	}
	if err := c.waitDaemon(ctx, n); err != nil {
		return err
	}
	if len(images) > 0 {
		if err := c.LoadInto(ctx, n, images...); err != nil {
			return err
		}
	}
	if err := c.join(ctx, n); err != nil {
		return err
	}
	return c.waitReady(ctx, n)
}

// Close removes the node containers, their volumes, the network and the
// socket folders, whatever state they are in. It returns every failure.
func (c *Cluster) Close(ctx context.Context) error {
	var errs []error
	for _, n := range c.Nodes {
		if _, err := c.engine(ctx, nil, "rm", "-f", "-v", n.Name); err != nil && !strings.Contains(err.Error(), "No such container") {
			errs = append(errs, err)
		}
		if _, err := c.engine(ctx, nil, "volume", "rm", "-f", n.Volume); err != nil && !strings.Contains(err.Error(), "no such volume") {
			errs = append(errs, err)
		}
		os.RemoveAll(n.socket)
	}
	if _, err := c.engine(ctx, nil, "network", "rm", c.network); err != nil && !strings.Contains(err.Error(), "not found") {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Docker runs the docker CLI against n's daemon and returns its trimmed
// stdout; stderr is in the error.
func (c *Cluster) Docker(ctx context.Context, n *Node, stdin io.Reader, args ...string) (string, error) {
	return Run(ctx, n.Host, stdin, args...)
}

// engine runs the docker CLI against the machine's engine.
func (c *Cluster) engine(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	return Run(ctx, c.opt.Engine, stdin, args...)
}

// Run runs the docker CLI against host (a DOCKER_HOST value; empty: the
// CLI's default engine), whatever DOCKER_HOST this process has, for at most
// 5 minutes, and returns its trimmed stdout; stderr is in the error.
func Run(ctx context.Context, host string, stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := command(ctx, host, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// command is the docker CLI aimed at host (empty: the CLI's default engine).
func command(ctx context.Context, host string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = Env(os.Environ(), host)
	return cmd
}

// Env is environ with DOCKER_HOST set to host, or removed when host is
// empty.
func Env(environ []string, host string) []string {
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "DOCKER_HOST=") {
			env = append(env, kv)
		}
	}
	if host != "" {
		env = append(env, "DOCKER_HOST="+host)
	}
	return env
}

// each runs f on every node at once and returns every failure.
func (c *Cluster) each(f func(*Node) error) error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Go(func() { errs[i] = f(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) log(format string, args ...any) {
	if c.opt.Log != nil {
		c.opt.Log(format, args...)
	}
}

// wait polls cond until it returns nil, for at most bound; a
// backoff.Permanent error ends it early.
func wait(ctx context.Context, bound time.Duration, what string, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) { last = cond(); return struct{}{}, last },
		backoff.WithBackOff(backoff.NewConstantBackOff(250*time.Millisecond)), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return fmt.Errorf("dind: wait for %s (bound %s): %w (last: %v)", what, bound, err, last)
	}
	return nil
}
