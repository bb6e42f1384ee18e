package lan

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 16)
		n, _ := c.Read(b) // EOF once the probe closes
		accepted <- b[:n]
	}()

	if err := Probe(context.Background(), ln.Addr().String()); err != nil {
		t.Fatalf("Probe of a listening port: got %v, want nil", err)
	}
	if b := <-accepted; b == nil || len(b) != 0 {
		t.Errorf("probe sent %q (or was never accepted), want a connection that sends nothing", b)
	}

	// A port with no listener: refused.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	err = Probe(context.Background(), addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Probe of a closed port: got %v, want connection refused", err)
	}

	// A context already cancelled: the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Probe(ctx, ln.Addr().String()); !errors.Is(err, context.Canceled) {
		t.Errorf("Probe with a cancelled context: got %v, want context.Canceled", err)
	}

	if err := Probe(context.Background(), "no-port"); err == nil {
		t.Errorf("Probe of %q: got nil, want an error", "no-port")
	}
}
