//! `deployment.role`, as APISIX: `traditional` serves the proxy and the Admin API,
//! `data_plane` only the proxy (configuration from etcd or a standalone file),
//! `control_plane` only the Admin API (no proxy port). The metrics listener (with
//! `/healthz` and `/readyz`) runs in every role.

use split_core::config::gateway::DeploymentRole;

use crate::cli::ServeArgs;

/// The proxy listeners and whether the Admin API runs, for `role`. A flag that asks for
/// a listener the role does not have is ignored with a warning.
pub fn apply(
    role: DeploymentRole,
    listen: Vec<std::net::SocketAddr>,
    enable_admin: bool,
    serve: &ServeArgs,
    warnings: &mut Vec<String>,
) -> (Vec<std::net::SocketAddr>, bool) {
    match role {
        DeploymentRole::Traditional => (listen, enable_admin),
        DeploymentRole::DataPlane => {
            if serve.admin_listen.is_some() {
                warnings.push(
                    "--admin-listen is ignored: deployment.role is data_plane (no Admin API)"
                        .to_owned(),
                );
            }
            (listen, false)
        }
        DeploymentRole::ControlPlane => {
            if serve.listen.is_some() {
                warnings.push(
                    "--listen is ignored: deployment.role is control_plane (no proxy port)"
                        .to_owned(),
                );
            }
            (Vec::new(), enable_admin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["split-proxy"];
        argv.extend_from_slice(extra);
        crate::cli::Cli::try_parse_from(argv)
            .expect("valid flags")
            .serve
    }

    #[test]
    fn roles_drop_the_listeners_they_do_not_have() {
        let listen = vec!["127.0.0.1:9080".parse().expect("addr")];
        let mut w = Vec::new();
        let t = apply(
            DeploymentRole::Traditional,
            listen.clone(),
            true,
            &args(&[]),
            &mut w,
        );
        assert_eq!(t, (listen.clone(), true));
        let d = apply(
            DeploymentRole::DataPlane,
            listen.clone(),
            true,
            &args(&[]),
            &mut w,
        );
        assert_eq!(d, (listen.clone(), false));
        let c = apply(
            DeploymentRole::ControlPlane,
            listen.clone(),
            true,
            &args(&[]),
            &mut w,
        );
        assert_eq!(c, (Vec::new(), true));
        assert!(w.is_empty(), "{w:?}");
        apply(
            DeploymentRole::ControlPlane,
            listen,
            true,
            &args(&["--listen", "127.0.0.1:1"]),
            &mut w,
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("control_plane"), "{w:?}");
    }
}
