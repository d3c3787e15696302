// Experiment only (proxy/bench/sockmap.sh), never loaded by Palisade: socket-level redirection
// of local TCP connections, as Cilium's removed `--sockops-enable` did. Every established IPv4
// socket of the cgroup goes into a sockhash keyed by its 4-tuple; each sendmsg on such a socket
// is moved straight into the peer socket's receive queue when the peer is in the map, skipping
// the TCP/IP stack. Why Palisade does not ship this: sockmap/why-not.md (no receive-side flow
// control, a first-send race, traffic no longer seen by the TC datapath).
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct sock_key {
	__u32 local_ip;
	__u32 remote_ip;
	__u32 local_port;  /* host order */
	__u32 remote_port; /* host order */
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct sock_key);
	__type(value, __u32);
} socks SEC(".maps");

SEC("sockops")
int add_established(struct bpf_sock_ops *ops)
{
	if (ops->family != 2 /* AF_INET */)
		return 1;
	if (ops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    ops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	struct sock_key key = {
		.local_ip = ops->local_ip4,
		.remote_ip = ops->remote_ip4,
		.local_port = ops->local_port,
		.remote_port = bpf_ntohl(ops->remote_port),
	};
	bpf_sock_hash_update(ops, &socks, &key, BPF_NOEXIST);
	return 1;
}

SEC("sk_msg")
int to_peer(struct sk_msg_md *msg)
{
	if (msg->family != 2)
		return SK_PASS;
	/* The peer's own key: our remote end is its local end. */
	struct sock_key peer = {
		.local_ip = msg->remote_ip4,
		.remote_ip = msg->local_ip4,
		.local_port = bpf_ntohl(msg->remote_port),
		.remote_port = msg->local_port,
	};
	/* No peer in the map: the message takes the normal TCP path. */
	bpf_msg_redirect_hash(msg, &socks, &peer, BPF_F_INGRESS);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
