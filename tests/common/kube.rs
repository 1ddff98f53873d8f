//! Pointing an exporter at a fake Kubernetes API: a kubeconfig file, as `KUBECONFIG` names it.

use std::path::{Path, PathBuf};

use url::Url;

/// Writes `dir/kubeconfig`: one cluster at `server` (plain HTTP on loopback), one user with the
/// bearer `token`, a current context in `namespace`.
pub fn write_kubeconfig(dir: &Path, server: &Url, token: &str, namespace: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: {server}
contexts:
- name: test
  context:
    cluster: fake
    user: exporter
    namespace: {namespace}
users:
- name: exporter
  user:
    token: {token}
"
        ),
    )
    .unwrap();
    path
}
