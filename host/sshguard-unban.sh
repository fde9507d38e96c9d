#!/bin/sh
# sshguard-unban.sh [--exception-seconds N] [--remove-blacklisted] ADDRESS...
#
# Frees exactly the given IPv4/IPv6 addresses from sshguard's blocks on this
# host, never anything else, and prints one JSON object
# (shared/hostreport.Unban) with the host's report after the unban:
#   {"host":"web-1","backend":"nft-sets","report":{…},
#    "results":[{"address":"192.0.2.5","was_blocked":true,
#    "blocked_by":["192.0.2.0/24"],"removed":[],
#    "exception":{"address":"192.0.2.5","entries":["192.0.2.0/24"],
#                 "expires":"2025-11-24T11:00:00Z"},
#    "blacklisted":false,"blacklist_removed":false,"still_blocked":false}]}
# Per address: an entry that is the address itself is deleted; entries that
# contain it (192.0.2.0/24 when sshguard blocks subnets) stay blocked for
# everyone else and the address gets an exception from them, which ends by
# itself after N seconds (default 30 x BLOCK_TIME, 10 to 86400), or earlier
# when sshguard releases those entries. An address on sshguard's blacklist,
# or inside a blocked entry holding a blacklisted address, is reported and
# left alone: an SRE decides. With --remove-blacklisted (the SRE override)
# its blacklist lines go too, written back while sshguard's blocker is
# paused so that none of its own appends is lost.
#
# It runs as root through SSM Run Command and its arguments come, in principle,
# from an attacker: each one is checked byte by byte before anything else runs,
# never evaluated, and only canonical text re-derived from parsed addresses
# ever reaches a firewall command. It never restarts sshguard and never
# flushes.
#
# Exit status (with a JSON error object {"host","error","code"} unless 0):
#   0  ran, even if nothing was blocked
#   2  bad input: usage, bad_address
#   3  state cannot be read: firewall_unreadable, blacklist_unreadable,
#      lock_timeout, lock_unavailable, state_unwritable
#   4  sshguard config missing or not understood: no_config, bad_config,
#      unsupported_backend
#   5  a change failed: remove_failed, blacklist_write_failed (the object then
#      also has "results" and "report" saying what the host holds now)
# Environment: SSHGUARD_CONF, the sshguard config to read (default
# /etc/sshguard/sshguard.conf); SSHGUARD_UNBAN_STATE, the work directory
# (default /run/sshguard-unban).

# fail CODE STATUS MESSAGE: print the JSON error object and exit.
fail() {
	printf '{"host":%s,"backend":%s,"error":%s,"code":%s,"results":[]}\n' \
		"$(json "$HOST")" "$(json "$BACKEND")" "$(json "$3")" "$(json "$1")"
	exit "$2"
}

# @include common.sh

