package launcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// patroniLayout is what a Patroni cluster's directory keeps, besides its
// data, from one start to the next: every port, and etcd's cluster token.
// Ports are not picked afresh at each start: etcd keeps each member's peer
// address in its membership, which the start-up flags no longer change once
// a member has data, and every Patroni member's connect address would move
// under the others. Kept, a restart finds each member where it was.
type patroniLayout struct {
	Members   []MemberPorts `json:"members"`
	Etcd      []EtcdPorts   `json:"etcd"`
	EtcdToken string        `json:"etcd_token"`
}

// MemberPorts are a Patroni member's Postgres and REST API ports.
type MemberPorts struct {
	Postgres int `json:"postgres"`
	API      int `json:"api"`
}

// EtcdPorts are an etcd member's client and peer ports.
type EtcdPorts struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

// patroniLayoutFile, in a Patroni cluster's directory, holds its layout.
const patroniLayoutFile = "ports.json"

// patroniLayoutIn returns the layout kept in dir, checked against members
// and with every port still free, or a new one on free ports, saved there,
// if dir holds no cluster yet.
func patroniLayoutIn(dir string, members, etcd int) (patroniLayout, error) {
	path := filepath.Join(dir, patroniLayoutFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return newPatroniLayout(dir, members, etcd)
	}
	if err != nil {
		return patroniLayout{}, fmt.Errorf("patroni layout: %w", err)
	}
	var l patroniLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("patroni layout %s: %w", path, err)
	}
	if len(l.Members) != members || len(l.Etcd) != etcd {
		return l, fmt.Errorf("%s holds a cluster of %d Postgres members (and %d etcd): asked for %d; "+
			"start it with %[2]d, or delete %[1]s to start afresh", dir, len(l.Members), len(l.Etcd), members)
	}
	for i, m := range l.Members {
		if err := reservePort(m.Postgres, fmt.Sprintf("pg%d's Postgres", i+1), path); err != nil {
			return l, err
		}
		if err := reservePort(m.API, fmt.Sprintf("pg%d's Patroni REST API", i+1), path); err != nil {
			return l, err
		}
	}
	for i, e := range l.Etcd {
		for _, port := range []int{e.Client, e.Peer} {
			if err := reservePort(port, fmt.Sprintf("etcd%d", i+1), path); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

func newPatroniLayout(dir string, members, etcd int) (patroniLayout, error) {
	// Data without its layout (a directory from before the layout was kept)
	// cannot be started on new ports: etcd's membership names the old ones.
	if _, err := os.Stat(filepath.Join(dir, "etcd1", "member")); err == nil {
		return patroniLayout{}, fmt.Errorf("%s holds etcd data but no %s: delete it to start afresh", dir, patroniLayoutFile)
	}
	l := patroniLayout{EtcdToken: randomHex(8)} // a cluster never joins another one's members
	ports := func(n int) ([]int, error) {
		out := make([]int, n)
		for i := range out {
			var err error
			if out[i], err = FreePort(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	for range members {
		p, err := ports(2)
		if err != nil {
			return l, err
		}
		l.Members = append(l.Members, MemberPorts{Postgres: p[0], API: p[1]})
	}
	for range etcd {
		p, err := ports(2)
		if err != nil {
			return l, err
		}
		l.Etcd = append(l.Etcd, EtcdPorts{Client: p[0], Peer: p[1]})
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return l, err
	}
	if err := os.WriteFile(filepath.Join(dir, patroniLayoutFile), append(b, '\n'), 0o644); err != nil {
		return l, fmt.Errorf("save patroni layout: %w", err)
	}
	return l, nil
}

// reservePort checks that a kept port is still free, and keeps FreePort
// from handing it to another process of this launcher.
func reservePort(port int, what, keptIn string) error {
	ln, err := net.Listen("tcp", addr(port))
	if err != nil {
		return fmt.Errorf("port %d of %s (kept in %s) is taken: stop what holds it (an earlier run still up?): %w",
			port, what, keptIn, err)
	}
	ln.Close()
	portsMu.Lock()
	taken[port] = true
	portsMu.Unlock()
	return nil
}
