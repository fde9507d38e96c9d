package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The lab host's own addresses on its veth, and the port it listens on. The
// sources CanConnect tries come from the same documentation ranges; the
// host's address being inside a blocked prefix changes nothing (sshguard
// matches source addresses).
var (
	HostAddr4 = netip.MustParseAddr("203.0.113.254")
	HostAddr6 = netip.MustParseAddr("2001:db8:ffff::1")
)

const (
	listenPort = 22
	hostMAC    = "02:00:00:00:00:01"
	netMAC     = "02:00:00:00:00:02"
	// dialTimeout decides "cannot connect": a dropped SYN is never
	// answered, while an accepted one completes in well under a
	// millisecond on a veth (the kernel resends a SYN only after 1 s).
	dialTimeout = 1500 * time.Millisecond
)

// Addresses are the host's own global addresses: HostAddr4 and HostAddr6
// with a network (Options.Network), none without.
func (h *Host) Addresses() []netip.Addr {
	if h.net == nil {
		return nil
	}
	return []netip.Addr{HostAddr4, HostAddr6}
}

// network is the "internet" side of a host: its own namespace, joined to the
// host's by a veth pair (eth1 there, eth0 in the host), holding every source
// address CanConnect has used.
type network struct {
	ns       string
	listener net.Listener
	mu       sync.Mutex
	sources  map[netip.Addr]bool
	accepted sync.WaitGroup
}

// startNetwork sets up the veth pair, the routes and the listener. The host
// routes everything out of eth0, the internet reaches the host's two
// addresses through eth1; DAD is off so IPv6 addresses work at once.
func (h *Host) startNetwork(ctx context.Context) error {
	n := &network{ns: h.NS + "-net", sources: map[netip.Addr]bool{}}
	if _, err := run(ctx, "ip", "netns", "add", n.ns); err != nil {
		return err
	}
	h.net = n
	noDAD := `for f in /proc/sys/net/ipv6/conf/all/accept_dad /proc/sys/net/ipv6/conf/default/accept_dad; do echo 0 > "$f"; done`
	steps := [][]string{
		{"netns", "exec", h.NS, "sh", "-c", noDAD},
		{"netns", "exec", n.ns, "sh", "-c", noDAD},
		{"-n", n.ns, "link", "set", "lo", "up"},
		{"-n", h.NS, "link", "add", "eth0", "address", hostMAC, "type", "veth", "peer", "name", "eth1", "address", netMAC, "netns", n.ns},
		{"-n", h.NS, "addr", "add", HostAddr4.String() + "/32", "dev", "eth0"},
		{"-n", h.NS, "addr", "add", HostAddr6.String() + "/128", "dev", "eth0", "nodad"},
		{"-n", h.NS, "link", "set", "eth0", "up"},
		{"-n", n.ns, "link", "set", "eth1", "up"},
		// IPv6 through fixed link-local next hops with static neighbour
		// entries: neighbour discovery is ICMPv6, passes the firewall under
		// test, and Linux sends a solicitation from the source address of the
		// packet that needs it, which may be a blocked one.
		{"-n", h.NS, "addr", "add", "fe80::1/64", "dev", "eth0", "nodad"},
		{"-n", n.ns, "addr", "add", "fe80::2/64", "dev", "eth1", "nodad"},
		{"-n", h.NS, "route", "add", "default", "dev", "eth0"},
		{"-n", h.NS, "-6", "route", "add", "default", "via", "fe80::2", "dev", "eth0"},
		{"-n", n.ns, "route", "add", HostAddr4.String() + "/32", "dev", "eth1"},
		{"-n", h.NS, "-6", "neigh", "replace", "fe80::2", "lladdr", netMAC, "dev", "eth0", "nud", "permanent"},
		{"-n", n.ns, "-6", "neigh", "replace", "fe80::1", "lladdr", hostMAC, "dev", "eth1", "nud", "permanent"},
		{"-n", n.ns, "-6", "route", "add", HostAddr6.String() + "/128", "via", "fe80::1", "dev", "eth1"},
	}
	for _, s := range steps {
		if _, err := run(ctx, "ip", s...); err != nil {
			return err
		}
	}
	var err error
	n.listener, err = inNamespace(h.NS, func() (net.Listener, error) {
		return net.Listen("tcp", ":"+strconv.Itoa(listenPort)) // both families
	})
	if err != nil {
		return fmt.Errorf("listen in %s: %w", h.NS, err)
	}
	n.accepted.Add(1)
	go func() {
		defer n.accepted.Done()
		for {
			c, err := n.listener.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return nil
}

// CanConnect reports whether a TCP connection from src (an address of the
// internet namespace, added on first use) to the host's port 22 gets through
// the host's firewall: the three-way handshake completes. A connection that
// times out is blocked (false, nil). Needs Options.Network.
func (h *Host) CanConnect(ctx context.Context, src netip.Addr) (bool, error) {
	n := h.net
	if n == nil {
		return false, errors.New("lab: CanConnect needs Options.Network")
	}
	src = src.Unmap()
	if err := n.addSource(ctx, src); err != nil {
		return false, err
	}
	dst := HostAddr4
	if src.Is6() {
		dst = HostAddr6
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := inNamespace(n.ns, func() (net.Conn, error) {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		return d.DialContext(ctx, "tcp", netip.AddrPortFrom(dst, listenPort).String())
	})
	if err == nil {
		_ = c.Close()
		return true, nil
	}
	if ne, ok := errors.AsType[net.Error](err); (ok && ne.Timeout()) || ctx.Err() != nil {
		return false, nil
	}
	return false, fmt.Errorf("lab: connect from %s: %w", src, err)
}

// CanConnectAll runs CanConnect for every address at once (each blocked one
// costs the dial timeout) and returns the answers by address.
func (h *Host) CanConnectAll(ctx context.Context, srcs ...netip.Addr) (map[netip.Addr]bool, error) {
	out := make(map[netip.Addr]bool, len(srcs))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := h.CanConnect(ctx, s)
			mu.Lock()
			defer mu.Unlock()
			out[s.Unmap()] = ok
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (n *network) addSource(ctx context.Context, src netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sources[src] {
		return nil
	}
	args := []string{"-n", n.ns, "addr", "add", src.String() + "/32", "dev", "eth1"}
	if src.Is6() {
		args = []string{"-n", n.ns, "addr", "add", src.String() + "/128", "dev", "eth1", "nodad"}
	}
	if _, err := run(ctx, "ip", args...); err != nil {
		return fmt.Errorf("lab: add source %s: %w", src, err)
	}
	n.sources[src] = true
	return nil
}

// close stops the listener and deletes the internet namespace (and with it
// the veth pair). Nothing runs in it: sockets are made there by this
// process only.
func (n *network) close(ctx context.Context) error {
	var errs []error
	if n.listener != nil {
		errs = append(errs, n.listener.Close())
		n.accepted.Wait()
	}
	if _, err := os.Stat(filepath.Join("/run/netns", n.ns)); err == nil {
		if _, err := run(ctx, "ip", "netns", "del", n.ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// inNamespace runs f on an OS thread that has entered the named network
// namespace, so the sockets f makes belong to it (a socket keeps the
// namespace it was made in), and then puts the thread back. A thread that
// cannot go back is never returned to the Go runtime: it ends with the
// goroutine. (It must go back: the thread may be the process's main one,
// which the runtime keeps, and "ip netns pids" would then count this
// process as one to kill in that namespace.)
func inNamespace[T any](ns string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var zero T
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, err}
			return
		}
		defer unix.Close(orig)
		fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // still in its own namespace
			ch <- result{zero, err}
			return
		}
		v, err := f()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}
