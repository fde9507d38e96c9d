# common.sh: the part sshguard-unban.sh and sshguard-report.sh share. It is
# not run on its own: host.Assemble puts it into each script at its
# "@include common.sh" line, for the SSM documents (at synth time) and for
# the tests and the local mode alike, so there is one copy to maintain.
#
# One run lists sshguard's firewall objects once, and one awk program
# (ENGINE) reads that listing once: it streams the report's entries as it
# reads them, garbage-collects exceptions, plans the unban as one batch for
# the backend's own batch tool (nft -f, iptables-restore, ipset restore: the
# kernel takes it whole, ipset line by line), and writes the report of the
# state after the batch. A batch the kernel refused is planned again from a
# fresh listing; the last resort reads the firewall again and reports what
# it finds. Everything before the listing is shell builtins: each process
# costs about a millisecond, as much as awk needs for a thousand entries.
set -u
LC_ALL=C # byte semantics: "１" (fullwidth) is not a digit, ranges are ASCII
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 077

CONF=${SSHGUARD_CONF:-/etc/sshguard/sshguard.conf}
# Work files and the ipset backend's exception records; on tmpfs, since
# sshguard's firewall state does not survive a reboot either.
STATE=${SSHGUARD_UNBAN_STATE:-/run/sshguard-unban}
W=$STATE/work
HOST=
if ! read -r HOST </proc/sys/kernel/hostname 2>/dev/null; then
	HOST=$(uname -n 2>/dev/null) || HOST=
fi
BACKEND=
BLFILE=
SETTINGS=
STOPPED= # sshg-blocker pid while it is stopped for a blacklist rewrite
trap '[ -z "$STOPPED" ] || kill -CONT "$STOPPED" 2>/dev/null' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# is_v4 ADDRESS: a strict dotted quad (no leading zeros, which some tools
# read as octal).
is_v4() {
	case $1 in '' | *[!0123456789.]* | .* | *. | *..*) return 1 ;; esac
	set -f
	v4o=$IFS
	IFS=.
	# shellcheck disable=SC2086 # split on the dots
	set -- $1
	IFS=$v4o
	set +f
	[ $# -eq 4 ] || return 1
	for v4p; do
		case $v4p in [0-9] | [1-9][0-9] | 1[0-9][0-9] | 2[0-4][0-9] | 25[0-5]) ;; *) return 1 ;; esac
	done
}

# is_v6 ADDRESS: an IPv6 address in any RFC 4291 text form ("::", leading
# zeros, either case, a dotted-quad tail).
is_v6() {
	v6a=$1
	case $v6a in *:*) ;; *) return 1 ;; esac
	case $v6a in *[!0123456789abcdefABCDEF:.]* | *:::* | *::*::* | :[!:]* | *[!:]: | :) return 1 ;; esac
	case $v6a in
	*.*)
		is_v4 "${v6a##*:}" || return 1
		v6a=${v6a%:*}:0:0
		;;
	esac
	v6dbl=0
	case $v6a in *::*) v6dbl=1 ;; esac
	set -f
	v6o=$IFS
	IFS=:
	# shellcheck disable=SC2086 # split on the colons
	set -- $v6a
	IFS=$v6o
	set +f
	v6n=0
	for v6g; do
		[ -n "$v6g" ] || continue
		case $v6g in *[!0123456789abcdefABCDEF]*) return 1 ;; esac
		[ "${#v6g}" -le 4 ] || return 1
		v6n=$((v6n + 1))
	done
	if [ $v6dbl = 1 ]; then [ $v6n -le 7 ]; else [ $v6n -eq 8 ]; fi
}

