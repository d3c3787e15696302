# Sourced by http.sh and https.sh: the two namespaces a proxy bench runs in, their cleanup, and
# the process helpers both use.
# Uses the caller's WORK (temp dir), PIDS (processes started) and MADE (namespaces created).

# Client namespace $1 (address $3) and server namespace $2 (address $4) joined by a veth; TCP
# port $5 from the client goes to the palisade proxy on :15001 (as the datapath's redirect
# would). Refuses to touch namespaces that already exist (another run of a bench).
bench_netns() {
  local c=$1 s=$2 ns
  for ns in "$c" "$s"; do
    if ip netns list | grep -qw "$ns"; then
      echo "namespace $ns exists (another run of this bench?); not touching it" >&2
      exit 1
    fi
  done
  ip netns add "$c" && MADE+=("$c")
  ip netns add "$s" && MADE+=("$s")
  ip link add eth0 netns "$c" type veth peer eth0 netns "$s"
  ip -n "$c" addr add "$3/24" dev eth0
  ip -n "$s" addr add "$4/24" dev eth0
  for ns in "$c" "$s"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
  ip netns exec "$s" iptables -t mangle -A PREROUTING -i eth0 -p tcp --dport "$5" \
    -j TPROXY --on-port 15001 --tproxy-mark 0x200/0xf00
  ip -n "$s" rule add fwmark 0x200/0xf00 lookup 2004 pref 9
  ip -n "$s" route add local 0.0.0.0/0 dev lo table 2004
}

# Stops what the run started and removes only the namespaces it created.
bench_cleanup() {
  local p ns
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; rm -rf "/etc/netns/$ns"; done
  rm -rf "$WORK"
}

# The single worker process under nginx master $1.
worker() {
  for _ in $(seq 1 50); do pgrep -P "$1" && return 0; sleep 0.1; done
  echo "no worker under nginx $1" >&2; return 1
}

# User + system CPU of process $1, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
