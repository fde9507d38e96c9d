#!/bin/sh
# sshguard-report.sh
#
# Prints every block sshguard holds in this host's firewall, the settings
# and the active exceptions as one JSON object (shared/hostreport.Report):
#   {"host":"web-1","time":"2025-11-24T10:00:00Z","backend":"nft-sets",
#    "settings":{"block_time":120,…},
#    "entries":[{"entry":"192.0.2.0/24","family":4,"blacklisted":false}],
#    "exceptions":[{"address":"192.0.2.5","entries":["192.0.2.0/24"],
#                   "expires":"2025-11-24T11:00:00Z"}]}
# An entry is an address, or a prefix when sshguard blocks subnets. It is
# "blacklisted" when an address of sshguard's blacklist file lies in it:
# sshguard then never releases it and blocks it again whenever it starts.
#
# It changes nothing but exceptions that ended (their time is up, sshguard
# released what they exempted from, or a new block covers the address): it
# removes those, so that none outlives what it was made for. In production it
# runs every minute.
#
# Exit status (with a JSON error object {"host","time","error","code"} unless 0):
#   0  ran
#   2  bad input: usage (it takes no arguments)
#   3  state cannot be read: firewall_unreadable, blacklist_unreadable,
#      lock_timeout, lock_unavailable, state_unwritable
#   4  sshguard config missing or not understood: no_config, bad_config,
#      unsupported_backend
# Environment: SSHGUARD_CONF, the sshguard config to read (default
# /etc/sshguard/sshguard.conf); SSHGUARD_UNBAN_STATE, the work directory
# (default /run/sshguard-unban).

# fail CODE STATUS MESSAGE: print the JSON error object and exit.
fail() {
	printf '{"host":%s,"time":%s,"backend":%s,"error":%s,"code":%s}\n' \
		"$(json "$HOST")" "$(json "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$(json "$BACKEND")" \
		"$(json "$3")" "$(json "$1")"
	exit "$2"
}

# @include common.sh

[ $# -eq 0 ] || fail usage 2 "usage: sshguard-report.sh (it takes no arguments)"
load_config 0
lock
run_engine report
if [ "$APPLIED" = 0 ]; then
	# The garbage collection never went in: report the firewall as it is.
	engine verify
fi
# exec: nothing is left for the EXIT trap to do (the blocker runs), and it
# saves a fork.
digest
exec cat "$W/out"