# load_config reads the host's sshguard.conf as data (sshguard sources it;
# here nothing in it is ever run: the last KEY=VALUE line of a key counts,
# "export", quotes and trailing comments understood) and sets BACKEND,
# BLFILE and SETTINGS ("BLOCK_TIME DETECTION_TIME THRESHOLD IPV4_SUBNET
# IPV6_SUBNET BLACKLIST_THRESHOLD WHITELIST EXCEPTION_SECONDS"; settings not
# set are sshguard's own defaults, values not understood 0). $1 is the
# exception lifetime asked for, "0" for the host default (30 x BLOCK_TIME).
load_config() {
	if [ ! -f "$CONF" ] || [ ! -r "$CONF" ]; then
		fail no_config 4 "sshguard config $CONF does not exist or is not readable"
	fi
	xsreq=$1
	c_BACKEND='' c_BLACKLIST_FILE='' c_FLAGS='' c_BLOCK_TIME='' c_DETECTION_TIME=''
	c_THRESHOLD='' c_IPV4_SUBNET='' c_IPV6_SUBNET='' c_WHITELIST_FILE='' c_WHITELIST_ARG=''
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line#"${line%%[! 	]*}"}
		case $line in export[\ \	]*)
			line=${line#export}
			line=${line#"${line%%[! 	]*}"}
			;;
		esac
		case $line in [A-Za-z_]*=*) ;; *) continue ;; esac
		k=${line%%=*}
		case $k in *[!A-Za-z0-9_]*) continue ;; esac
		v=${line#*=}
		case $v in
		\"*) v=${v#\"} v=${v%%\"*} ;;
		\'*) v=${v#\'} v=${v%%\'*} ;;
		*)
			v=${v%%[ 	]#*}
			v=${v%"${v##*[! 	]}"}
			;;
		esac
		case $k in
		BACKEND) c_BACKEND=$v ;;
		BLACKLIST_FILE) c_BLACKLIST_FILE=$v ;;
		FLAGS) c_FLAGS=$v ;;
		BLOCK_TIME) c_BLOCK_TIME=$v ;;
		DETECTION_TIME) c_DETECTION_TIME=$v ;;
		THRESHOLD) c_THRESHOLD=$v ;;
		IPV4_SUBNET) c_IPV4_SUBNET=$v ;;
		IPV6_SUBNET) c_IPV6_SUBNET=$v ;;
		WHITELIST_FILE) c_WHITELIST_FILE=$v ;;
		WHITELIST_ARG) c_WHITELIST_ARG=$v ;;
		esac
	done <"$CONF" || fail no_config 4 "cannot read $CONF"
	case ${c_BACKEND##*/} in
	'') fail bad_config 4 "BACKEND is not set in $CONF" ;;
	sshg-fw-nft-sets) BACKEND=nft-sets ;;
	sshg-fw-iptables) BACKEND=iptables ;;
	sshg-fw-ipset) BACKEND=ipset ;;
	*) fail unsupported_backend 4 "backend $c_BACKEND is not supported (nft-sets, iptables and ipset are)" ;;
	esac
	# The blacklist is -b THRESHOLD:FILE, as BLACKLIST_FILE or inside FLAGS
	# (which, being command-line flags, wins).
	bl=$c_BLACKLIST_FILE
	set -f
	# shellcheck disable=SC2086 # the flags, word by word
	set -- $c_FLAGS
	set +f
	while [ $# -gt 0 ]; do
		case $1 in
		-b) [ $# -lt 2 ] || bl=$2 ;;
		-b?*) bl=${1#-b} ;;
		esac
		shift
	done
	blth=0
	case $bl in
	[0-9]*:*)
		blth=${bl%%:*}
		case $blth in *[!0-9]*) blth=0 ;; *) bl=${bl#*:} ;; esac
		;;
	esac
	case $bl in
	*'$'* | *'`'*) fail bad_config 4 "blacklist file $bl in $CONF uses shell expansion, which is not supported" ;;
	*[![:print:]]* | *\\*) fail bad_config 4 "blacklist file name in $CONF has control characters or backslashes" ;;
	'' | /*) ;;
	*) fail bad_config 4 "blacklist file $bl in $CONF is not an absolute path" ;;
	esac
	BLFILE=$bl
	[ -n "$BLFILE" ] || blth=0
	if [ -n "$BLFILE" ] && [ -e "$BLFILE" ] && { [ ! -f "$BLFILE" ] || [ ! -r "$BLFILE" ]; }; then
		fail blacklist_unreadable 3 "cannot read blacklist $BLFILE"
	fi
	num "$c_BLOCK_TIME" 120
	bt=$N
	if [ "$xsreq" != 0 ]; then
		xs=$xsreq
	else
		# The default lifetime: 30 x BLOCK_TIME, within bounds.
		xs=$((bt * 30))
		[ "$xs" -gt 0 ] || xs=3600
		[ "$xs" -ge 10 ] || xs=10
		[ "$xs" -le 86400 ] || xs=86400
	fi
	wl=0
	[ -z "$c_WHITELIST_FILE$c_WHITELIST_ARG" ] || wl=1
	SETTINGS=$bt
	for kv in "$c_DETECTION_TIME 1800" "$c_THRESHOLD 30" "$c_IPV4_SUBNET 32" "$c_IPV6_SUBNET 128"; do
		num "${kv% *}" "${kv##* }"
		SETTINGS="$SETTINGS $N"
	done
	SETTINGS="$SETTINGS $blth $wl $xs"
}

# num VALUE DEFAULT sets N to a setting as a plain decimal number (what
# sshguard's strtol reads): unset is sshguard's default, anything else 0
# ("not understood").
num() {
	N=$1
	case $N in
	'') N=$2 ;;
	*[!0-9]*) N=0 ;;
	*)
		while :; do case $N in 0?*) N=${N#0} ;; *) break ;; esac; done
		[ "${#N}" -lt 10 ] || N=0
		;;
	esac
}

AWKLIB='
# libinit builds the lookup tables on first use (most runs parse few
# addresses).
function libinit(    i, q) {
	LIBOK = 1
	ZEROS = "0000000000000000000000000000000000000000000000000000000000000000"
	ZEROS = ZEROS ZEROS
	ONES = "1111111111111111111111111111111111111111111111111111111111111111"
	ONES = ONES ONES
	HEX = "0123456789abcdef"
	# Lookup tables: a hex digit to its 4 bits, a byte to its 8 bits and
	# back (from the 16 nibbles, not bit by bit: this runs in every run).
	split("0000 0001 0010 0011 0100 0101 0110 0111 1000 1001 1010 1011 1100 1101 1110 1111", q, " ")
	for (i = 0; i < 16; i++) H4[substr(HEX, i + 1, 1)] = q[i + 1]
	for (i = 0; i < 256; i++) { B8[i] = q[int(i / 16) + 1] q[i % 16 + 1]; N8[B8[i]] = i }
}
# bits4(s): the 32 bits of a strict dotted quad (no leading zeros, which some
# tools read as octal), "" if s is not one.
function bits4(s,    p, n, i, out) {
	if (!LIBOK) libinit()
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
	if (!LIBOK) libinit()
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
	if (!LIBOK) libinit()
	return N8[substr(b, 1, 8)] "." N8[substr(b, 9, 8)] "." N8[substr(b, 17, 8)] "." N8[substr(b, 25, 8)]
}
# canon6(b): RFC 5952 text, as Go net/netip prints it (so the Lambdas can
# compare strings): lower case, no leading zeros, the first longest run of
# two or more zero groups as "::", IPv4-mapped addresses as ::ffff:a.b.c.d.
function canon6(b,    k, w, best, bestlen, cur, curlen, out) {
	if (!LIBOK) libinit()
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
# prefix(fam, b, len): the canonical text of the prefix of length len that
# contains the address with bits b ("192.0.2.0/24"; the address itself when
# len is the full length).
function prefix(fam, b, len,    max) {
	if (!LIBOK) libinit()
	max = fam == 4 ? 32 : 128
	if (len >= max) return canon(fam, b)
	return canon(fam, substr(b, 1, len) substr(ZEROS, 1, max - len)) "/" len
}
# entry(fam, raw): parses a firewall entry (address, prefix or range) into
# E_LO and E_HI, its first and last address as bit strings behind a "b" (so
# that awk compares them as strings, never as numbers), E_LEN (prefix length,
# -1 for a range) and E_TEXT, its canonical text. Returns 0 if raw is none.
function entry(fam, raw,    i, a, lo, hi, len, max) {
	if (!LIBOK) libinit()
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
# jstr(s): s as a JSON string literal.
function jstr(s,    out, i, c) {
	if (s !~ /[\\"\001-\037]/) return "\"" s "\""
	if (!JCTLOK) {
		JCTLOK = 1
		for (i = 1; i < 32; i++) JCTL[sprintf("%c", i)] = sprintf("\\u%04x", i)
	}
	out = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "\\" || c == "\"") c = "\\" c
		else if (c in JCTL) c = JCTL[c]
		out = out c
	}
	return "\"" out "\""
}
# rfc3339(t): epoch seconds t as "YYYY-MM-DDTHH:MM:SSZ" (days to civil date
# after H. Hinnant; t >= 0).
function rfc3339(t,    z, era, doe, yoe, y, doy, mp, d, m, s) {
	s = t % 86400
	z = (t - s) / 86400 + 719468
	era = int(z / 146097)
	doe = z - era * 146097
	yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
	y = yoe + era * 400
	doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
	mp = int((5 * doy + 2) / 153)
	d = doy - int((153 * mp + 2) / 5) + 1
	m = mp < 10 ? mp + 3 : mp - 9
	if (m <= 2) y++
	return sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, int(s / 3600), int(s % 3600 / 60), s % 60)
}
# epoch(s): the inverse of rfc3339, -1 if s is not in that form.
function epoch(s,    y, m, d, era, yoe, doy, doe) {
	if (s !~ /^[0123456789][0123456789][0123456789][0123456789]-[01][0123456789]-[0123][0123456789]T[012][0123456789]:[012345][0123456789]:[012345][0123456789]Z$/) return -1
	y = substr(s, 1, 4) + 0; m = substr(s, 6, 2) + 0; d = substr(s, 9, 2) + 0
	if (m <= 2) y--
	era = int(y / 400)
	yoe = y - era * 400
	doy = int((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
	doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
	return (era * 146097 + doe - 719468) * 86400 + substr(s, 12, 2) * 3600 + substr(s, 15, 2) * 60 + substr(s, 18, 2)
}
'

# json STRING: STRING as a JSON string literal (for error objects).
json() {
	printf '%s' "$1" | awk "$AWKLIB"'
		{ s = s (NR > 1 ? "\n" : "") $0 }
		END { printf "%s", jstr(s) }'
}

# lock: one run at a time on this host (an unban plans from a listing, a
# report garbage-collects exceptions: two at once would undo each other).
# The lock is the config file (one per host, always there, never written by
# sshguard); then the work directory is ours.
lock() {
	command -v flock >/dev/null 2>&1 || fail lock_unavailable 3 "flock (util-linux) is not installed"
	exec 9<"$CONF"
	flock -w 60 9 || fail lock_timeout 3 "another unban or report has held this host's lock for 60 s"
	[ -d "$W" ] || mkdir -p "$W" || fail state_unwritable 3 "cannot create $W"
}

# need CMD: fail unless the firewall tool CMD is installed.
need() {
	command -v "$1" >/dev/null 2>&1 ||
		fail firewall_unreadable 3 "$1 is not installed but sshguard's $BACKEND backend needs it"
}

# tools: fail unless the backend's firewall tools are installed.
tools() {
	case $BACKEND in
	nft-sets) need nft ;;
	iptables) need iptables && need ip6tables && need iptables-restore && need ip6tables-restore ;;
	ipset) need ipset ;;
	esac
}

# listing writes the backend's own listing of sshguard's objects to stdout,
# for the engine to read while it is written (the tool and awk run at once):
# "#sec l4" and "#sec l6" start a family ("#sec l" both, ipset: restore runs
# save commands, one process for both sets), "#fail WHAT" marks a listing
# that failed, its message in $W/err.list. A missing table, chain or set
# means sshguard is not running or uses another firewall: an error, not
# "nothing blocked".
listing() {
	: >"$W/err.list"
	case $BACKEND in
	nft-sets)
		echo '#sec l4'
		nft -n list table ip sshguard 2>>"$W/err.list" || echo '#fail nft set ip sshguard attackers'
		echo '#sec l6'
		nft -n list table ip6 sshguard 2>>"$W/err.list" || echo '#fail nft set ip6 sshguard attackers'
		;;
	iptables)
		echo '#sec l4'
		iptables -w -S sshguard 2>>"$W/err.list" || echo '#fail iptables chain sshguard'
		echo '#sec l6'
		ip6tables -w -S sshguard 2>>"$W/err.list" || echo '#fail ip6tables chain sshguard'
		;;
	ipset)
		echo '#sec l'
		printf 'save sshguard4\nsave sshguard6\n' >"$W/list"
		ipset restore <"$W/list" 2>>"$W/err.list" || echo '#fail ipset sets sshguard4 and sshguard6'
		;;
	esac
}

# ENGINE reads the blacklist (sec=bl), the ipset exception records
# (sec=state), when verifying the plan of the run before (sec=plan), and the
# listing (sec=l4 and sec=l6, read by ENGINE_TABLES; ipset sec=l). It
# writes the JSON to $W/out, the batch to $W/batch (iptables: $W/batch4 and
# $W/batch6), the plan to $W/plan, the blacklist lines to drop to
# $W/bl.drop and the ipset records to statefile, and prints "CHANGES
# BLACKLIST_LINES". mode=report collects
# garbage, mode=unban also frees addrs, mode=verify changes nothing: it
# reports the firewall as listed, with what the plan set out to do.
# shellcheck disable=SC2016 # an awk program
ENGINE='
BEGIN {
	srand(); NOW = srand() # POSIX: srand() seeds with the time of day
	split(settings, S, " ")
	XSEC = S[8]
	XSET = "unban_exceptions"
	TAG = "sshguard-unban"
	OUT = W "/out"
	n = split(addrs, a, " ")
	for (i = 1; i <= n; i++) {
		if ((b = bits4(a[i])) != "") k = "4 " canon4(b)
		else if ((b = bits6(a[i])) != "") k = "6 " canon6(b)
		else { print "argument " i " is not an IPv4 or IPv6 address" > "/dev/stderr"; BADARG = 1; exit 2 }
		if (k in AIDX) continue
		AN++; AIDX[k] = AN; AK[AN] = k; AF[AN] = substr(k, 1, 1); AT[AN] = substr(k, 3); AB[AN] = b
	}
	# The report first, its entries streamed as the listing is read.
	if (mode != "report") printf "{\"host\":%s,\"backend\":\"%s\",\"report\":", jstr(host), backend > OUT
	printf "{\"host\":%s,\"time\":\"%s\",\"backend\":\"%s\",", jstr(host), rfc3339(NOW), backend > OUT
	printf "\"settings\":{\"block_time\":%d,\"detection_time\":%d,\"threshold\":%d,\"ipv4_subnet\":%d,\"ipv6_subnet\":%d,", S[1], S[2], S[3], S[4], S[5] > OUT
	printf "\"blacklist_threshold\":%d,\"blacklist_file\":%s,\"whitelist\":%s,\"exception_seconds\":%d},\"entries\":[", S[6], jstr(blfile), (S[7] ? "true" : "false"), S[8] > OUT
	# The tails of a report entry, per family and blacklisting.
	J4F = "\",\"family\":4,\"blacklisted\":false}"; J4T = "\",\"family\":4,\"blacklisted\":true}"
	J6F = "\",\"family\":6,\"blacklisted\":false}"; J6T = "\",\"family\":6,\"blacklisted\":true}"
}
# --- ipset: the hot path, once per entry, first ---
# A line "add sshguard4 ENTRY" with the entry in the form ipset prints
# (masked prefix, inet_ntop(3) text, which is RFC 5952) is taken as printed,
# checked by one match of the whole line; anything else goes through the
# rule sec == "l" below. Each is written to the report at once, but an
# asked address: whether it goes is decided at the end. LEN4 and LEN6 are
# the last prefix lengths seen (most entries have the same one). Only the
# entries that can contain an address looked up later (CAND4 and CAND6:
# the prefixes of the asked addresses and of those with an exception
# record, at each length seen) go into ENT; the others are only written
# (ipset lists each element of a set once: there is nothing to deduplicate
# but against the entries add_entry parsed, SLOW), since 10,000 insertions
# would cost more than the rest of the line.
sec == "l" && /^add sshguard4 [0123456789]+[.][0123456789]+[.][0123456789]+[.][0123456789]+(\/[0123456789]+)?$/ {
	t = substr($0, 15)
	if ((i = index(t, "/"))) { if ((l = substr(t, i + 1)) != LEN4) { if (!(("4/" l) in HASLEN)) newlen("4", l + 0); LEN4 = l } }
	else if (!FULL["4"]) newlen("4", 32)
	if (t in CAND4) {
		k = "4 " t
		if (k in ENT) next
		ENT[k] = 0
		if (k in AIDX) { HELD[k] = 1; next }
	} else if (SLOW && (("4 " t) in ENT)) next
	printf "%s", SEP "{\"entry\":\"" t (BN && (("4 " t) in BLENT) ? J4T : J4F) > OUT
	SEP = ","
	next
}
sec == "l" && /^add sshguard6 [0123456789abcdef]*:[0123456789abcdef:]*(\/[0123456789]+)?$/ && !/[ :]0[0123456789abcdef]|:::/ {
	t = substr($0, 15)
	if ((i = index(t, "/"))) { if ((l = substr(t, i + 1)) != LEN6) { if (!(("6/" l) in HASLEN)) newlen("6", l + 0); LEN6 = l } }
	else if (!FULL["6"]) newlen("6", 128)
	if (t in CAND6) {
		k = "6 " t
		if (k in ENT) next
		ENT[k] = 0
		if (k in AIDX) { HELD[k] = 1; next }
	} else if (SLOW && (("6 " t) in ENT)) next
	printf "%s", SEP "{\"entry\":\"" t (BN && (("6 " t) in BLENT) ? J6T : J6F) > OUT
	SEP = ","
	next
}
# --- the inputs before the listing ---
sec == "bl" {
	split($0, f, "|")
	t = f[4]
	gsub(/[ \t\r]/, "", t)
	if ((b = bits4(t)) != "") { fam = 4; t = canon4(b) }
	else if ((b = bits6(t)) != "") { fam = 6; t = canon6(b) }
	else next
	k = fam " " t
	if (!(k in BL)) { BN++; BLK[BN] = k; BLB[BN] = b; BL[k] = f[1] + 0 }
	else if (f[1] + 0 > BL[k]) BL[k] = f[1] + 0
	next
}
sec == "own" {
	# "ip -o addr show scope global": the addresses of the host itself, reported so
	# that the bot can tell someone who asks for a server address.
	for (i = 1; i < NF; i++) if ($i == "inet" || $i == "inet6") {
		t = $(i + 1)
		sub(/\/.*/, "", t)
		if ((b = bits4(t)) != "") t = canon4(b)
		else if ((b = bits6(t)) != "") t = canon6(b)
		else break
		if (!has(OWN, t)) OWN = OWN (OWN == "" ? "" : " ") t
		break
	}
	next
}
sec == "state" {
	# ipset records: FAMILY ADDRESS EXPIRES ENTRY...
	if (NF < 4) next
	k = $1 " " $2
	REC[k] = $3
	RECFROM[k] = $4
	for (i = 5; i <= NF; i++) RECFROM[k] = RECFROM[k] " " $i
	next
}
sec == "plan" {
	# ADDRESS-KEY<TAB>BLOCKED_BY<TAB>BLACKLISTED<TAB>BLACKLIST_WANTED<TAB>WAS_BLOCKED
	split($0, f, "\t")
	PBY[f[1]] = f[2]; PBL[f[1]] = f[3]; PBW[f[1]] = f[4]; PWB[f[1]] = f[5]
	next
}
# --- the listing: the hot path, once per entry ---
# An entry in the form the tools print (masked prefixes, inet_ntop(3) text,
# which is RFC 5952) is taken as printed; anything else goes through
# add_entry, which parses it. Each is written to the report at once, but
# an asked address: whether it goes is decided at the end.
sec == "lst" { marker(); next }
sec == "l" {
	# "add sshguard4 ENTRY": cut, not split into fields. (The family is a
	# string: a number would be converted at every use.)
	if (substr($0, 1, 12) != "add sshguard") {
		if ($1 == "create") SETS[$2] = 1
		else if (substr($0, 1, 1) == "#") marker()
		next
	}
	fm = substr($0, 13, 1)
	t = substr($0, 15)
	if ((fm != "4" && fm != "6") || substr($0, 14, 1) != " ") next
	if (index(t, " ")) {
		if (split(t, w, " ") == 2 && w[2] == "nomatch") NOMATCH[fm " " canon_addr(fm, w[1])] = w[1]
		else add_entry(fm, t, 0)
		next
	}
	# Not in the printed form (the rules above took those).
	add_entry(fm, t, 0)
	next
}
# marker: a line of the listing function: "#sec SECTION" starts a family,
# "#fail WHAT" says a listing failed.
function marker() {
	if ($1 == "#sec") { sec = $2; CURSET = ""; CURCHAIN = ""; INEL = 0 }
	else if ($1 == "#fail") { FAILED = substr($0, 7); exit 4 }
}
# newlen: a prefix length seen for the first time; the blacklisted
# addresses are indexed by their prefixes of that length, so that marking
# an entry is one lookup.
function newlen(fam, len,    i, k, b) {
	if ((fam "/" len) in HASLEN) return
	if (len == (fam == 4 ? 32 : 128)) FULL[fam] = 1
	HASLEN[fam "/" len] = 1; NL[fam]++; LL[fam, NL[fam]] = len
	for (i = 1; i <= BN; i++)
		if (substr(BLK[i], 1, 1) == fam) BLENT[fam " " prefix(fam, BLB[i], len)] = 1
	if (backend != "ipset") return
	# The entries of this length that can matter (ipset hot path, above).
	for (i = 1; i <= AN; i++)
		if (AF[i] == fam) cand(fam, prefix(fam, AB[i], len))
	for (k in REC)
		if (substr(k, 1, 1) == fam && (b = addrbits(fam, substr(k, 3))) != "") cand(fam, prefix(fam, b, len))
}
function cand(fam, t) { if (fam == 4) CAND4[t] = 1; else CAND6[t] = 1 }
function canon_addr(fam, raw,    b) {
	sub(/\/(32|128)$/, "", raw)
	b = addrbits(fam, raw)
	return b == "" ? "" : canon(fam, b)
}
# add_entry: an entry in any other form (address, prefix or range).
function add_entry(fam, raw, pos,    k, j, bl) {
	if (!entry(fam, raw)) { BADENTRY = raw; return }
	k = fam " " E_TEXT
	if (k in ENT) { DUP[k]++; return }
	ENT[k] = pos; DUP[k] = 1; SLOW = 1
	if (E_LEN < 0) {
		RN++; RK[RN] = k; RLO[RN] = E_LO; RHI[RN] = E_HI; RF[RN] = fam
		for (j = 1; j <= BN; j++)
			if (substr(BLK[j], 1, 1) == fam && E_LO <= "b" BLB[j] && "b" BLB[j] <= E_HI) BLENT[k] = 1
	} else if (!((fam "/" E_LEN) in HASLEN)) newlen(fam, E_LEN)
	if (k in AIDX) { HELD[k] = 1; return }
	printf "%s{\"entry\":\"%s\",\"family\":%d,\"blacklisted\":%s}", SEP, E_TEXT, fam, ((k in BLENT) ? "true" : "false") > OUT
	SEP = ","
}
# add_exception: one exception as found in the firewall; c is its comment
# ("sshguard-unban until TIME from ENTRY…"), raw the iptables rule.
function add_exception(fam, t, c, raw, pos,    w, n, i) {
	if (t == "") return
	n = split(c, w, " ")
	XN++; XK[XN] = fam " " t; XRAW[XN] = raw; XPOS[XN] = pos; XUNTIL[XN] = -1; XFROM[XN] = ""
	if (n >= 5 && w[1] == TAG && w[2] == "until" && w[4] == "from") XUNTIL[XN] = epoch(w[3])
	for (i = 5; i <= n; i++) XFROM[XN] = XFROM[XN] (i > 5 ? " " : "") w[i]
}
# --- lookups ---
# containing(fam, bits): the entries that contain the address (and are not
# being deleted), as "FAMILY ENTRY" keys joined by "|", longest prefix last.
function containing(fam, b,    i, k, out, lo) {
	out = ""
	for (i = 1; i <= NL[fam]; i++) {
		k = fam " " prefix(fam, b, LL[fam, i])
		if ((k in ENT) && !(k in GONE)) out = out (out == "" ? "" : "|") k
	}
	lo = "b" b
	for (i = 1; i <= RN; i++)
		if (RF[i] == fam && RLO[i] <= lo && lo <= RHI[i] && !(RK[i] in GONE)) out = out (out == "" ? "" : "|") RK[i]
	return out
}
# texts(keys): "4 a|4 b" as "a b".
function texts(keys,    n, p, i, out) {
	n = split(keys, p, "|")
	out = ""
	for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") substr(p[i], 3)
	return out
}
function jlist(words,    n, p, i, out) {
	n = split(words, p, " ")
	out = ""
	for (i = 1; i <= n; i++) out = out (i > 1 ? "," : "") "\"" p[i] "\""
	return "[" out "]"
}
function has(words, w) { return index(" " words " ", " " w " ") > 0 }
# --- batch lines ---
function nft_t(fam) { return fam == 4 ? "ip" : "ip6" }
function emit(fam, line) {
	if (backend == "iptables") B[fam] = B[fam] line "\n"
	else B[0] = B[0] line "\n"
	CHANGES++
}
function ensure_rule(fam) {
	if (backend != "nft-sets" || RULE[fam]) return
	emit(fam, "add set " nft_t(fam) " sshguard " XSET " { type ipv" fam "_addr; flags timeout; }")
	emit(fam, "insert rule " nft_t(fam) " sshguard blacklist " nft_t(fam) " saddr @" XSET " counter accept comment \"" TAG ": addresses excepted from a containing block\"")
	RULE[fam] = 1
}
function drop_exception(x,    fam, t) {
	XDEAD[x] = 1
	# "in" first: a bare XBY[...] would create the element, and a later
	# "k in XBY" would pass its empty value here (gawk: a fatal error).
	if ((XK[x] in XBY) && XBY[XK[x]] == x) delete XBY[XK[x]]
	if (mode == "verify") return
	fam = substr(XK[x], 1, 1); t = substr(XK[x], 3)
	if (backend == "nft-sets") {
		# Expiring about now: the kernel takes it, and a delete could fail.
		if (XUNTIL[x] < 0 || XUNTIL[x] > NOW + 2) emit(fam, "delete element " nft_t(fam) " sshguard " XSET " { " t " }")
	} else if (backend == "iptables") emit(fam, "-D" XRAW[x])
	else if (XK[x] in NOMATCH) { emit(fam, "del sshguard" fam " " NOMATCH[XK[x]]); delete NOMATCH[XK[x]] }
}
function new_exception(i, from,    fam, t, until, c) {
	fam = AF[i]; t = AT[i]; until = NOW + XSEC
	c = TAG " until " rfc3339(until) " from " from
	if (backend == "nft-sets") {
		ensure_rule(fam)
		emit(fam, "add element " nft_t(fam) " sshguard " XSET " { " t " timeout " XSEC "s comment \"" c "\" }")
	} else if (backend == "iptables") {
		# At the top, above the entries it exempts from; sshguard inserts
		# new blocks above it, so a new block is never exempted.
		emit(fam, "-I sshguard 1 -s " t "/" (fam == 4 ? 32 : 128) " -m comment --comment \"" c "\" -m time --datestop " substr(rfc3339(until), 1, 19) " -j RETURN")
	} else {
		emit(fam, "add sshguard" fam " " t " nomatch")
		NOMATCH[AK[i]] = t
	}
	XN++; XK[XN] = AK[i]; XUNTIL[XN] = until; XFROM[XN] = from; XPOS[XN] = 0
	XBY[AK[i]] = XN
}
# still(k): does an entry block the address (after the batch)?
function still(k,    fam, cur, n, w, j, x) {
	fam = substr(k, 1, 1)
	cur = texts(containing(fam, addrbits(fam, substr(k, 3))))
	if (cur == "") return 0
	if (!(k in XBY) || (backend == "nft-sets" && !RULE[fam])) return 1
	x = XBY[k]
	n = split(cur, w, " ")
	for (j = 1; j <= n; j++) if (!has(XFROM[x], w[j])) return 1
	return 0
}
function jexception(x) {
	return "{\"address\":\"" substr(XK[x], 3) "\",\"entries\":" jlist(XFROM[x]) ",\"expires\":\"" rfc3339(XUNTIL[x]) "\"}"
}
# --- the work, once the listing is read ---
END {
	if (BADARG) exit 2
	if (FAILED != "") { print FAILED > "/dev/stderr"; exit 4 }
	if (BADENTRY != "") { print "unexpected entry \"" BADENTRY "\"" > "/dev/stderr"; exit 3 }
	if (backend == "nft-sets" && (!HASSET[4] || !HASSET[6])) { print "no set attackers in table " (HASSET[4] ? "ip6" : "ip") " sshguard" > "/dev/stderr"; exit 3 }
	if (backend == "ipset" && (!("sshguard4" in SETS) || !("sshguard6" in SETS))) { print "no sets sshguard4 and sshguard6" > "/dev/stderr"; exit 3 }
	# ipset: an exception is a nomatch element with its record (expiry and
	# entries, which the set cannot hold).
	if (backend == "ipset")
		for (k in NOMATCH) add_exception(substr(k, 1, 1), substr(k, 3), (k in REC) ? TAG " until " rfc3339(REC[k]) " from " RECFROM[k] : "", "", 0)
	# Garbage collection: an exception ends when its time is up, when none
	# of its entries contains the address any more (sshguard released them),
	# when an entry it was not granted against covers the address (a new
	# block; iptables: also any covering rule above it), or when the address
	# itself was blacklisted since. Of two for one address the later stays.
	for (x = 1; x <= XN; x++) {
		k = XK[x]; fam = substr(k, 1, 1)
		keep = XUNTIL[x] > NOW
		if (keep && mode != "verify") {
			if (XFROM[x] == "" || (k in BL)) keep = 0
			nold = 0; nnew = 0
			ncur = split(texts(containing(fam, addrbits(fam, substr(k, 3)))), cw, " ")
			for (j = 1; j <= ncur; j++) {
				if (has(XFROM[x], cw[j])) nold++; else nnew++
				if (backend == "iptables" && ENT[fam " " cw[j]] < XPOS[x]) nnew++
			}
			if (nold == 0 || nnew > 0) keep = 0
		}
		if (keep && (k in XBY)) {
			if (XUNTIL[XBY[k]] >= XUNTIL[x]) keep = 0
			else drop_exception(XBY[k])
		}
		if (!keep) { drop_exception(x); continue }
		XBY[k] = x
		if (mode != "verify") ensure_rule(fam)
	}
	# The unban, address by address.
	for (i = 1; i <= AN; i++) {
		k = AK[i]; fam = AF[i]
		by = mode == "verify" ? PBY[k] : containing(fam, AB[i])
		n = split(by, p, "|")
		bl = (k in BL)
		for (j = 1; j <= n; j++) if (p[j] in BLENT) bl = 1
		if (mode == "verify") bl = PBL[k] + 0
		WASBY[i] = by; BLACK[i] = bl; REMOVED[i] = ""; BLWANT[i] = 0
		# Blocked before: covered by an entry it is not exempt from.
		WASBLK[i] = mode == "verify" ? PWB[k] + 0 : still(k)
		if (mode == "verify") {
			for (j = 1; j <= n; j++) if (p[j] == k && !(k in ENT)) REMOVED[i] = AT[i]
			BLWANT[i] = PBW[k] + 0
			continue
		}
		if (bl && !override) continue
		from = ""; nfrom = 0
		for (j = 1; j <= n; j++) {
			if (p[j] != k) { from = from (nfrom++ ? " " : "") substr(p[j], 3); continue }
			# The address itself: delete it (iptables: every copy).
			if (backend == "nft-sets") emit(fam, "delete element " nft_t(fam) " sshguard attackers { " AT[i] " }")
			else if (backend == "iptables")
				for (c = 0; c < DUP[k]; c++) emit(fam, "-D sshguard -s " AT[i] "/" (fam == 4 ? 32 : 128) " -j DROP")
			else emit(fam, "del sshguard" fam " " AT[i])
			GONE[k] = 1
			REMOVED[i] = AT[i]
		}
		if (k in XBY) drop_exception(XBY[k])
		if (nfrom > 0 && nfrom <= MAXFROM) new_exception(i, from)
		if (override && (k in BL)) { BLWANT[i] = 1; BLDROP = BLDROP k "\n"; BLLINES++ }
	}
	# The rest of the report: the asked addresses that stay, the exceptions.
	for (k in HELD) if (!(k in GONE)) {
		printf "%s{\"entry\":\"%s\",\"family\":%d,\"blacklisted\":%s}", SEP, substr(k, 3), substr(k, 1, 1), ((k in BLENT) ? "true" : "false") > OUT
		SEP = ","
	}
	printf "],\"exceptions\":[" > OUT
	n = 0
	for (x = 1; x <= XN; x++) if (!XDEAD[x] && XUNTIL[x] > NOW) printf "%s%s", (n++ ? "," : ""), jexception(x) > OUT
	printf "],\"addresses\":%s}", (OWN == "" ? "[]" : jlist(OWN)) > OUT
	if (mode != "report") write_results()
	printf "\n" > OUT
	if (mode == "verify") { print 0, 0; exit }
	if (backend == "iptables") {
		for (fam = 4; fam <= 6; fam += 2) printf "%s", (B[fam] == "" ? "" : "*filter\n" B[fam] "COMMIT\n") > (W "/batch" fam)
	} else printf "%s", B[0] > (W "/batch")
	printf "" > (W "/plan")
	for (i = 1; i <= AN; i++) printf "%s\t%s\t%d\t%d\t%d\n", AK[i], WASBY[i], BLACK[i], BLWANT[i], WASBLK[i] > (W "/plan")
	printf "%s", BLDROP > (W "/bl.drop")
	if (backend == "ipset") {
		# Read already: rewritten in place.
		printf "" > statefile
		for (x = 1; x <= XN; x++)
			if (!XDEAD[x] && XUNTIL[x] > NOW) printf "%s %d %s\n", XK[x], XUNTIL[x], XFROM[x] > statefile
	}
	print CHANGES + 0, BLLINES + 0
}
function write_results(    i, k, gone) {
	printf ",\"results\":[" > OUT
	for (i = 1; i <= AN; i++) {
		k = AK[i]
		printf "%s{\"address\":\"%s\",\"was_blocked\":%s,\"blocked_by\":%s,\"removed\":%s,", (i > 1 ? "," : ""), AT[i],
			(WASBLK[i] ? "true" : "false"), jlist(texts(WASBY[i])), jlist(REMOVED[i]) > OUT
		if ((k in XBY) && !XDEAD[XBY[k]] && XUNTIL[XBY[k]] > NOW) printf "\"exception\":%s,", jexception(XBY[k]) > OUT
		gone = BLWANT[i] && !(mode == "verify" && (k in BL))
		printf "\"blacklisted\":%s,\"blacklist_removed\":%s,", (BLACK[i] ? "true" : "false"), (gone ? "true" : "false") > OUT
		if (gone && blocker_start > 0 && BL[k] >= blocker_start) printf "\"ignored_until_restart\":true," > OUT
		printf "\"still_blocked\":%s}", (still(k) ? "true" : "false") > OUT
	}
	printf "]" > OUT
	if (errcode != "") printf ",\"error\":%s,\"code\":\"%s\"", jstr(errmsg), errcode > OUT
	printf "}" > OUT
}'

