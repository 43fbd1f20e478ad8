package httpx

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the peers whose forwarding headers (X-Forwarded-For,
// X-Forwarded-Proto) are believed: the front proxy's addresses.
type Proxies []netip.Prefix

// ParseProxies reads CIDRs such as "10.0.0.0/8" or single addresses.
func ParseProxies(cidrs []string) (Proxies, error) {
	out := make(Proxies, 0, len(cidrs))
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if !strings.Contains(c, "/") {
			a, err := netip.ParseAddr(c)
			if err != nil {
				return nil, fmt.Errorf("trusted_proxies: %q is neither an address nor a CIDR", c)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is neither an address nor a CIDR", c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Trusts reports whether the request came straight from a trusted proxy.
func (p Proxies) Trusts(r *http.Request) bool {
	peer, ok := peerAddr(r)
	return ok && p.contains(peer)
}

func (p Proxies) contains(a netip.Addr) bool {
	for _, prefix := range p {
		if prefix.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP is the address a request came from: the peer's, or, when the
// peer is a trusted proxy, the last X-Forwarded-For entry, which that proxy
// appended. Entries further left are whatever the client wrote and are
// never believed, even when they look like trusted addresses: a client on
// the proxy's own network can write those too.
func ClientIP(r *http.Request, trusted Proxies) string {
	peer, ok := peerAddr(r)
	if !ok {
		return r.RemoteAddr
	}
	if !trusted.contains(peer) {
		return peer.String()
	}
	values := r.Header.Values("X-Forwarded-For")
	if len(values) == 0 {
		return peer.String()
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	a, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil {
		return peer.String() // not written by our proxy: the peer is the client
	}
	return a.Unmap().WithZone("").String()
}

// peerAddr is the address of the connection's other end.
func peerAddr(r *http.Request) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	a, err := netip.ParseAddr(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// PrivateProxies are the default trusted proxies: loopback (make run) and
// the private networks a stack's overlay network is on. The services
// themselves are published nowhere; HAProxy is.
func PrivateProxies() []string {
	return []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
}

// Secure reports whether r reached us over TLS, directly or at a trusted
// proxy that says so (X-Forwarded-Proto: https), or force is set: whether
// a cookie set in answer gets the Secure flag.
func Secure(r *http.Request, trusted Proxies, force bool) bool {
	if force || r.TLS != nil {
		return true
	}
	return r.Header.Get("X-Forwarded-Proto") == "https" && trusted.Trusts(r)
}
