// Command healthcheck is the image's health probe. The image is FROM scratch,
// with no shell and no curl, so HEALTHCHECK runs this instead: it GETs
// http://127.0.0.1:<port>/healthz, where the port comes from SURGE_LISTEN
// (the address every surge service listens on), and exits 0 only on a 200.
//
//	healthcheck                 # port from $SURGE_LISTEN
//	healthcheck http://127.0.0.1:8080/healthz
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	url, err := target(os.Args[1:], os.Getenv)
	if err == nil {
		err = probe(url, 3*time.Second)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// target returns the URL to probe: the first argument, or /healthz on
// loopback at SURGE_LISTEN's port.
func target(args []string, getenv func(string) string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	listen := getenv("SURGE_LISTEN")
	if listen == "" {
		return "", fmt.Errorf("SURGE_LISTEN is not set and no URL was given")
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "", fmt.Errorf("SURGE_LISTEN=%q: no port", listen)
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz", nil
}

func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	return nil
}
