#!/bin/sh
# sshguard-report.sh
#
# Prints every block sshguard holds in this host's firewall as one JSON object
# (shared/hostreport.Report) on stdout:
#   {"host":"web-1","time":"2025-11-24T10:00:00Z","backend":"nft-sets",
#    "entries":[{"entry":"192.0.2.0/24","family":4,"blacklisted":true}]}
# An entry is an address, or a prefix when sshguard blocks subnets. It is
# "blacklisted" when an address of sshguard's blacklist file lies in it:
# sshguard then blocks it again whenever it starts. Read-only: it changes
# nothing.
#
# Exit status (with a JSON error object {"host","time","error","code"} unless 0):
#   0  ran
#   2  bad input: usage (it takes no arguments)
#   3  state cannot be read: firewall_unreadable, blacklist_unreadable
#   4  sshguard config missing or not understood: no_config, bad_config,
#      unsupported_backend
# Environment: SSHGUARD_CONF, the sshguard config to read
# (default /etc/sshguard/sshguard.conf).

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# fail CODE STATUS MESSAGE: print the JSON error object and exit.
fail() {
	printf '{"host":%s,"time":%s,"backend":%s,"error":%s,"code":%s}\n' \
		"$(json "$HOST")" "$(json "$NOW")" "$(json "$BACKEND")" "$(json "$3")" "$(json "$1")"
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

[ $# -eq 0 ] || fail usage 2 "usage: sshguard-report.sh (it takes no arguments)"
TMPD=$(mktemp -d) || fail tmp_failed 3 "cannot create a temporary directory"
load_config
list_entries "$TMPD/entries"
blacklisted "$TMPD/blacklisted"

# Every prefix of every blacklisted address is indexed, so an address or prefix
# entry is one lookup; ranges (never made by sshguard) are compared one by one.
entries=$(awk "$AWKLIB"'
	FILENAME == ARGV[1] {
		n++; fam[n] = $1; bits[n] = addrbits($1, $2)
		for (l = 0; l <= length(bits[n]); l++) pre[$1 "/" substr(bits[n], 1, l)] = 1
		next
	}
	{
		entry($1, $2)
		bl = 0
		if (E_LEN >= 0) bl = ($1 "/" substr(E_LO, 2, E_LEN)) in pre
		else for (i = 1; i <= n; i++)
			if (fam[i] == $1 && E_LO <= "b" bits[i] && "b" bits[i] <= E_HI) bl = 1
		printf "%s{\"entry\":\"%s\",\"family\":%s,\"blacklisted\":%s}",
			(c++ ? "," : ""), E_TEXT, $1, (bl ? "true" : "false")
	}' "$TMPD/blacklisted" "$TMPD/entries")

printf '{"host":%s,"time":%s,"backend":%s,"entries":[%s]}\n' \
	"$(json "$HOST")" "$(json "$NOW")" "$(json "$BACKEND")" "$entries"
