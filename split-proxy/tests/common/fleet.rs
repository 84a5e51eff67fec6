//! Two gateways (each with its own data dir and Admin API) in front of one mock
//! upstream, for the shared-counter tests.

use std::path::Path;

use http::Method;
use serde_json::Value;

use super::gateway::{sample, start, Gateway};
use super::{Client, Mock};

/// Admin key of the test gateways (32+ characters, as the gateway requires).
pub const ADMIN_KEY: &str = "fleet-test-admin-key-0123456789abcdefXY";

/// Gateway `A` and `B`, the mock upstream and a client.
pub struct Fleet {
    /// The gateways.
    pub gateways: Vec<Gateway>,
    /// The upstream both forward to.
    pub mock: Mock,
    /// A keep-alive client.
    pub client: Client,
    _dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    /// Starts `n` gateways with an admin key and a mock upstream.
    pub fn start(n: usize) -> Fleet {
        let mock = Mock::http("llm");
        let mut dirs = Vec::new();
        let mut gateways = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("tempdir");
            gateways.push(start_with_key(dir.path()));
            dirs.push(dir);
        }
        Fleet {
            gateways,
            mock,
            client: Client::new(),
            _dirs: dirs,
        }
    }

    /// PUTs `route` as `routes/<id>` on every gateway; panics unless each answers 200/201.
    pub async fn put_route(&self, id: &str, route: &Value) {
        for gw in &self.gateways {
            let url = format!(
                "http://{}/apisix/admin/routes/{id}",
                gw.admin.expect("admin listener")
            );
            let reply = self
                .client
                .send(
                    Method::PUT,
                    &url,
                    &[
                        ("x-api-key", ADMIN_KEY),
                        ("content-type", "application/json"),
                    ],
                    route.to_string(),
                )
                .await;
            assert!(
                matches!(reply.status, 200 | 201),
                "PUT routes/{id}: {} {}",
                reply.status,
                reply.text()
            );
        }
    }

    /// PUTs `route` on the first gateway and returns its status and body.
    pub async fn try_put_route(&self, id: &str, route: &Value) -> (u16, String) {
        let url = format!(
            "http://{}/apisix/admin/routes/{id}",
            self.gateways[0].admin.expect("admin listener")
        );
        let reply = self
            .client
            .send(
                Method::PUT,
                &url,
                &[("x-api-key", ADMIN_KEY)],
                route.to_string(),
            )
            .await;
        (reply.status, reply.text())
    }

    /// GET `path` on gateway `i`.
    pub async fn get(&self, i: usize, path: &str) -> super::Reply {
        self.client.get(&self.gateways[i].url(path)).await
    }

    /// Sum over all gateways of the sample `prefix` (0 when absent).
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        let mut total = 0.0;
        for gw in &self.gateways {
            total += sample(&gw.metrics_text().await, prefix).unwrap_or(0.0);
        }
        total
    }
}

fn start_with_key(dir: &Path) -> Gateway {
    let config = dir.join("config.yaml");
    let yaml = format!(
        "deployment:\n  admin:\n    admin_key:\n      - name: admin\n        key: {ADMIN_KEY}\n        role: admin\n"
    );
    std::fs::write(&config, yaml).expect("write config.yaml");
    start(dir, &["-c", config.to_str().expect("utf-8 path")])
}
