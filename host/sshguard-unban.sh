#!/bin/sh
# sshguard-unban.sh ADDRESS...
#
# Removes exactly the given IPv4/IPv6 addresses from sshguard's blocks on this
# host and prints one JSON object (shared/hostreport.Unban) on stdout:
#   {"host":"web-1","backend":"nft-sets","results":[{"address":"192.0.2.12",
#    "was_blocked":true,"removed":["192.0.2.12"],"blacklist_removed":false}]}
# An address counts as blocked when a blocked entry contains it: the address
# itself, or a prefix such as 192.0.2.0/24 when sshguard blocks subnets; every
# such entry is removed, and the blacklist line whose 4th field is that address.
#
# It runs as root through SSM Run Command and its arguments come, in principle,
# from an attacker: each one is checked byte by byte before anything else runs,
# never evaluated, and only canonical text re-derived from parsed addresses
# ever reaches a firewall command. It never restarts sshguard, never flushes,
# and touches nothing but the entries that contain the given addresses.
#
# Exit status (with a JSON error object {"host","error","code"} unless 0):
#   0  ran, even if nothing was blocked
#   2  bad input: usage, bad_address
#   3  state cannot be read: firewall_unreadable, blacklist_unreadable
#   4  sshguard config missing or not understood: no_config, bad_config,
#      unsupported_backend
#   5  a change failed: remove_failed, blacklist_write_failed (the object then
#      also has "results" saying what was done)
# Environment: SSHGUARD_CONF, the sshguard config to read
# (default /etc/sshguard/sshguard.conf).

# fail CODE STATUS MESSAGE: print the JSON error object and exit.
fail() {
	printf '{"host":%s,"backend":%s,"error":%s,"code":%s%s}\n' \
		"$(json "$HOST")" "$(json "$BACKEND")" "$(json "$3")" "$(json "$1")" \
		"${FAIL_RESULTS:-}"
	exit "$2"
}

# >>> common: this block is identical in sshguard-unban.sh and
# sshguard-report.sh (each must stand alone inside an SSM document; a test
# keeps the copies equal).
set -u
LC_ALL=C # byte semantics: "１" (fullwidth) is not a digit, ranges are ASCII
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 077

