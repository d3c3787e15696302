//! TLS secrets on disk (standalone mode): the files named in `palisade.yaml` `tls.secrets`,
//! or `tls.secretsDir/<namespace>/<name>/<item>`. Re-read when a file changes, so a renewed
//! certificate reaches the proxy with the next revision; what cannot be read becomes an
//! error on the ports that use it (they fail closed), naming the config file and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use palisade_policy::model::TlsContext;
use palisade_proxy::{TlsMaterial, TlsRole};

use crate::config::TlsSection;

/// Largest item read; certificates and bundles are far smaller.
const MAX_ITEM: u64 = 1 << 20;
/// At most this many files are read from `secretsDir`.
const MAX_DIR_FILES: usize = 4096;

type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// One item's file and what reading it gave.
#[derive(Debug, Clone)]
struct Item {
    path: PathBuf,
    /// Where the file is named, for errors (`palisade.yaml: tls.secrets[0].items["tls.crt"]`).
    field: String,
    stamp: Stamp,
    contents: Result<String, String>,
}

/// Secrets by `namespace/name`, items by name.
#[derive(Debug, Default)]
pub struct Secrets {
    section: TlsSection,
    config: PathBuf,
    items: BTreeMap<String, BTreeMap<String, Item>>,
}

impl Secrets {
    /// Secrets described by the config's `tls` section (read on the first `reload`).
    pub fn new(section: TlsSection, config: PathBuf) -> Secrets {
        Secrets {
            section,
            config,
            items: BTreeMap::new(),
        }
    }

    /// Re-reads files whose size or modification time changed, and picks up secrets added to
    /// or removed from `secretsDir`. Returns true when anything changed.
    pub fn reload(&mut self) -> bool {
        let wanted = self.files();
        let mut changed = false;
        let before = self.items.len();
        self.items.retain(|secret, items| {
            items.retain(|name, _| wanted.get(secret).is_some_and(|w| w.contains_key(name)));
            !items.is_empty()
        });
        changed |= self.items.len() != before;
        for (secret, files) in wanted {
            let items = self.items.entry(secret).or_default();
            for (name, (path, field)) in files {
                let s = stamp(&path);
                if let Some(old) = items.get(&name) {
                    if old.path == path && old.stamp == s && s.is_some() {
                        continue;
                    }
                }
                let contents = read_item(&path).map_err(|e| format!("{field}: {e}"));
                let same = items.get(&name).is_some_and(|old| old.contents == contents);
                changed |= !same;
                items.insert(
                    name,
                    Item {
                        path,
                        field,
                        stamp: s,
                        contents,
                    },
                );
            }
        }
        changed
    }

    /// Every item file to read: the explicit list first, then `secretsDir`.
    fn files(&self) -> BTreeMap<String, BTreeMap<String, (PathBuf, String)>> {
        let config = self.config.display();
        let mut out: BTreeMap<String, BTreeMap<String, (PathBuf, String)>> = BTreeMap::new();
        for (i, s) in self.section.secrets.iter().enumerate() {
            let items = out
                .entry(format!("{}/{}", s.namespace, s.name))
                .or_default();
            for (name, path) in &s.items {
                let field = format!(
                    "{config}: tls.secrets[{i}].items[{name:?}] ({})",
                    path.display()
                );
                items.insert(name.clone(), (path.clone(), field));
            }
        }
        let Some(dir) = &self.section.secrets_dir else {
            return out;
        };
        let mut budget = MAX_DIR_FILES;
        for ns in subdirs(dir) {
            for secret in subdirs(&ns) {
                let key = format!("{}/{}", file_name(&ns), file_name(&secret));
                if self
                    .section
                    .secrets
                    .iter()
                    .any(|s| format!("{}/{}", s.namespace, s.name) == key)
                {
                    continue;
                }
                let Ok(entries) = std::fs::read_dir(&secret) else {
                    continue;
                };
                for e in entries.flatten() {
                    let path = e.path();
                    // Kubernetes secret mounts add dot-directories and symlinks; items are the
                    // regular files (followed through links) with plain names.
                    if file_name(&path).starts_with('.') || !path.is_file() || budget == 0 {
                        continue;
                    }
                    budget -= 1;
                    let field = format!("{config}: tls.secretsDir ({})", path.display());
                    out.entry(key.clone())
                        .or_default()
                        .insert(file_name(&path), (path, field));
                }
            }
        }
        out
    }