# find_blocker sets BLOCKER to the pid of the sshg-blocker that appends to
# our blacklist file (its command line has -b THRESHOLD:FILE), and
# BLOCKER_START to when it started (epoch seconds): entries it blacklisted
# since then are in its memory for good.
find_blocker() {
	for d in /proc/[0-9]*; do
		c=
		{ read -r c <"$d/comm"; } 2>/dev/null || continue
		[ "$c" = sshg-blocker ] || continue
		tr '\000' '\n' <"$d/cmdline" 2>/dev/null | awk -v f="$BLFILE" '
			prev == "-b" && ($0 == f || substr($0, length($0) - length(f)) == ":" f) { hit = 1 }
			{ prev = $0 }
			END { exit !hit }' || continue
		BLOCKER=${d#/proc/}
		break
	done
	[ -n "$BLOCKER" ] || return 0
	tck=$(getconf CLK_TCK 2>/dev/null) || tck=100
	{ read -r st <"/proc/$BLOCKER/stat"; } 2>/dev/null || st=''
	BLOCKER_START=$(awk -v st="${st##*) }" -v tck="$tck" '
		$1 == "btime" { split(st, f, " "); if (f[20] != "" && tck > 0) printf "%d", $2 + int(f[20] / tck); exit }' /proc/stat)
	[ -n "$BLOCKER_START" ] || BLOCKER_START=0
}

# stopped PID: every thread of PID is stopped (state T).
stopped() {
	for s in /proc/"$1"/task/*/stat; do
		st=
		{ read -r st <"$s"; } 2>/dev/null || return 1
		st=${st##*) }
		case $st in T* | t*) ;; *) return 1 ;; esac
	done
}

# rewrite_blacklist drops the lines of the addresses in $W/bl.drop from the
# blacklist, in place (sshguard keeps the file open with O_APPEND: a
# replaced file would swallow its next appends). sshguard's blocker is
# stopped from before the read to after the write, so nothing it appends
# meanwhile is lost; a watchdog resumes it should this script be killed.
rewrite_blacklist() {
	wd=
	if [ -n "$BLOCKER" ]; then
		sh -c 'trap "kill \$s 2>/dev/null; exit 0" TERM; sleep 3 & s=$!; wait $s; kill -CONT "$1"' sh "$BLOCKER" \
			</dev/null >/dev/null 2>&1 &
		wd=$!
		STOPPED=$BLOCKER
		kill -STOP "$BLOCKER" 2>/dev/null || STOPPED=
		n=0
		while [ -n "$STOPPED" ] && ! stopped "$BLOCKER"; do
			n=$((n + 1))
			[ $n -lt 500 ] || break
			[ $((n % 50)) -ne 0 ] || sleep 1
		done
	fi
	awk -F '|' "$AWKLIB"'
		FILENAME == ARGV[1] { drop[$0] = 1; next }
		{
			a = $4
			gsub(/[ \t\r]/, "", a)
			k = ""
			if ((b = bits4(a)) != "") k = "4 " canon4(b)
			else if ((b = bits6(a)) != "") k = "6 " canon6(b)
			if (!(k in drop)) print
		}' "$W/bl.drop" "$BLFILE" >"$W/bl.new" && cat "$W/bl.new" >"$BLFILE"
	rc=$?
	if [ -n "$STOPPED" ]; then
		kill -CONT "$STOPPED" 2>/dev/null
		STOPPED=
	fi
	[ -z "$wd" ] || kill "$wd" 2>/dev/null
	return $rc
}

USAGE="usage: sshguard-unban.sh [--exception-seconds N] [--remove-blacklisted] ADDRESS..."
XS=0
OVERRIDE=0
SKIP=0
while [ $# -gt 0 ]; do
	case $1 in
	--exception-seconds)
		[ $# -ge 2 ] || fail usage 2 "$USAGE"
		XS=$2
		shift 2
		SKIP=$((SKIP + 2))
		;;
	--remove-blacklisted)
		OVERRIDE=1
		shift
		SKIP=$((SKIP + 1))
		;;
	*) break ;;
	esac
done
case $XS in
'' | *[!0123456789]*) fail usage 2 "--exception-seconds takes a number of seconds" ;;
esac
[ "${#XS}" -le 6 ] || fail usage 2 "--exception-seconds takes a number of seconds"
while :; do case $XS in 0?*) XS=${XS#0} ;; *) break ;; esac; done
if [ "$XS" -ne 0 ] && { [ "$XS" -lt 10 ] || [ "$XS" -gt 86400 ]; }; then
	fail usage 2 "the exception lifetime must be 10 to 86400 seconds (0: the host default)"
fi
[ $# -ge 1 ] || fail usage 2 "$USAGE"
[ $# -le 64 ] || fail usage 2 "at most 64 addresses at once"
# Byte-level screening first: afterwards every argument is one line of
# [0-9A-Fa-f:.], so nothing below can be confused by spaces, newlines, option
# dashes or shell syntax. 45 bytes is the longest IPv6 text form.
i=$SKIP
for a in "$@"; do
	i=$((i + 1))
	[ "${#a}" -le 45 ] || fail bad_address 2 "argument $i is not an IPv4 or IPv6 address"
	case $a in
	'' | *[!0123456789abcdefABCDEF:.]*) fail bad_address 2 "argument $i is not an IPv4 or IPv6 address" ;;
	esac
	# Then strictly, before the config or the firewall is read (the awk
	# that parses them checks again).
	is_v4 "$a" || is_v6 "$a" || fail bad_address 2 "argument $i is not an IPv4 or IPv6 address"
done
ADDRS=$*

load_config "$XS"
lock

BLOCKER=
BLOCKER_START=0
if [ "$OVERRIDE" = 1 ] && [ -n "$BLFILE" ] && [ -e "$BLFILE" ]; then
	[ -w "$BLFILE" ] || fail blacklist_unreadable 3 "blacklist $BLFILE is not writable"
	find_blocker
fi

run_engine unban -v addrs="$ADDRS" -v override="$OVERRIDE" -v blocker_start="$BLOCKER_START"
if [ "$APPLIED" = 0 ]; then
	engine verify -v addrs="$ADDRS" -v errcode=remove_failed \
		-v errmsg="the $BACKEND firewall did not take the change (it kept changing meanwhile)"
	digest
	cat "$W/out"
	exit 5
fi
if [ "$BLLINES" -gt 0 ] && ! rewrite_blacklist; then
	engine verify -v addrs="$ADDRS" -v errcode=blacklist_write_failed \
		-v errmsg="cannot rewrite blacklist $BLFILE"
	digest
	cat "$W/out"
	exit 5
fi
# exec: nothing is left for the EXIT trap to do (the blocker runs), and it
# saves a fork.
digest
exec cat "$W/out"