CONF=${SSHGUARD_CONF:-/etc/sshguard/sshguard.conf}
HOST=$(uname -n 2>/dev/null) || HOST=
BACKEND=
BLFILE=
TMPD=
trap '[ -z "$TMPD" ] || rm -rf "$TMPD"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# AWKLIB parses and prints addresses. Addresses are handled as bit strings
# ("0101…", 32 or 128 characters): a prefix test is then a substring test and
# a range test a string comparison, with nothing beyond POSIX awk (mawk on
# Debian, gawk on Amazon Linux, busybox).
AWKLIB='
BEGIN {
	ZEROS = "0000000000000000000000000000000000000000000000000000000000000000"
	ZEROS = ZEROS ZEROS
	ONES = "1111111111111111111111111111111111111111111111111111111111111111"
	ONES = ONES ONES
	HEX = "0123456789abcdef"
	# Lookup tables: a byte to its 8 bits and back, a hex digit to 4 bits.
	for (i = 0; i < 256; i++) { B8[i] = num2bits(i, 8); N8[B8[i]] = i }
	for (i = 0; i < 16; i++) H4[substr(HEX, i + 1, 1)] = substr(B8[i], 5)
}
function num2bits(v, w,    out) {
	out = ""
	while (w-- > 0) { out = (v % 2) out; v = int(v / 2) }
	return out
}
# bits4(s): the 32 bits of a strict dotted quad (no leading zeros, which some
# tools read as octal), "" if s is not one.
function bits4(s,    p, n, i, out) {
	if (s !~ /^[0123456789.]+$/) return ""
	n = split(s, p, /[.]/)
	if (n != 4) return ""
	out = ""
	for (i = 1; i <= 4; i++) {
		if (p[i] !~ /^(0|[123456789][0123456789]?[0123456789]?)$/) return ""
		if (p[i] + 0 > 255) return ""
		out = out B8[p[i] + 0]
	}
	return out
}
# bits6(s): the 128 bits of an IPv6 address in any RFC 4291 text form ("::",
# leading zeros, upper case, dotted-quad tail), "" if s is not one.
function bits6(s,    v4, i, dbl, head, tail, hn, tn, hp, tp, g, ng, k, out) {
	s = tolower(s)
	if (s !~ /^[0123456789abcdef:.]+$/ || index(s, ":") == 0) return ""
	v4 = ""
	if (index(s, ".")) {
		for (i = length(s); substr(s, i, 1) != ":"; i--) ;
		v4 = bits4(substr(s, i + 1))
		if (v4 == "") return ""
		s = substr(s, 1, i) "0:0"
	}
	ng = 0
	dbl = index(s, "::")
	if (dbl) {
		if (index(substr(s, dbl + 1), "::")) return ""
		head = substr(s, 1, dbl - 1)
		tail = substr(s, dbl + 2)
		hn = head == "" ? 0 : split(head, hp, ":")
		tn = tail == "" ? 0 : split(tail, tp, ":")
		if (hn + tn > 7) return ""
		for (k = 1; k <= hn; k++) g[++ng] = hp[k]
		for (k = hn + tn; k < 8; k++) g[++ng] = "0"
		for (k = 1; k <= tn; k++) g[++ng] = tp[k]
	} else {
		if (split(s, hp, ":") != 8) return ""
		for (k = 1; k <= 8; k++) g[++ng] = hp[k]
	}
	out = ""
	for (k = 1; k <= 8; k++) {
		if (g[k] !~ /^[0123456789abcdef][0123456789abcdef]?[0123456789abcdef]?[0123456789abcdef]?$/) return ""
		g[k] = substr("000", length(g[k])) g[k]
		out = out H4[substr(g[k], 1, 1)] H4[substr(g[k], 2, 1)] H4[substr(g[k], 3, 1)] H4[substr(g[k], 4, 1)]
	}
	if (v4 != "") out = substr(out, 1, 96) v4
	return out
}
function addrbits(fam, s) { return fam == 4 ? bits4(s) : bits6(s) }
function canon4(b) {
	return N8[substr(b, 1, 8)] "." N8[substr(b, 9, 8)] "." N8[substr(b, 17, 8)] "." N8[substr(b, 25, 8)]
}
# canon6(b): RFC 5952 text, as Go net/netip prints it (so the Lambdas can
# compare strings): lower case, no leading zeros, the first longest run of
# two or more zero groups as "::", IPv4-mapped addresses as ::ffff:a.b.c.d.
function canon6(b,    k, w, best, bestlen, cur, curlen, out) {
	if (substr(b, 1, 96) == substr(ZEROS, 1, 80) substr(ONES, 1, 16))
		return "::ffff:" canon4(substr(b, 97))
	for (k = 1; k <= 8; k++) w[k] = N8[substr(b, k * 16 - 15, 8)] * 256 + N8[substr(b, k * 16 - 7, 8)]
	best = 0; bestlen = 0; curlen = 0
	for (k = 1; k <= 8; k++) {
		if (w[k] != 0) { curlen = 0; continue }
		if (curlen++ == 0) cur = k
		if (curlen > bestlen) { best = cur; bestlen = curlen }
	}
	if (bestlen < 2) best = 0
	out = ""
	for (k = 1; k <= 8; k++) {
		if (k == best) { out = out "::"; k += bestlen - 1; continue }
		if (out != "" && substr(out, length(out)) != ":") out = out ":"
		out = out sprintf("%x", w[k])
	}
	return out
}
function canon(fam, b) { return fam == 4 ? canon4(b) : canon6(b) }
# entry(fam, raw): parses a firewall entry (address, prefix or range) into
# E_LO and E_HI, its first and last address as bit strings behind a "b" (so
# that awk compares them as strings, never as numbers), E_LEN (prefix length,
# -1 for a range) and E_TEXT, its canonical text. Returns 0 if raw is none.
function entry(fam, raw,    i, a, lo, hi, len, max) {
	max = fam == 4 ? 32 : 128
	if ((i = index(raw, "-"))) {
		lo = addrbits(fam, substr(raw, 1, i - 1))
		hi = addrbits(fam, substr(raw, i + 1))
		if (lo == "" || hi == "" || "b" lo > "b" hi) return 0
		E_LO = "b" lo; E_HI = "b" hi; E_LEN = -1
		E_TEXT = canon(fam, lo) "-" canon(fam, hi)
		return 1
	}
	len = max
	if ((i = index(raw, "/"))) {
		len = substr(raw, i + 1)
		raw = substr(raw, 1, i - 1)
		if (len !~ /^[0123456789]+$/ || len + 0 > max) return 0
		len += 0
	}
	a = addrbits(fam, raw)
	if (a == "") return 0
	lo = substr(a, 1, len) substr(ZEROS, 1, max - len)
	hi = substr(a, 1, len) substr(ONES, 1, max - len)
	E_LO = "b" lo; E_HI = "b" hi; E_LEN = len
	E_TEXT = len == max ? canon(fam, a) : canon(fam, lo) "/" len
	return 1
}
'

