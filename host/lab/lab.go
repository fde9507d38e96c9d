// Package lab runs real sshguard "hosts" on one machine, each in its own
// network namespace, so the host scripts (host/sshguard-unban.sh,
// host/sshguard-report.sh) can be exercised against a live sshguard and a real
// firewall without touching the machine's own firewall.
//
// A Host is: a fresh network namespace; a generated sshguard.conf bind-mounted
// over /etc/sshguard/sshguard.conf in a private mount namespace (the wrapper
// only reads that fixed path); and the stock /usr/sbin/sshguard reading a plain
// log file that Attack appends sshd failure lines to. Every firewall command
// runs through "ip netns exec": nothing here lists or changes the firewall of
// the machine's own namespace (even a read-only "iptables -S" can create
// tables there).
//
// It needs root. Available says whether this machine can run it.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Backends are the sshguard firewall backends a Host can use (Debian's names
// without the "sshg-fw-" prefix).
var Backends = []string{"nft-sets", "iptables", "ipset"}

const (
	sshguardBin  = "/usr/sbin/sshguard"
	libexec      = "/usr/libexec/sshguard"
	stockConf    = "/etc/sshguard/sshguard.conf"
	nsPrefix     = "sglab-"
	attackScore  = 10 // what sshguard scores one "Invalid user" line
	neverBlack   = 1000000
	defaultWait  = 15 * time.Second
	pollInterval = 10 * time.Millisecond
)

// Options describe one Host.
type Options struct {
	// Name is the host name the scripts see (uname -n) and part of the
	// namespace name: letters, digits, '-' and '.', at most 32. Empty: the
	// namespace name.
	Name string
	// Backend is "nft-sets" (empty means this, Debian's default), "iptables"
	// or "ipset".
	Backend string
	// IPv4Subnet and IPv6Subnet are sshguard's IPV4_SUBNET and IPV6_SUBNET:
	// the prefix length it blocks. 0 means 32 and 128 (single addresses).
	IPv4Subnet, IPv6Subnet int
	// Blacklist gives sshguard a blacklist file (BLACKLIST_FILE).
	Blacklist bool
	// BlacklistThreshold is the attack score at which sshguard blacklists an
	// attacker; one Attack scores 10, so 10 blacklists every attacker. 0
	// means attacks never get blacklisted (only Blacklisted entries are).
	BlacklistThreshold int
	// Blacklisted addresses are written to the blacklist file before sshguard
	// starts, as on a host that restarted after blacklisting them: sshguard
	// blocks them at start. Needs Blacklist.
	Blacklisted []string
	// Dir is where the host's temporary directory is made; empty means the
	// system default. The directory is removed by Close.
	Dir string
	// BlockTime and DetectionTime are sshguard's BLOCK_TIME and DETECTION_TIME
	// in seconds; 0 means 120 and 1800, Debian's defaults.
	BlockTime, DetectionTime int
	// Awk, if set, is the awk the host's scripts find as /usr/bin/awk (a
	// name on PATH or a path), bind-mounted in the host's mount namespace:
	// Debian's hosts have mawk, Amazon Linux gawk.
	Awk string
	// Network joins the host to a second namespace, "the internet", by a
	// veth pair, and listens on TCP port 22 in the host: CanConnect then
	// tells from real packets whether an address gets through.
	Network bool
}