    /// The material for one `terminatingTLS` / `originatingTLS`: the items the role needs
    /// (Cilium's default item names when the context names none), or why they are missing.
    pub fn material(&self, role: TlsRole, ctx: &TlsContext) -> TlsMaterial {
        let ns = ctx.secret.namespace.as_deref().unwrap_or("default");
        let secret = format!("{ns}/{}", ctx.secret.name);
        let mut m = TlsMaterial {
            secret: secret.clone(),
            ..TlsMaterial::default()
        };
        let Some(items) = self.items.get(&secret) else {
            m.error = Some(format!(
                "not found: {} lists no such secret in tls.secrets{}",
                self.config.display(),
                match &self.section.secrets_dir {
                    Some(d) => format!(
                        " and {} has no {secret}/ directory (tls.secretsDir)",
                        d.display()
                    ),
                    None => String::new(),
                }
            ));
            return m;
        };
        let needed: &[(&Option<String>, &str, Slot)] = match role {
            TlsRole::Terminating => &[
                (&ctx.certificate, "tls.crt", Slot::Certificate),
                (&ctx.private_key, "tls.key", Slot::PrivateKey),
            ],
            _ => &[(&ctx.trusted_ca, "ca.crt", Slot::TrustedCa)],
        };
        for (named, default, slot) in needed {
            let name = named.as_deref().unwrap_or(default);
            let value = match items.get(name) {
                Some(item) => match &item.contents {
                    Ok(text) => text.clone(),
                    Err(e) => {
                        m.error = Some(e.clone());
                        return m;
                    }
                },
                None => {
                    let have: Vec<&str> = items.keys().map(String::as_str).collect();
                    m.error = Some(format!(
                        "no item {name:?} (it has {}); items are named in {}",
                        have.join(", "),
                        items
                            .values()
                            .next()
                            .map_or("tls.secrets", |i| i.field.as_str())
                    ));
                    return m;
                }
            };
            match slot {
                Slot::Certificate => m.certificate = Some(value),
                Slot::PrivateKey => m.private_key = Some(value),
                Slot::TrustedCa => m.trusted_ca = Some(value),
            }
        }
        m
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Certificate,
    PrivateKey,
    TrustedCa,
}

fn read_item(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if meta.len() > MAX_ITEM {
        return Err(format!(
            "{} is larger than {MAX_ITEM} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !file_name(p).starts_with('.'))
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretFiles;
    use palisade_policy::model::TlsSecretRef;

    fn ctx(ns: &str, name: &str) -> TlsContext {
        TlsContext {
            secret: TlsSecretRef {
                namespace: Some(ns.into()),
                name: name.into(),
            },
            trusted_ca: None,
            certificate: None,
            private_key: None,
        }
    }

    #[test]
    fn listed_and_directory_secrets_reload_and_errors_name_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let listed = dir.path().join("cert.pem");
        std::fs::write(&listed, "CERT-1").unwrap();
        let secrets_dir = dir.path().join("secrets");
        std::fs::create_dir_all(secrets_dir.join("certs/origin")).unwrap();
        std::fs::write(secrets_dir.join("certs/origin/ca.crt"), "CA").unwrap();
        let section = TlsSection {
            secrets: vec![SecretFiles {
                namespace: "default".into(),
                name: "web".into(),
                items: [
                    ("tls.crt".to_string(), listed.clone()),
                    ("tls.key".to_string(), dir.path().join("missing.key")),
                ]
                .into(),
            }],
            secrets_dir: Some(secrets_dir.clone()),
        };
        let mut s = Secrets::new(section, PathBuf::from("/etc/palisade.yaml"));
        assert!(s.reload(), "first read");
        assert!(!s.reload(), "nothing changed");

        let o = s.material(TlsRole::Originating, &ctx("certs", "origin"));
        assert_eq!((o.trusted_ca.as_deref(), o.error), (Some("CA"), None));

        let t = s.material(TlsRole::Terminating, &ctx("default", "web"));
        let e = t.error.expect("key file missing");
        assert!(
            e.contains("/etc/palisade.yaml: tls.secrets[0].items[\"tls.key\"]")
                && e.contains("missing.key"),
            "{e}"
        );

        let none = s.material(TlsRole::Terminating, &ctx("default", "nope"));
        let e = none.error.expect("unknown secret");
        assert!(
            e.contains("/etc/palisade.yaml") && e.contains("default/nope"),
            "{e}"
        );

        let mut custom = ctx("certs", "origin");
        custom.trusted_ca = Some("bundle.pem".into());
        let e = s
            .material(TlsRole::Originating, &custom)
            .error
            .expect("item");
        assert!(e.contains("no item \"bundle.pem\" (it has ca.crt)"), "{e}");

        // A changed file (different size) is re-read; a new directory secret appears.
        std::fs::write(&listed, "CERT-two").unwrap();
        std::fs::write(dir.path().join("missing.key"), "KEY").unwrap();
        std::fs::create_dir_all(secrets_dir.join("default/late")).unwrap();
        std::fs::write(secrets_dir.join("default/late/ca.crt"), "CA2").unwrap();
        assert!(s.reload());
        let t = s.material(TlsRole::Terminating, &ctx("default", "web"));
        assert_eq!(t.certificate.as_deref(), Some("CERT-two"));
        assert_eq!(t.private_key.as_deref(), Some("KEY"));
        assert!(t.error.is_none());
        let late = s.material(TlsRole::Originating, &ctx("default", "late"));
        assert_eq!(late.trusted_ca.as_deref(), Some("CA2"));
    }
}