# json STRING: STRING as a JSON string literal.
json() {
	printf '%s' "$1" | awk '
		BEGIN { for (i = 1; i < 32; i++) ctl[sprintf("%c", i)] = sprintf("\\u%04x", i) }
		{ s = s (NR > 1 ? "\n" : "") $0 }
		END {
			out = ""
			for (i = 1; i <= length(s); i++) {
				c = substr(s, i, 1)
				if (c == "\\" || c == "\"") c = "\\" c
				else if (c in ctl) c = ctl[c]
				out = out c
			}
			printf "\"%s\"", out
		}'
}

# conf_value KEY: the value of the last KEY=VALUE line of the sshguard config,
# unquoted. sshguard sources this file; here it is only read as data.
conf_value() {
	awk -v key="$1" '
		{
			line = $0
			sub(/^[ \t]+/, "", line)
			sub(/^export[ \t]+/, "", line)
			if (substr(line, 1, length(key) + 1) != key "=") next
			v = substr(line, length(key) + 2)
			q = substr(v, 1, 1)
			if (q == "\"" || q == "\047") {
				v = substr(v, 2)
				if ((i = index(v, q))) v = substr(v, 1, i - 1)
			} else {
				sub(/[ \t]+#.*$/, "", v)
				sub(/[ \t]+$/, "", v)
			}
			val = v
		}
		END { printf "%s", val }' "$CONF"
}

# load_config sets BACKEND (nft-sets, iptables or ipset) and BLFILE (the
# blacklist file, empty when sshguard has none) from the host's own config:
# hosts differ, nothing is assumed.
load_config() {
	if [ ! -f "$CONF" ] || [ ! -r "$CONF" ]; then
		fail no_config 4 "sshguard config $CONF does not exist or is not readable"
	fi
	b=$(conf_value BACKEND) || fail no_config 4 "cannot read $CONF"
	case $b in
	'') fail bad_config 4 "BACKEND is not set in $CONF" ;;
	sshg-fw-nft-sets | */sshg-fw-nft-sets) BACKEND=nft-sets ;;
	sshg-fw-iptables | */sshg-fw-iptables) BACKEND=iptables ;;
	sshg-fw-ipset | */sshg-fw-ipset) BACKEND=ipset ;;
	*) fail unsupported_backend 4 "backend $b is not supported (nft-sets, iptables and ipset are)" ;;
	esac
	# The blacklist is -b [THRESHOLD:]FILE, as BLACKLIST_FILE or inside FLAGS
	# (which, being command-line flags, wins).
	bl=$(conf_value BLACKLIST_FILE)
	flagbl=$(conf_value FLAGS | awk '{
		for (i = 1; i <= NF; i++) {
			if ($i == "-b" && i < NF) v = $(i + 1)
			else if ($i ~ /^-b./) v = substr($i, 3)
		}
	} END { printf "%s", v }')
	[ -z "$flagbl" ] || bl=$flagbl
	BLFILE=$(printf '%s' "$bl" | sed 's/^[0-9][0-9]*://')
	case $BLFILE in
	*'$'* | *'`'*) fail bad_config 4 "blacklist file $BLFILE in $CONF uses shell expansion, which is not supported" ;;
	'' | /*) ;;
	*) fail bad_config 4 "blacklist file $BLFILE in $CONF is not an absolute path" ;;
	esac
}

# need CMD: fail unless the firewall tool CMD is installed.
need() {
	command -v "$1" >/dev/null 2>&1 ||
		fail firewall_unreadable 3 "$1 is not installed but sshguard's $BACKEND backend needs it"
}

# list_entries FILE: writes every sshguard block as a "FAMILY ENTRY" line
# (canonical text) to FILE. A missing table, chain or set means sshguard is not
# running or uses another firewall: that is an error, not "nothing blocked".
list_entries() {
	dest=$1
	: >"$TMPD/raw"
	: >"$dest"
	for fam in 4 6; do
		case $BACKEND in
		nft-sets)
			need nft
			t=ip
			[ "$fam" = 4 ] || t=ip6
			what="nft set $t sshguard attackers"
			set -- nft -n list set "$t" sshguard attackers
			# elements = { 192.0.2.1, 192.0.2.0/24,\n 192.0.2.7-192.0.2.9 }
			# shellcheck disable=SC2016 # an awk program
			parse='
				/elements = [{]/ { on = 1; sub(/.*elements = [{]/, "") }
				on {
					last = sub(/[}].*/, "")
					n = split($0, p, ",")
					for (i = 1; i <= n; i++) if (split(p[i], w, " ") > 0) print fam, w[1]
					if (last) on = 0
				}'
			;;
		iptables)
			t=iptables
			[ "$fam" = 4 ] || t=ip6tables
			need "$t"
			what="$t chain sshguard"
			set -- "$t" -w -S sshguard
			# Only rules sshguard itself inserts: -A sshguard -s 192.0.2.1/32 -j DROP
			# shellcheck disable=SC2016 # an awk program
			parse='NF == 6 && $1 == "-A" && $2 == "sshguard" && $3 == "-s" && $5 == "-j" && $6 == "DROP" { print fam, $4 }'
			;;
		ipset)
			need ipset
			what="ipset set sshguard$fam"
			set -- ipset save "sshguard$fam"
			# shellcheck disable=SC2016 # an awk program
			parse='$1 == "add" && $2 == set { print fam, $3 }'
			;;
		esac
		"$@" >"$TMPD/out" 2>"$TMPD/err" ||
			fail firewall_unreadable 3 "cannot read $what (is sshguard running with the $BACKEND backend?): $(head -n 1 "$TMPD/err")"
		awk -v fam="$fam" -v set="sshguard$fam" "$parse" "$TMPD/out" >>"$TMPD/raw" ||
			fail firewall_unreadable 3 "cannot parse $what"
	done
	awk -v out="$dest" "$AWKLIB"'
		!entry($1, $2) { print "unexpected entry \"" $2 "\""; bad = 1; exit }
		!seen[$1 " " E_TEXT]++ { print $1, E_TEXT > out }
		END { exit bad }' "$TMPD/raw" >"$TMPD/err" ||
		fail firewall_unreadable 3 "cannot parse the $BACKEND firewall: $(head -n 1 "$TMPD/err")"
}