# ENGINE_TABLES is the part of ENGINE only nft-sets and iptables need (the
# listing of their tables and chains): the ipset backend runs without it,
# one part less for awk to parse.
# shellcheck disable=SC2016 # an awk program
ENGINE_TABLES='
sec == "l4" || sec == "l6" {
	fm = sec == "l4" ? "4" : "6"
	if (backend == "iptables") {
		if ($1 != "-A" || $2 != "sshguard") {
			if (substr($0, 1, 1) == "#") marker()
			next
		}
		POS[fm]++
		if (NF == 6 && $3 == "-s" && $5 == "-j" && $6 == "DROP") {
			t = $4
			if (fm == "4" && substr(t, length(t) - 2) == "/32") t = substr(t, 1, length(t) - 3)
			else if (fm == "6" && substr(t, length(t) - 3) == "/128") t = substr(t, 1, length(t) - 4)
			k = fm " " t
			if (k in ENT) { DUP[k]++; next }
			if (printed(fm, t)) {
				ENT[k] = POS[fm]; DUP[k] = 1
				if ((i = index(t, "/"))) { if (!((fm "/" substr(t, i + 1)) in HASLEN)) newlen(fm, substr(t, i + 1) + 0) }
				else if (!FULL[fm]) newlen(fm, fm == "4" ? 32 : 128)
				if (k in AIDX) { HELD[k] = 1; next }
				printf "%s{\"entry\":\"%s\",\"family\":%s,\"blacklisted\":%s}", SEP, t, fm, (BN && (k in BLENT) ? "true" : "false") > OUT
				SEP = ","
			} else add_entry(fm, $4, POS[fm])
			next
		}
		if ($3 == "-s" && $NF == "RETURN" && match($0, /--comment "?sshguard-unban [^"]*"?/)) {
			c = substr($0, RSTART + 10, RLENGTH - 10)
			gsub(/"/, "", c)
			add_exception(fm, canon_addr(fm, $4), c, substr($0, 3), POS[fm])
		}
		next
	}
	# nft: the elements of set attackers (many to a line), those of our set,
	# the rules of chain blacklist.
	if (INEL && CURSET == "attackers") {
		line = $0
		if (sub(/[}].*$/, "", line)) INEL = 0
		n = split(line, p, /[, \t]+/)
		for (j = 1; j <= n; j++) {
			t = p[j]
			if (t == "") continue
			k = fm " " t
			if (k in ENT) continue
			if (printed(fm, t)) {
				ENT[k] = 0
				if ((i = index(t, "/"))) { if (!((fm "/" substr(t, i + 1)) in HASLEN)) newlen(fm, substr(t, i + 1) + 0) }
				else if (!FULL[fm]) newlen(fm, fm == "4" ? 32 : 128)
				if (k in AIDX) { HELD[k] = 1; continue }
				printf "%s{\"entry\":\"%s\",\"family\":%s,\"blacklisted\":%s}", SEP, t, fm, (BN && (k in BLENT) ? "true" : "false") > OUT
				SEP = ","
			} else add_entry(fm, t, 0)
		}
		next
	}
	nft_line(fm)
	next
}
# printed(fam, t): t is in the form the tools print (regex literals: busybox
# awk compiles a regex held in a string again at every match).
function printed(fam, t) {
	if (fam == "4") return t ~ /^[0123456789]+[.][0123456789]+[.][0123456789]+[.][0123456789]+(\/[0123456789]+)?$/
	return t ~ /^[0123456789abcdef]*:[0123456789abcdef:]*(\/[0123456789]+)?$/ && t !~ /(^|:)0[0123456789abcdef]|:::/
}
function nft_line(fam,    line, last, n, p, i, w) {
	line = $0
	if (substr(line, 1, 1) == "#") { marker(); return }
	if (line ~ /^[ \t]*set [^ \t]+ [{]/) { CURSET = $2; CURCHAIN = ""; INEL = 0; if (CURSET == "attackers") HASSET[fam] = 1; return }
	if (line ~ /^[ \t]*chain [^ \t]+ [{]/) { CURCHAIN = $2; CURSET = ""; return }
	if (CURCHAIN == "blacklist") {
		# Our accept rule counts only ahead of the drop rule of sshguard.
		if (index(line, "@" XSET " ") && line ~ / accept( |$)/) { if (!DROPRULE[fam]) RULE[fam] = 1 }
		else if (index(line, "@attackers ") && line ~ / drop( |$)/) DROPRULE[fam] = 1
		return
	}
	if (CURSET == "") return
	if (!sub(/^.*elements = [{]/, "", line) && !INEL) return
	INEL = 1
	if (CURSET == "attackers") {
		# The first line of the elements; the others take the hot path.
		last = sub(/[}].*$/, "", line)
		n = split(line, p, /[, \t]+/)
		for (i = 1; i <= n; i++) if (p[i] != "") add_entry(fam, p[i], 0)
		if (last) INEL = 0
		return
	}
	last = sub(/[}][ \t]*$/, "", line)
	if (CURSET == XSET) {
		n = split(line, p, ",")
		for (i = 1; i <= n; i++) if (split(p[i], w, " ") > 0) nft_exception(fam, w[1], p[i])
	}
	if (last) INEL = 0
}
# An exception element: ADDRESS timeout … expires … comment "sshguard-unban
# until TIME from ENTRY…". Anything else in our set is removed.
function nft_exception(fam, addr, el,    c) {
	c = ""
	if (match(el, /comment "[^"]*"/)) c = substr(el, RSTART + 9, RLENGTH - 10)
	add_exception(fam, canon_addr(fam, addr), c, "", 0)
}
'

# engine MODE [AWK-OPTION...]: lists the firewall into ENGINE (with
# ENGINE_TABLES but for ipset), with the other inputs, and sets CHANGES and
# BLLINES from what it prints.
engine() {
	m=$1
	shift
	bl=/dev/null
	[ -z "$BLFILE" ] || [ ! -e "$BLFILE" ] || bl=$BLFILE
	st=/dev/null
	[ "$BACKEND" != ipset ] || [ ! -f "$STATE/ipset-exceptions" ] || st=$STATE/ipset-exceptions
	pl=/dev/null
	[ "$m" != verify ] || pl=$W/plan
	# The host's own addresses, listed once per run.
	[ -f "$W/own" ] || ip -o addr show scope global >"$W/own" 2>/dev/null || :
	prog=$AWKLIB$ENGINE
	[ "$BACKEND" = ipset ] || prog=$prog$ENGINE_TABLES
	# What it prints goes to a file, not through $(...): one fork less.
	listing | awk -v mode="$m" -v backend="$BACKEND" -v host="$HOST" -v W="$W" \
		-v statefile="$STATE/ipset-exceptions" -v settings="$SETTINGS" -v blfile="$BLFILE" -v MAXFROM=4 \
		"$@" "$prog" sec=bl "$bl" sec=own "$W/own" sec=state "$st" sec=plan "$pl" sec=lst - >"$W/res" 2>"$W/err"
	case $? in
	0)
		CHANGES=0 BLLINES=0
		# shellcheck disable=SC2034 # BLLINES is used by sshguard-unban.sh
		read -r CHANGES BLLINES <"$W/res"
		;;
	2) fail bad_address 2 "$(head -n 1 "$W/err")" ;; # the awk checks the addresses again
	4) fail firewall_unreadable 3 "cannot read $(head -n 1 "$W/err") (is sshguard running with the $BACKEND backend?): $(head -n 1 "$W/err.list")" ;;
	*) fail firewall_unreadable 3 "cannot read the $BACKEND firewall: $(head -n 1 "$W/err")" ;;
	esac
}

