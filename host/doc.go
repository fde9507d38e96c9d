// Package host holds the scripts that run on the production hosts through SSM
// Run Command, and their tests against real sshguard instances (package
// host/lab):
//
//   - sshguard-unban.sh ADDRESS... removes exactly the given addresses (or the
//     blocked prefixes containing them) from sshguard's firewall and blacklist
//     and prints a shared/hostreport.Unban as JSON.
//   - sshguard-report.sh prints every sshguard block on the host as a
//     shared/hostreport.Report.
//
// Both are POSIX sh with awk, no bash, python or jq, and read the host's own
// sshguard.conf (SSHGUARD_CONF overrides its path) to find the backend
// (nft-sets, iptables or ipset) and the blacklist file.
package host