# blacklisted FILE: writes the addresses of the blacklist file (lines
# "EPOCH|SERVICE|FAMILY|ADDRESS") as "FAMILY ADDRESS" lines to FILE.
blacklisted() {
	: >"$1"
	[ -n "$BLFILE" ] && [ -e "$BLFILE" ] || return 0
	cat "$BLFILE" >"$TMPD/bl" 2>"$TMPD/err" ||
		fail blacklist_unreadable 3 "cannot read blacklist $BLFILE: $(head -n 1 "$TMPD/err")"
	awk -F '|' "$AWKLIB"'{
		a = $4
		gsub(/[ \t\r]/, "", a)
		if ((b = bits4(a)) != "") print 4, canon4(b)
		else if ((b = bits6(a)) != "") print 6, canon6(b)
	}' "$TMPD/bl" >"$1"
}
# <<< common

[ $# -ge 1 ] || fail usage 2 "usage: sshguard-unban.sh ADDRESS..."
[ $# -le 64 ] || fail usage 2 "at most 64 addresses at once"
# Byte-level screening first: afterwards every argument is one line of
# [0-9A-Fa-f:.], so nothing below can be confused by spaces, newlines, option
# dashes or shell syntax. 45 bytes is the longest IPv6 text form.
i=0
for a in "$@"; do
	i=$((i + 1))
	[ "${#a}" -le 45 ] || fail bad_address 2 "argument $i is not an IPv4 or IPv6 address"
	case $a in
	'' | *[!0123456789abcdefABCDEF:.]*) fail bad_address 2 "argument $i is not an IPv4 or IPv6 address" ;;
	esac
done

TMPD=$(mktemp -d) || fail tmp_failed 3 "cannot create a temporary directory"

# Parse every argument; any failure stops here, before the config or the
# firewall is even read. Duplicates (2001:db8::1 and 2001:DB8:0::1) collapse.
printf '%s\n' "$@" | awk -v bad="$TMPD/bad" "$AWKLIB"'{
	if ((b = bits4($0)) != "") a = "4 " canon4(b)
	else if ((b = bits6($0)) != "") a = "6 " canon6(b)
	else { print NR > bad; exit 1 }
	if (!seen[a]++) print a
}' >"$TMPD/addrs" ||
	fail bad_address 2 "argument $(cat "$TMPD/bad") is not an IPv4 or IPv6 address"