# apply: runs the batch the engine wrote; 0 when the kernel took it.
apply() {
	case $BACKEND in
	nft-sets) nft -f "$W/batch" >/dev/null 2>&1 ;;
	iptables)
		if [ -s "$W/batch4" ]; then iptables-restore -w --noflush "$W/batch4" >/dev/null 2>&1 || return 1; fi
		if [ -s "$W/batch6" ]; then ip6tables-restore -w --noflush "$W/batch6" >/dev/null 2>&1 || return 1; fi
		;;
	ipset) ipset -exist restore <"$W/batch" >/dev/null 2>&1 ;;
	esac
}

# digest: the SHA-256 of the output ($W/out), on stderr. SSM keeps only
# the first 24,000 characters of stdout itself, and a long report is read
# from the S3 copy, which any tagged host could overwrite; SSM's capture of
# stderr (nothing else writes there) carries this line, and the readers
# check the copy against it (shared/ssmcmd, DigestLine).
digest() {
	command -v sha256sum >/dev/null 2>&1 || return 0
	# shellcheck disable=SC2046 # the first field is the hex digest
	set -- $(sha256sum <"$W/out")
	printf 'sshguard-unban stdout sha256 %s\n' "$1" >&2
}

# run_engine MODE [AWK-OPTION...]: list, plan, apply. A batch the kernel
# refused (sshguard changed an entry meanwhile) is planned again from a new
# listing, three times at most; APPLIED=0 when it never went in.
run_engine() {
	APPLIED=1
	tries=0
	tools
	while :; do
		engine "$@"
		[ "$CHANGES" -gt 0 ] || return 0
		apply && return 0
		tries=$((tries + 1))
		if [ $tries -ge 3 ]; then
			APPLIED=0
			return 0
		fi
	done
}
