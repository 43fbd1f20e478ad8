package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Etcd is a private etcd cluster on loopback: the store Patroni keeps its
// leader lock in.
type Etcd struct {
	Members []*Proc
	Clients []string // each member's client address, host:port
}

// etcdReady bounds a fresh cluster's start: members find each other and
// elect a leader within seconds when idle.
const etcdReady = time.Minute

// StartEtcd starts an etcd cluster, one member on each of ports, with each
// member's data under dir, and waits until every member reports itself
// healthy (a leader is elected). Started again on the same dir with the
// same ports, the members resume from their data: etcd then ignores the
// initial-cluster flags. On error, whatever started is stopped.
func StartEtcd(ctx context.Context, dir string, ports []EtcdPorts, token string) (_ *Etcd, err error) {
	bin, err := LookBinary("etcd")
	if err != nil {
		return nil, err
	}
	e := &Etcd{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	var peers, cluster []string
	for i, p := range ports {
		e.Clients = append(e.Clients, addr(p.Client))
		peers = append(peers, "http://"+addr(p.Peer))
		cluster = append(cluster, fmt.Sprintf("etcd%d=http://%s", i+1, addr(p.Peer)))
	}
	for i := range ports {
		name := fmt.Sprintf("etcd%d", i+1)
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		p, err := StartProc(ProcSpec{Name: name, Path: bin, Log: data + ".log", Args: []string{
			"--name", name, "--data-dir", data,
			"--listen-client-urls", "http://" + e.Clients[i], "--advertise-client-urls", "http://" + e.Clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "surge-" + token, "--logger", "zap", "--log-level", "warn",
		}})
		if err != nil {
			return nil, err
		}
		e.Members = append(e.Members, p)
	}
	client := &http.Client{Timeout: time.Second}
	for i, p := range e.Members {
		err := waitReady(ctx, p, etcdReady, func(ctx context.Context) error { return etcdHealthy(ctx, client, e.Clients[i]) })
		if err != nil {
			return nil, fmt.Errorf("wait for %s: %w\n%s", p.Name, err, tail(filepath.Join(dir, p.Name+".log"), 2000))
		}
	}
	return e, nil
}

// etcdHealthy asks a member's /health, which is true once the member has a
// leader and answers reads.
func etcdHealthy(ctx context.Context, client *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return err
	}
	if h.Health != "true" {
		return errors.New("etcd not healthy yet")
	}
	return nil
}

// Close stops every member (SIGTERM, then SIGKILL after a grace period;
// etcd fsyncs its log before it answers, so either way its data is whole).
// One at a time: a leader stopping hands its leadership to a live member
// first, and waits for that handover for seconds if the others are
// stopping too. Its data is the caller's to remove.
func (e *Etcd) Close() {
	for _, p := range e.Members {
		_ = p.Stop(10 * time.Second)
	}
}