load_config

# One unban at a time on this host: "removed" compares the firewall before and
# after, so two overlapping runs would both claim the same removal. The lock is
# taken on the config file (one per host, always there, never written by
# sshguard). flock(1) comes with util-linux; without it the only risk is an
# over-report, so the script runs unlocked.
if command -v flock >/dev/null 2>&1; then
	exec 9<"$CONF"
	flock -w 60 9 || fail lock_timeout 3 "another unban has been running on this host for 60 s"
fi
list_entries "$TMPD/before"
blacklisted "$TMPD/blacklisted"

# The plan: for each address, every entry that contains it (same family,
# first <= address <= last), as "ADDRESS FAMILY ENTRY" lines.
awk "$AWKLIB"'
	FILENAME == ARGV[1] { n++; fam[n] = $1; txt[n] = $2; bits[n] = "b" addrbits($1, $2); next }
	{
		entry($1, $2)
		for (i = 1; i <= n; i++)
			if (fam[i] == $1 && E_LO <= bits[i] && bits[i] <= E_HI) print txt[i], $1, E_TEXT
	}' "$TMPD/addrs" "$TMPD/before" >"$TMPD/plan"

# Blacklist lines to drop: the 4th field is one of the addresses. Computed now,
# so an unreadable or unwritable blacklist stops us before any change.
bl_filter() {
	: >"$TMPD/bl.gone"
	awk -F '|' -v gone="$TMPD/bl.gone" "$AWKLIB"'
		FILENAME == ARGV[1] { want[$0] = 1; next }
		{
			a = $4
			gsub(/[ \t\r]/, "", a)
			k = ""
			if ((b = bits4(a)) != "") k = "4 " canon4(b)
			else if ((b = bits6(a)) != "") k = "6 " canon6(b)
			if (k in want) { print k > gone; next }
			print
		}' "$TMPD/addrs" "$TMPD/bl" >"$TMPD/bl.new"
}
: >"$TMPD/bl.gone"
if [ -s "$TMPD/blacklisted" ]; then
	bl_filter
	if [ -s "$TMPD/bl.gone" ] && [ ! -w "$BLFILE" ]; then
		fail blacklist_unreadable 3 "blacklist $BLFILE is not writable"
	fi
