# bootfarm node agent: shared functions (sourced by preinit and agent).
# POSIX sh + curl + jq; no Node runtime on the node. Protocol: docs/node-contract.md §3.

# The paths are variables only so that tests can run the agent outside a node.
BF_RUN=${BF_RUN:-/run/bootfarm}
BF_CONFIG=$BF_RUN/config
BF_CMDLINE=${BF_CMDLINE:-/proc/cmdline}
BF_ETC=${BF_ETC:-/etc}
BF_HOSTNAME_FILE=${BF_HOSTNAME_FILE:-/proc/sys/kernel/hostname}
BF_MOUNTS=${BF_MOUNTS:-/proc/mounts}

bf_log() { echo "bootfarm-agent: $*" >&2; }

# bootfarm.* kernel arguments; BF_MAC lower case with colons.
bf_cmdline() {
	BF_HTTP= BF_SERVER= BF_MAC= BF_NODE= BF_EXPORT= BF_NONCE=
	for x in $(cat "$BF_CMDLINE"); do
		case "$x" in
		bootfarm.http=*) BF_HTTP=${x#*=} ;;
		bootfarm.server=*) BF_SERVER=${x#*=} ;;
		bootfarm.mac=*) BF_MAC=${x#*=} ;;
		bootfarm.node=*) BF_NODE=${x#*=} ;;
		bootfarm.export=*) BF_EXPORT=${x#*=} ;;
		bootfarm.nonce=*) BF_NONCE=${x#*=} ;;
		esac
	done
	[ -n "$BF_HTTP" ] || { [ -n "$BF_SERVER" ] && BF_HTTP="$BF_SERVER:8080"; }
	BF_MAC=$(echo "$BF_MAC" | tr 'A-F-' 'a-f:')
	if [ -z "$BF_MAC" ]; then
		# The first NIC with an IPv4 address is the one that booted.
		for d in /sys/class/net/*; do
			[ "${d##*/}" = lo ] && continue
			if ip -4 -o addr show dev "${d##*/}" 2>/dev/null | grep -q inet; then BF_MAC=$(cat "$d/address"); break; fi
		done
	fi
	BF_BASE="http://$BF_HTTP/agent/v1/$BF_MAC"
}

# bf_http OUT CURL_ARGS...: one GET into OUT; prints the HTTP status.
# bootfarm away (restarted, upgraded, crashed, its container restarted) refuses
# connections or answers 5xx for as long as that takes, which is longer than
# curl's own retries cover; a node that gave up then would stay unjoined until
# someone rebooted it. So a connection failure or a 5xx is asked again every
# BF_SERVER_POLL s (3) for up to BF_SERVER_WAIT s of wall time (300), saying
# once that the node waits. Any other answer (2xx, 4xx) is returned at once:
# a 4xx is bootfarm's decision, not an outage. Fails, printing why, when the
# wait is over.
bf_http() {
	_h_out=$1
	shift
	mkdir -p "$BF_RUN"
	_h_start=$(date +%s) _h_said=
	while :; do
		if _h_code=$(curl -sS --max-time 15 -w '%{http_code}' -o "$_h_out" "$@" 2> "$BF_RUN/curl.err"); then
			case "$_h_code" in
			5??) _h_why="HTTP $_h_code" ;;
			*) echo "$_h_code"; return 0 ;;
			esac
		else
			_h_why=$(tr '\n' ' ' < "$BF_RUN/curl.err")
		fi
		_h_waited=$(($(date +%s) - _h_start))
		if [ "$_h_waited" -ge "${BF_SERVER_WAIT:-300}" ]; then
			echo "bootfarm unreachable for ${_h_waited} s: $_h_why"
			return 1
		fi
		if [ -z "$_h_said" ]; then
			_h_said=1
			bf_log "bootfarm unreachable ($_h_why): asking again for up to ${BF_SERVER_WAIT:-300} s"
		fi
		sleep "${BF_SERVER_POLL:-3}"
	done
}

