//! Routes by host and path prefix: first match wins, a route without `match` is the default.

use weir_e2e::client;
use weir_e2e::config::{backend, WEB_HEAD};
use weir_e2e::{spawn_backends, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

#[tokio::test]
async fn routes_by_host_and_path_prefix_first_match_wins() {
    let ([api, stat, adm, web], [_, _, _, _]) =
        spawn_backends(["api", "static", "admin-site", "web"]).await;
    let yaml = format!(
        "\
{WEB_HEAD}    routes:
      - match: {{ host: api.test, path_prefix: /v1/ }}
        pool: api
      - match: {{ path_prefix: /static/ }}
        pool: static
      - match: {{ host: admin.test }}
        pool: admin_site
      - pool: web
pools:
  api:
    backends:
{}  static:
    backends:
{}  admin_site:
    backends:
{}  web:
    backends:
{}",
        backend(api),
        backend(stat),
        backend(adm),
        backend(web)
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let addr = weir.listener_addr("web");

    let cases = [
        ("api.test", "/v1/users", "api"),
        ("api.test:8080", "/v1/users?x=1", "api"),
        ("API.Test", "/v1/", "api"),
        ("api.test", "/v2/users", "web"),
        ("api.test", "/v1", "web"),
        ("other.test", "/v1/users", "web"),
        ("other.test", "/static/site.css", "static"),
        ("api.test", "/static/site.css", "static"),
        ("admin.test", "/anything", "admin-site"),
        ("admin.test", "/v1/users", "admin-site"),
        ("other.test", "/", "web"),
    ];
    for (host, path, want) in cases {
        let resp = client::get_host(addr, host, path).await;
        assert_eq!(resp.status, 200, "{host} {path}: {}", resp.text());
        assert_eq!(resp.text(), want, "Host: {host}, path {path}");
    }
}