fi

# Remove each planned entry once. Failures are not fatal here: the firewall is
# read again afterwards, and what is still there decides.
awk '!seen[$2 " " $3]++ { print $2, $3 }' "$TMPD/plan" | while read -r fam e; do
	case $BACKEND in
	nft-sets)
		t=ip
		[ "$fam" = 4 ] || t=ip6
		nft delete element "$t" sshguard attackers "{ $e }" >/dev/null 2>&1
		;;
	iptables)
		t=iptables
		[ "$fam" = 4 ] || t=ip6tables
		case $e in
		*/*) spec=$e ;;
		*) spec=$e/$((fam == 4 ? 32 : 128)) ;;
		esac
		# -D removes one copy per call; sshguard may have inserted several.
		n=0
		while [ $n -lt 100 ] && "$t" -w -D sshguard -s "$spec" -j DROP >/dev/null 2>&1; do
			n=$((n + 1))
		done
		;;
	ipset)
		ipset -q del "sshguard$fam" "$e" >/dev/null 2>&1
		;;
	esac
done

list_entries "$TMPD/after"

# The blacklist is rewritten in place (same inode): sshguard keeps it open with
# O_APPEND, and a replaced file would swallow its next appends. Write only if
# it did not change since we filtered it, else filter again.
blacklist_error=
if [ -s "$TMPD/bl.gone" ]; then
	tries=0
	while :; do
		if [ "$(cksum <"$BLFILE")" = "$(cksum <"$TMPD/bl")" ]; then
			cat "$TMPD/bl.new" >"$BLFILE" || blacklist_error="cannot rewrite blacklist $BLFILE"
			break
		fi
		tries=$((tries + 1))
		if [ $tries -ge 5 ]; then
			blacklist_error="blacklist $BLFILE kept changing; not rewritten"
			break
		fi
		if ! cat "$BLFILE" >"$TMPD/bl"; then
			blacklist_error="cannot read blacklist $BLFILE"
			break
		fi
		bl_filter
	done
	[ -z "$blacklist_error" ] || : >"$TMPD/bl.gone"
fi

# An entry counts as removed when it was there before and is gone now.
results=$(awk '
	FILENAME == ARGV[1] { n++; addr[n] = $2; next }
	FILENAME == ARGV[2] { after[$1 " " $2] = 1; next }
	FILENAME == ARGV[3] { blocked[$1] = 1; k = $2 " " $3
		if (k in after) { failed = 1; next }
		removed[$1] = removed[$1] (removed[$1] == "" ? "" : ",") "\"" $3 "\""; next }
	FILENAME == ARGV[4] { blgone[$2] = 1 }
	END {
		printf "\"results\":["
		for (i = 1; i <= n; i++) {
			a = addr[i]
			printf "%s{\"address\":\"%s\",\"was_blocked\":%s,\"removed\":[%s],\"blacklist_removed\":%s}",
				(i > 1 ? "," : ""), a, (a in blocked ? "true" : "false"),
				removed[a], (a in blgone ? "true" : "false")
		}
		printf "]"
		exit failed
	}' "$TMPD/addrs" "$TMPD/after" "$TMPD/plan" "$TMPD/bl.gone")
failed=$?

FAIL_RESULTS=,$results
[ $failed -eq 0 ] || fail remove_failed 5 "some entries are still in the $BACKEND firewall after removal"
[ -z "$blacklist_error" ] || fail blacklist_write_failed 5 "$blacklist_error"
printf '{"host":%s,"backend":%s,%s}\n' "$(json "$HOST")" "$(json "$BACKEND")" "$results"
