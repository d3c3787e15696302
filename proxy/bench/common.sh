# Sourced by http.sh, https.sh and sockmap.sh: the two namespaces a proxy bench runs in, their
# cleanup, the plain-HTTP configurations and policy they share, and the process helpers.
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
# System (kernel) CPU alone of process $1, in clock ticks.
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }

# The lines every one-worker nginx of the benches starts with; $1 names its pid and error files.
nginx_preamble() {
  cat <<NGINX
worker_processes 1;
daemon off;
pid $WORK/$1.pid;
error_log $WORK/$1.err;
events { worker_connections 4096; }
NGINX
}

# The plain-HTTP backend: one nginx worker answering 200 on :80 (behind palisade) and :8080.
plain_backend_conf() {
  { nginx_preamble backend; cat; } >"$WORK/backend.conf" <<NGINX
http {
  access_log off;
  default_type text/html;
  server {
    listen 80; listen 8080;
    location / { return 200 "<html><body><h1>Hello from \$uri</h1></body></html>"; }
  }
}
NGINX
}

# nginx as the proxy on :8081 with the bench's rule (GET /public allowed, else 403) in front of
# the backend at $1:8080; its own instance, so it does not share a worker with the backend.
plain_nginx_conf() {
  { nginx_preamble nginx; cat; } >"$WORK/nginx.conf" <<NGINX
http {
  access_log off;
  upstream backend { server $1:8080; keepalive 64; }
  server {
    listen 8081;
    location = /public {
      limit_except GET { deny all; }
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
    }
    location / { default_type text/plain; return 403 "Access denied\r\n"; }
  }
}
NGINX
}

# palisade's snapshot for the same rule: $1 rules on port 80 (GET /public is the last one), from
# client $2 to server $3.
http_snapshot() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
n, client, server = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rules = [{"method": "GET", "path": f"/other{i}(/.*)?"} for i in range(n - 1)]
rules.append({"method": "GET", "path": "/public"})
print(json.dumps({"revision": 1, "ipcache": [[f"{client}/32", 1001], [f"{server}/32", 2000]],
  "endpoints": [{"name": "service", "ips": [server], "identity": 2000,
    "ingress": [{"port": 80, "peers": [{"identities": [1001], "http": rules}]}], "egress": []}]}))
PY
}
