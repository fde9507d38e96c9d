// Package host holds the scripts that run on the production hosts through SSM
// Run Command, and their tests against real sshguard instances (package
// host/lab):
//
//   - sshguard-unban.sh ADDRESS... frees exactly the given addresses: it
//     deletes the entries that are the address itself, gives the address an
//     exception that ends by itself from the entries that contain it (which
//     stay blocked for everyone else), leaves blacklisted addresses to an SRE,
//     and prints a shared/hostreport.Unban as JSON, with the host's report
//     after the unban.
//   - sshguard-report.sh prints every sshguard block on the host, its
//     settings and the active exceptions as a shared/hostreport.Report, and
//     removes exceptions that ended.
//
// Both are POSIX sh with awk, no bash, python or jq, and read the host's own
// sshguard.conf (SSHGUARD_CONF overrides its path) to find the backend
// (nft-sets, iptables or ipset), the blacklist file and the settings. Their
// shared part is common.sh; Script assembles each runnable script from the
// sources compiled in, and Assemble from any directory (the CDK app, at
// synth time).
package host
