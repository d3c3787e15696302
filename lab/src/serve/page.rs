//! What the lab servers answer: the `http` page and the whoami echo.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;

use palisade_policy::topology::ServeKind;

/// What a server knows about itself.
pub struct Context {
    /// Which server this is.
    pub kind: ServeKind,
    /// Pod or host name.
    pub name: String,
    /// Addresses of the namespace's interfaces, read once at start.
    pub ips: Vec<String>,
}

/// The `http` server's page for `path`.
pub fn hello(path: &str) -> String {
    format!("<html><body><h1>Hello from {path}</h1></body></html>\n")
}

/// traefik/whoami's answer: hostname, addresses, the caller, then the request as received.
pub fn whoami(
    ctx: &Context,
    remote: SocketAddr,
    req: &http::request::Parts,
    body: &[u8],
) -> String {
    let mut out = format!("Hostname: {}\n", ctx.name);
    for ip in &ctx.ips {
        let _ = writeln!(out, "IP: {ip}");
    }
    let _ = writeln!(out, "RemoteAddr: {remote}");
    let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let _ = write!(out, "{} {target} {:?}\r\n", req.method, req.version);
    if let Some(host) = req.headers.get(http::header::HOST) {
        let _ = write!(
            out,
            "Host: {}\r\n",
            String::from_utf8_lossy(host.as_bytes())
        );
    }
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| *k != http::header::HOST)
        .map(|(k, v)| {
            (
                canonical(k.as_str()),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&String::from_utf8_lossy(body));
    out
}

/// `x-my-header` → `X-My-Header`, as Go (and so whoami) prints header names.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Addresses of this namespace's interfaces (`ip -o addr`), loopback first like whoami.
pub fn interface_ips() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["-o", "addr", "show"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            Some(cidr.split('/').next()?.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_page_is_exact() {
        assert_eq!(
            hello("/public"),
            "<html><body><h1>Hello from /public</h1></body></html>\n"
        );
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("x-my-header"), "X-My-Header");
        assert_eq!(canonical("user-agent"), "User-Agent");
    }

    #[test]
    fn whoami_echoes_request() {
        let req = http::Request::builder()
            .method("PUT")
            .uri("/path2?x=1")
            .header("host", "webpod")
            .header("x-my-header", "true")
            .body(())
            .expect("request");
        let (parts, ()) = req.into_parts();
        let ctx = Context {
            kind: ServeKind::Whoami,
            name: "webpod".into(),
            ips: vec!["127.0.0.1".into(), "172.20.2.10".into()],
        };
        let text = whoami(&ctx, "172.20.1.5:40000".parse().expect("addr"), &parts, b"");
        let want =
            "Hostname: webpod\nIP: 127.0.0.1\nIP: 172.20.2.10\nRemoteAddr: 172.20.1.5:40000\n\
                    PUT /path2?x=1 HTTP/1.1\r\nHost: webpod\r\nX-My-Header: true\r\n\r\n";
        assert_eq!(text, want);
    }
}
