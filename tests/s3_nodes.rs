//! S3 (node based): `fromNodes` with the control-plane label lets node k8s-ctr reach env=prod
//! pods; the other remote node, and pods on the control-plane node, time out.

use palisade_e2e::Lab;

#[test]
fn s3_from_control_plane_nodes_only() {
    let lab = Lab::up("s3");
    for member in ["k8s-ctr", "k8s-w2", "default/webpod-2"] {
        lab.assert_tools(member, &["curl"]);
    }
    let prod = format!("http://{}/", lab.ip("default/prod-pod"));

    // Before the policy every node reaches prod-pod's server.
    for node in ["k8s-ctr", "k8s-w2"] {
        let (rc, body) = lab.curl(node, &prod);
        assert_eq!(rc, 0, "{node} -> prod-pod before the policy: exit {rc}");
        assert!(
            body.contains("Hello from /"),
            "prod-pod's page, got {body:?}"
        );
    }

    lab.apply(&["s3-nodes/to-prod-from-control-plane-nodes.yaml"]);
    let (rc, body) = lab.curl("k8s-ctr", &prod);
    assert_eq!(rc, 0, "control-plane node must reach prod-pod: exit {rc}");
    assert!(
        body.contains("Hello from /"),
        "prod-pod's page, got {body:?}"
    );
    let (rc, _) = lab.curl("k8s-w2", &prod);
    assert_eq!(rc, 28, "worker node k8s-w2 must time out");
    // A pod on the control-plane node is not the node.
    let (rc, _) = lab.curl("default/webpod-2", &prod);
    assert_eq!(rc, 28, "a pod on k8s-ctr is not the node and must time out");
    // Pods without env=prod are not selected: k8s-w2 still reaches service-pod.
    let service = format!("http://{}/", lab.ip("default/service-pod"));
    let (rc, _) = lab.curl("k8s-w2", &service);
    assert_eq!(
        rc, 0,
        "service-pod (env unset) is not selected by the policy"
    );
}
