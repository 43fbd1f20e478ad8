package postgres

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// Connections to Postgres give up on a silent peer within seconds
// (TCP_USER_TIMEOUT), and a Unix socket dials as before.
func TestDeadPeerDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := deadPeerDialer().Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ms int
	var gerr error
	raw.Control(func(fd uintptr) { ms, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) })
	if gerr != nil || ms != 10000 {
		t.Fatalf("TCP_USER_TIMEOUT = %d ms (%v), want 10000", ms, gerr)
	}

	sock := t.TempDir() + "/s"
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	uc, err := deadPeerDialer().Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial a Unix socket: %v", err)
	}
	uc.Close()
}