// Host is one running sshguard in its own network namespace.
type Host struct {
	Name    string
	Backend string
	// NS is the network namespace (ip netns) name.
	NS string
	// Dir is the host's private temporary directory.
	Dir string
	// Conf is the generated sshguard.conf (seen by sshguard as
	// /etc/sshguard/sshguard.conf; the scripts get it as SSHGUARD_CONF).
	Conf string
	// LogFile is the sshd log sshguard follows.
	LogFile string
	// DebugLog receives sshguard's SSHGUARD_DEBUG output.
	DebugLog string
	// BlacklistFile is the blacklist file, empty without Options.Blacklist.
	BlacklistFile string
	// StateDir is the scripts' work directory (SSHGUARD_UNBAN_STATE).
	StateDir string

	net       *network // with Options.Network
	awk       string   // Options.Awk resolved, and what /usr/bin/awk resolves to
	awkTarget string
	cmd       *exec.Cmd
	done      chan struct{} // closed when the sshguard wrapper has exited
	logMu     sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

// Available reports why this machine cannot run lab hosts, or nil if it can.
func Available() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, f := range []string{sshguardBin, stockConf,
		libexec + "/sshg-fw-nft-sets", libexec + "/sshg-fw-iptables", libexec + "/sshg-fw-ipset"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	for _, c := range []string{"ip", "nft", "iptables", "ip6tables", "iptables-restore",
		"ip6tables-restore", "ipset", "unshare", "nsenter", "mount", "hostname", "sh"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$`)

// Start creates the namespace, starts sshguard in it and waits until its
// firewall is set up (and the Blacklisted entries are blocked). On error
// nothing is left behind.
func Start(ctx context.Context, opts Options) (_ *Host, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.Backend == "" {
		opts.Backend = "nft-sets"
	}
	known := false
	for _, b := range Backends {
		known = known || b == opts.Backend
	}
	if !known {
		return nil, fmt.Errorf("lab: unknown backend %q", opts.Backend)
	}
	if opts.Name != "" && !nameRE.MatchString(opts.Name) {
		return nil, fmt.Errorf("lab: bad host name %q", opts.Name)
	}
	if opts.BlockTime < 0 || opts.DetectionTime < 0 {
		return nil, errors.New("lab: BlockTime and DetectionTime must not be negative")
	}
	if opts.IPv4Subnet < 0 || opts.IPv4Subnet > 32 || opts.IPv6Subnet < 0 || opts.IPv6Subnet > 128 {
		return nil, errors.New("lab: subnet lengths must be 0-32 and 0-128")
	}
	if len(opts.Blacklisted) > 0 && !opts.Blacklist {
		return nil, errors.New("lab: Blacklisted needs Blacklist")
	}
	var seeds []netip.Addr
	for _, s := range opts.Blacklisted {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("lab: Blacklisted: %w", err)
		}
		seeds = append(seeds, a.Unmap())
	}

	var rnd [5]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	// The namespace name carries our pid, so a later Start can tell a
	// namespace left by a killed test run (see sweepStale) from a live one.
	ns := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	if opts.Name != "" {
		ns = fmt.Sprintf("%s%d-%s-%s", nsPrefix, os.Getpid(), opts.Name, hex.EncodeToString(rnd[:]))
	}
	sweepStale(ctx)
	h := &Host{Name: opts.Name, Backend: opts.Backend, NS: ns, done: make(chan struct{})}
	if h.Name == "" {
		h.Name = ns
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("lab: start %s: %w", ns, err), h.Close())
			h = nil
		}
	}()

	if opts.Awk != "" {
		if h.awk, err = exec.LookPath(opts.Awk); err != nil {
			return nil, err
		}
		if h.awkTarget, err = filepath.EvalSymlinks("/usr/bin/awk"); err != nil {
			return nil, err
		}
	}
	if h.Dir, err = os.MkdirTemp(opts.Dir, "sshguard-lab-"); err != nil {
		return nil, err
	}
	h.Conf = filepath.Join(h.Dir, "sshguard.conf")
	h.LogFile = filepath.Join(h.Dir, "auth.log")
	h.DebugLog = filepath.Join(h.Dir, "sshguard.debug")
	h.StateDir = filepath.Join(h.Dir, "unban-state")
	if err := os.WriteFile(h.LogFile, nil, 0o600); err != nil {
		return nil, err
	}
	if opts.Blacklist {
		h.BlacklistFile = filepath.Join(h.Dir, "blacklist")
		var b strings.Builder
		for _, a := range seeds {
			fam := 4
			if a.Is6() {
				fam = 6
			}
			// An hour old: blacklisted before this sshguard started.
			fmt.Fprintf(&b, "%d|100|%d|%s\n", time.Now().Add(-time.Hour).Unix(), fam, a)
		}
		if err := os.WriteFile(h.BlacklistFile, []byte(b.String()), 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(h.Conf, []byte(h.config(opts)), 0o644); err != nil {
		return nil, err
	}

	if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return nil, err
	}
	if _, err := h.Command(ctx, "ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	if opts.Network {
		if err := h.startNetwork(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Backend == "iptables" {
		// The iptables backend only inserts into a chain the admin made.
		for _, ipt := range []string{"iptables", "ip6tables"} {
			if _, err := h.Command(ctx, ipt, "-w", "-N", "sshguard"); err != nil {
				return nil, err
			}
			if _, err := h.Command(ctx, ipt, "-w", "-A", "INPUT", "-j", "sshguard"); err != nil {
				return nil, err
			}
		}
	}
	if err := h.startSSHGuard(); err != nil {
		return nil, err
	}
	if err := h.waitReady(ctx, seeds); err != nil {
		return nil, err
	}
	if opts.Backend == "ipset" {
		// The ipset backend only fills sets; the DROP that uses them is the
		// admin's, as on a real host (sshguard made the sets by now).
		for fam, ipt := range map[int]string{4: "iptables", 6: "ip6tables"} {
			if _, err := h.Command(ctx, ipt, "-w", "-I", "INPUT", "-m", "set", "--match-set", fmt.Sprintf("sshguard%d", fam), "src", "-j", "DROP"); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// config is the sshguard.conf of the host. THRESHOLD equals one attack's
// score, so a single log line blocks.
func (h *Host) config(opts Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "BACKEND=%q\n", libexec+"/sshg-fw-"+opts.Backend)
	bt, dt := opts.BlockTime, opts.DetectionTime
	if bt == 0 {
		bt = 120
	}
	if dt == 0 {
		dt = 1800
	}
	fmt.Fprintf(&b, "THRESHOLD=%d\nBLOCK_TIME=%d\nDETECTION_TIME=%d\n", attackScore, bt, dt)
	if opts.IPv4Subnet > 0 {
		fmt.Fprintf(&b, "IPV4_SUBNET=%d\n", opts.IPv4Subnet)
	}
	if opts.IPv6Subnet > 0 {
		fmt.Fprintf(&b, "IPV6_SUBNET=%d\n", opts.IPv6Subnet)
	}
	if opts.Blacklist {
		th := opts.BlacklistThreshold
		if th <= 0 {
			th = neverBlack
		}
		fmt.Fprintf(&b, "BLACKLIST_FILE=%d:%s\n", th, h.BlacklistFile)
	}
	return b.String()
}

// startSSHGuard runs the stock wrapper as "sshguard -i PIDFILE LOGFILE" (a
// plain file argument; -l would also start journalctl with the stock config)
// in its own session: the wrapper ends with "kill 0", which must only reach
// its own process group.
func (h *Host) startSSHGuard() error {
	debug, err := os.OpenFile(h.DebugLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer debug.Close()
	// "ip netns exec" gives the command a private mount namespace, so the
	// bind mounts (the config, an Options.Awk) are seen by this sshguard and
	// the scripts RunEnv runs in its namespaces only; unshare a UTS
	// namespace for the host name.
	const script = `hostname "$1" && mount --bind "$2" /etc/sshguard/sshguard.conf &&
		{ [ -z "$3" ] || mount --bind "$3" "$4"; } && exec "$5" -i "$6" "$7"`
	h.cmd = exec.Command("ip", "netns", "exec", h.NS, "unshare", "--uts", "--", "sh", "-c", script, "sh",
		h.Name, h.Conf, h.awk, h.awkTarget, sshguardBin, filepath.Join(h.Dir, "sshguard.pid"), h.LogFile)
	h.cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSHGUARD_DEBUG=1"}
	h.cmd.Stdout, h.cmd.Stderr = debug, debug
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := h.cmd.Start(); err != nil {
		return err
	}
	go func() {
		_ = h.cmd.Wait()
		close(h.done)
	}()
	return nil
}

// waitReady waits for the backend's tables or sets to exist and the seeded
// blacklist entries to be blocked.
func (h *Host) waitReady(ctx context.Context, seeds []netip.Addr) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		if !h.Running() {
			return fmt.Errorf("sshguard exited: %s", h.debugTail())
		}
		// The pid file says the wrapper got as far as sshguard (host name
		// and mounts set): an iptables chain the lab made itself exists
		// before that, and a script run in the meantime would see the
		// machine's host name.
		_, perr := os.Stat(filepath.Join(h.Dir, "sshguard.pid"))
		if entries, err := h.Blocked(ctx); perr == nil && err == nil && allBlocked(entries, seeds) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshguard not ready: %w; debug log: %s", ctx.Err(), h.debugTail())
		case <-time.After(pollInterval):
		}
	}
}

func allBlocked(entries []string, addrs []netip.Addr) bool {
	for _, a := range addrs {
		if !Contains(entries, a) {
			return false
		}
	}
	return true
}

// Attack appends sshd "Invalid user" lines for addr to the log until addr, or
// a blocked prefix containing it, is in the firewall. sshguard's log reader
// starts late (tail -n 0), so a single line is not enough.
func (h *Host) Attack(ctx context.Context, addr string) error {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("lab: attack: %w", err)
	}
	a = a.Unmap()
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	ignored := fmt.Sprintf("%s has already been blocked.", a)
	seen := strings.Count(h.DebugText(), ignored)
	for {
		if !h.Running() {
			return fmt.Errorf("lab: attack %s: sshguard is not running: %s", a, h.debugTail())
		}
		if err := h.LogFailure(a); err != nil {
			return err
		}
		// Poll a while before writing again: one line per ~200 ms keeps the
		// log realistic while sshguard catches up.
		for i := 0; i < 20; i++ {
			entries, err := h.Blocked(ctx)
			if err == nil && Contains(entries, a) {
				return nil
			}
			if strings.Count(h.DebugText(), ignored) > seen {
				// sshguard still counts the address as blocked (after an
				// unban, until its own timer ends): no failed login will
				// block it now.
				return fmt.Errorf("lab: attack %s: %w", a, ErrStillCounted)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("lab: attack %s: not blocked: %w (last read error: %v); debug log: %s",
					a, ctx.Err(), err, h.debugTail())
			case <-time.After(pollInterval):
			}
		}
	}
}

// ErrStillCounted: sshguard still counts the address as blocked (the grace
// after an unban lasts until its own timer ends) and ignores its failed
// logins, so an attack cannot block it now.
var ErrStillCounted = errors.New("sshguard still counts this address as blocked and ignores its failed logins until its own timer ends")

// LogFailure appends one sshd "Invalid user" line for a to the log sshguard
// follows (one attack, scored 10), without waiting for anything.
func (h *Host) LogFailure(a netip.Addr) error {
	return h.appendLog(fmt.Sprintf("%s %s sshd[4711]: Invalid user bob from %s port 52344\n",
		time.Now().Format(time.Stamp), h.Name, a.Unmap()))
}

// DebugText is sshguard's debug log so far (SSHGUARD_DEBUG output: its
// decisions, "Blocking \"192.0.2.1/32\" for 120 secs", "unblocking after …").
func (h *Host) DebugText() string {
	b, _ := os.ReadFile(h.DebugLog)
	return string(b)
}

func (h *Host) appendLog(line string) error {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	f, err := os.OpenFile(h.LogFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}

// Result is what a script run produced.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// Run runs a host script inside the namespace, as the SSM agent would: as root,
// with a minimal environment, SSHGUARD_CONF set to the host's config, and
// uname -n answering the host's Name. A non-zero exit is not an error.
func (h *Host) Run(ctx context.Context, script string, args ...string) (stdout []byte, exitCode int, err error) {
	r, err := h.RunEnv(ctx, nil, script, args...)
	return r.Stdout, r.ExitCode, err
}

// RunEnv is Run with extra "KEY=VALUE" environment entries, which override the
// defaults (e.g. "SSHGUARD_CONF=/elsewhere"), and with stderr kept.
func (h *Host) RunEnv(ctx context.Context, env []string, script string, args ...string) (Result, error) {
	script, err := filepath.Abs(script)
	if err != nil {
		return Result{}, err
	}
	var cmd *exec.Cmd
	if pid := h.pid(); pid > 0 {
		// The namespaces of the host's sshguard: network, the UTS one with
		// the host's name, the mounts (its awk); one process to enter.
		argv := append([]string{"--net=" + filepath.Join("/run/netns", h.NS),
			fmt.Sprintf("--uts=/proc/%d/ns/uts", pid), fmt.Sprintf("--mount=/proc/%d/ns/mnt", pid), "--", script}, args...)
		cmd = exec.CommandContext(ctx, "nsenter", argv...)
	} else {
		// sshguard is gone: a private UTS namespace for this run.
		const wrap = `hostname "$1" && shift && exec "$@"`
		argv := append([]string{"netns", "exec", h.NS, "unshare", "--uts", "--", "sh", "-c", wrap, "sh", h.Name, script}, args...)
		cmd = exec.CommandContext(ctx, "ip", argv...)
	}
	cmd.Env = append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSHGUARD_CONF=" + h.Conf,
		"SSHGUARD_UNBAN_STATE=" + h.StateDir,
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() >= 0 && ctx.Err() == nil:
		r.ExitCode = exit.ExitCode()
		err = nil
	default:
		return r, fmt.Errorf("lab: run %s: %w (stderr: %s)", filepath.Base(script), err, stderr.Bytes())
	}
	return r, nil
}

// Command runs name with args inside the host's network namespace (for
// firewall commands: "nft", "iptables", ...) and returns its stdout. Like
// RunEnv, it enters the namespace with one process (nsenter), so the two
// cost the same to start.
func (h *Host) Command(ctx context.Context, name string, args ...string) ([]byte, error) {
	return h.CommandInput(ctx, nil, name, args...)
}

// CommandInput is Command with stdin.
func (h *Host) CommandInput(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return runInput(ctx, stdin, "nsenter", append([]string{"--net=" + filepath.Join("/run/netns", h.NS), "--", name}, args...)...)
}

// pid is the sshguard wrapper's process id while it runs, else 0.
func (h *Host) pid() int {
	if !h.Running() {
		return 0
	}
	return h.cmd.Process.Pid
}

// Running reports whether the sshguard wrapper is still running.
func (h *Host) Running() bool {
	if h == nil || h.cmd == nil {
		return false
	}
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// Close stops sshguard (SIGTERM, then SIGKILL for what is left in the
// namespace), waits until the namespace has no process, deletes it and the
// temporary directory. It is safe on a half-started host and more than once.
func (h *Host) Close() error {
	if h == nil {
		return nil
	}
	h.closeOnce.Do(func() { h.closeErr = h.close() })
	return h.closeErr
}

func (h *Host) close() error {
	// Close must work even when the caller's context is gone.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var errs []error
	if h.cmd != nil && h.cmd.Process != nil {
		// The wrapper traps TERM, exits, and its "kill 0" ends the pipeline;
		// the backend then cleans up its tables.
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.done
		}
	}
	if h.net != nil {
		if err := h.net.close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if h.nsExists() {
		if err := h.drainNamespace(ctx, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
		if _, err := run(ctx, "ip", "netns", "del", h.NS); err != nil {
			errs = append(errs, err)
		}
	}
	if h.Dir != "" {
		if err := os.RemoveAll(h.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab: close %s: %w", h.NS, err)
	}
	return nil
}

func (h *Host) nsExists() bool {
	_, err := os.Stat(filepath.Join("/run/netns", h.NS))
	return err == nil
}

// drainNamespace waits until no process is left in the namespace, killing
// stragglers after a grace period. Every process there is ours: the
// namespace was made by this Host.
func (h *Host) drainNamespace(ctx context.Context, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for {
		out, err := run(ctx, "ip", "netns", "pids", h.NS)
		if err != nil {
			return err
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				var pid int
				if _, err := fmt.Sscan(p, &pid); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			return fmt.Errorf("processes left in namespace: %s", strings.Join(pids, " "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// sweepStale removes lab namespaces whose creating process is gone (a test
// binary killed by a timeout never runs its cleanups), with the sshguard still
// running in them. Namespaces of live processes are left alone. Best effort.
func sweepStale(ctx context.Context) {
	dirs, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, d := range dirs {
		rest, ok := strings.CutPrefix(d.Name(), nsPrefix)
		if !ok {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(rest, "%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		h := &Host{NS: d.Name()}
		if h.drainNamespace(ctx, 0) == nil {
			_, _ = run(ctx, "ip", "netns", "del", h.NS)
		}
	}
}

// debugTail is the end of sshguard's debug log, for error messages.
func (h *Host) debugTail() string {
	b, err := os.ReadFile(h.DebugLog)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultWait)
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runInput(ctx, nil, name, args...)
}

func runInput(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "),
			err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