# Fetches the node's configuration (retrying while the server is unreachable)
# and sources it. Returns non-zero when it cannot be had.
# The first fetch of a boot presents the one-time nonce from the kernel command
# line (bootfarm.nonce) and gets this boot's secret; bootfarm revokes the boot if
# the nonce comes a second time, so the answer is kept in $BF_RUN (tmpfs, 0700)
# and a later phase reuses it. A fetch is retried only on a connection failure
# or a 5xx answer (bf_http), never after bootfarm answered 4xx.
bf_fetch_config() {
	mkdir -p "$BF_RUN" && chmod 0700 "$BF_RUN"
	if [ ! -s "$BF_CONFIG" ]; then
		[ -n "$BF_NONCE" ] || bf_log "no bootfarm.nonce on the kernel command line: bootfarm will refuse the configuration"
		code=$(bf_http "$BF_CONFIG.tmp" -H "X-Bootfarm-Nonce: $BF_NONCE" "$BF_BASE/config") || { bf_log "$code"; return 1; }
		[ "$code" = 200 ] || { bf_log "configuration: HTTP $code"; rm -f "$BF_CONFIG.tmp"; return 1; }
		mv "$BF_CONFIG.tmp" "$BF_CONFIG"
	fi
	# The config always sets HOSTNAME; a stale one from the environment must not win.
	unset HOSTNAME
	# shellcheck disable=SC1090
	. "$BF_CONFIG"
}

# bf_fetch_join FILE: the join configuration into FILE. bootfarm answers 423 while
# the boot waits for admission (kubernetes.admission: approve or tpm): ask again
# every 5 s for up to BF_ADMISSION_WAIT seconds (default one hour), saying once
# that the node waits. Prints the reason on failure.
bf_fetch_join() {
	waited=0 said=
	while :; do
		code=$(bf_http "$1" -H "Authorization: Bearer ${BOOTFARM_SECRET-}" "$BF_BASE/join") || { echo "$code"; return 1; }
		case "$code" in
		200) return 0 ;;
		423)
			if [ -z "$said" ]; then
				said=1
				bf_report admission ok "waiting for admission: $(jq -r '.message // empty' "$1" 2>/dev/null)"
			fi
			[ "$waited" -lt "${BF_ADMISSION_WAIT:-3600}" ] || { echo "not admitted after ${waited} s"; return 1; }
			sleep "${BF_ADMISSION_POLL:-5}"
			waited=$((waited + ${BF_ADMISSION_POLL:-5}))
			;;
		*) echo "HTTP $code: $(jq -r '.message // empty' "$1" 2>/dev/null)"; return 1 ;;
		esac
	done
}

# bf_value NAME: the value of the variable NAME (names come from the *_KEYS lists).
bf_value() { eval "printf '%s' \"\${$1-}\""; }

# bf_report STEP ok|failed DETAIL: POST /report; failures to report are logged, not fatal.
bf_report() {
	body=$(jq -cn --arg step "$1" --arg status "$2" --arg detail "$3" \
		'{step: $step, status: $status, detail: ($detail | .[0:4096])}')
	# Waits out an outage like the fetches (bf_http): a report lost then would
	# leave the node's timeline without the step.
	_r_code=$(bf_http /dev/null -H "Authorization: Bearer ${BOOTFARM_SECRET-}" -H 'Content-Type: application/json' \
		--data-binary "$body" "$BF_BASE/report") || _r_code="none ($_r_code)"
	case "$_r_code" in
	2??) ;;
	*) bf_log "could not report step $1 ($2): HTTP $_r_code" ;;
	esac
	bf_log "step $1: $2"
}

# bf_run_family KEYS: runs each command (sh -c) in order; prints one line per key
# and returns non-zero when any failed. Output goes to $BF_RUN/<key>.log.
bf_run_family() {
	rc=0
	for key in $1; do
		cmd=$(bf_value "$key")
		if sh -c "$cmd" > "$BF_RUN/$key.log" 2>&1; then
			echo "$key: ok"
		else
			st=$?
			rc=1
			echo "$key: exit $st: $(tail -c 300 "$BF_RUN/$key.log" | tr '\n' ' ')"
		fi
	done
	return $rc
}
