//! The daemons' Prometheus endpoints, live: a real `mcast-server` and
//! `mcast-client` on loopback (as the quick start runs them, without
//! CAP_SYS_TIME, the client in monitor mode), scraped over HTTP and read
//! back with the shared exposition reader and checked with `promtool`
//! (Debian package prometheus, put there by `scripts/install-deps`; the
//! tests fail loudly without it). Traffic stays on lo.
#![cfg(test)]
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mcast_sys::prometheus::{self, Parsed};
use mcast_tests::loopback::{LoopbackLab, free_tcp_port, http_get, wait_until};

fn metrics_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_tcp_port())
        .parse()
        .expect("address")
}

/// `GET /metrics`, checked against the text format.
fn scrape(addr: SocketAddr) -> Result<(String, Parsed), String> {
    let a = http_get(addr, "/metrics").map_err(|e| e.to_string())?;
    if a.code != 200 {
        return Err(format!("{}\n{}", a.head, a.body));
    }
    if !a.head.contains("Content-Type: text/plain; version=0.0.4") {
        return Err(a.head);
    }
    let p = prometheus::parse(&a.body).map_err(|e| format!("{e}:\n{}", a.body))?;
    Ok((a.body, p))
}

/// The `promtool` binary; panics with what to run when it is missing.
fn promtool() -> &'static str {
    let path = "/usr/bin/promtool";
    assert!(
        Path::new(path).exists(),
        "promtool not found: run scripts/install-deps (Debian package prometheus)"
    );
    path
}

/// `promtool check metrics` of `page`: its exit status and what it said.
fn promtool_check_metrics(page: &str) -> (Option<i32>, String) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(page.as_bytes())
        .expect("page written");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// Both daemons on lo with metrics, the client tracking the server (so
/// every per-server series is there); returns the two live pages.
struct Live {
    lab: LoopbackLab,
    server_metrics: SocketAddr,
    client_metrics: SocketAddr,
    _daemons: [mcast_tests::loopback::Daemon; 2],
}

impl Live {
    fn start() -> Live {
        let lab = LoopbackLab::new();
        let server_metrics = metrics_addr();
        let client_metrics = metrics_addr();
        let server = lab.start_server_with(&format!("metrics = \"{server_metrics}\""));
        let client = lab.start_client(&format!("metrics = \"{client_metrics}\""));
        lab.wait_until_tracked();
        Live {
            lab,
            server_metrics,
            client_metrics,
            _daemons: [server, client],
        }
    }

    /// The server's control socket.
    fn lab_server_socket(&self) -> std::path::PathBuf {
        self.lab.dir.path().join("server.sock")
    }

    /// The server's page from its live status with what only some
    /// servers have added: an upstream daemon and a client polling by
    /// unicast (written by the daemon's own writer).
    fn server_page_with_upstream_and_poller(&self) -> String {
        let mut status =
            mcast_server::control::query_status(&self.lab_server_socket()).expect("server status");
        status.upstream = Some(mcast_core::server::upstream::UpstreamReport {
            address: Some("127.0.0.1:123".parse().expect("address")),
            offset_s: Some(0.0),
            delay_s: Some(0.0),
            stratum: Some(2),
            last_reply_ago_s: Some(1.0),
            upstream_root_delay_s: Some(0.01),
            upstream_root_dispersion_s: Some(0.02),
            ..Default::default()
        });
        status
            .unicast_polling_clients
            .push(mcast_core::server::status::PollerStatus {
                address: "127.0.0.1".parse().expect("address"),
                requests: 20,
                average_interval_s: 8.0,
                last_request_ago_s: 1.0,
            });
        mcast_server::metrics::format_metrics(&status)
    }

    /// The two pages once the client's shows the server tracked.
    fn pages(&self) -> (String, String) {
        let (client, _) = wait_until("client page tracking", Duration::from_secs(30), || {
            let (body, p) = scrape(self.client_metrics)?;
            if p.get("mcast_client_synchronized") == Some(1.0) {
                Ok((body, p))
            } else {
                Err(body)
            }
        });
        let (server, _) = scrape(self.server_metrics).expect("server page");
        (server, client)
    }
}

#[test]
fn promtool_check_metrics_accepts_both_live_pages() {
    let live = Live::start();
    let (server, client) = live.pages();
    let extended = live.server_page_with_upstream_and_poller();
    for (who, page) in [
        ("server", &server),
        ("client", &client),
        ("server with upstream and poller", &extended),
    ] {
        let (code, said) = promtool_check_metrics(page);
        assert_eq!(code, Some(0), "{who}: promtool: {said}\n{page}");
        assert!(said.trim().is_empty(), "{who}: promtool: {said}");
    }
}

#[test]
fn promtool_check_metrics_can_fail() {
    // The check above means something: promtool refuses a counter without
    // _total and a family without HELP.
    let (code, said) = promtool_check_metrics("# TYPE x counter\nx 1\n");
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("_total"), "{said}");
}

#[test]
fn server_metrics_count_broadcasts_and_calibration_replies_live() {
    let lab = LoopbackLab::new();
    let addr = metrics_addr();
    let _server = lab.start_server_with(&format!("metrics = \"{addr}\""));
    let dest = r#"destination="224.0.1.1",interface="lo""#;
    let sent_name = format!("mcast_server_destination_packets_sent_total{{{dest}}}");
    let (_, first) = wait_until("a broadcast counted", Duration::from_secs(20), || {
        let (body, p) = scrape(addr)?;
        match p.get(&sent_name) {
            Some(n) if n >= 1.0 => Ok((body, p)),
            _ => Err(body),
        }
    });
    let get = |p: &Parsed, series: &str| {
        p.get(series)
            .unwrap_or_else(|| panic!("{series} missing in {:?}", p.samples.keys()))
    };
    assert_eq!(get(&first, "mcast_server_synchronized"), 1.0);
    assert_eq!(get(&first, "mcast_server_stratum"), 3.0);
    assert_eq!(
        get(
            &first,
            &format!(
                "mcast_server_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    assert_eq!(
        get(
            &first,
            &format!("mcast_server_destination_intervals_skipped_total{{{dest}}}")
        ),
        0.0
    );
    assert_eq!(
        get(&first, "mcast_server_responder_replies_sent_total"),
        0.0
    );
    assert_eq!(get(&first, "mcast_server_unicast_pollers"), 0.0);

    // A client calibrates (one volley of 4 requests): the responder's
    // counters and the MRU table show it, and broadcasts keep counting.
    let _client = lab.start_client("");
    lab.wait_until_tracked();
    let sent_before = get(&first, &sent_name);
    let (_, later) = wait_until("more broadcasts counted", Duration::from_secs(20), || {
        let (body, p) = scrape(addr)?;
        match (
            p.get(&sent_name),
            p.get("mcast_server_responder_replies_sent_total"),
        ) {
            (Some(n), Some(4.0)) if n > sent_before => Ok((body, p)),
            _ => Err(body),
        }
    });
    assert_eq!(get(&later, "mcast_server_responder_received_total"), 4.0);
    assert_eq!(
        get(&later, "mcast_server_responder_current_version_total"),
        4.0
    );
    assert_eq!(get(&later, "mcast_server_responder_auth_failed_total"), 0.0);
    assert_eq!(get(&later, "mcast_server_mru_entries"), 1.0);
    assert_eq!(get(&later, "mcast_server_unicast_pollers"), 0.0);
    assert_eq!(get(&later, "mcast_server_synchronized"), 1.0);
    assert!(
        get(&later, "mcast_server_uptime_seconds") > get(&first, "mcast_server_uptime_seconds")
    );

    let other = http_get(addr, "/").expect("GET /");
    assert_eq!(other.code, 404, "{other:?}");
}

/// The repository's `packaging/` folder.
fn packaging() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// Every `mcast_...` metric name written in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("mcast_") {
        let preceded = rest
            .get(..i)
            .and_then(|b| b.chars().last())
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// `promtool` with `args` in `dir`: success and what it said.
fn promtool_in(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = packaging().join("prometheus");
    let (ok, said) = promtool_in(&dir, &["check", "rules", "alerts.yml"]);
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS: 11 rules found"), "{said}");
    let (ok, said) = promtool_in(&dir, &["test", "rules", "alerts.test.yml"]);
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
    // Every alert of the file has a test that makes it fire.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    let tests = std::fs::read_to_string(dir.join("alerts.test.yml")).expect("tests");
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            let fires = tests
                .split("alertname: ")
                .skip(1)
                .any(|t| t.starts_with(name) && !t.lines().nth(1).unwrap_or("").contains("[]"));
            assert!(fires, "no test makes {name} fire");
        }
    }
}

#[test]
fn the_alert_rule_tests_catch_a_changed_threshold() {
    // The unit tests above can fail: with the offset threshold moved from
    // 5 ms to 50 ms the warning no longer fires when the tests expect it.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = packaging().join("prometheus");
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    let changed = rules.replacen(
        "abs(mcast_client_offset_seconds) > 0.005",
        "abs(mcast_client_offset_seconds) > 0.5",
        1,
    );
    assert_ne!(changed, rules);
    std::fs::write(tmp.path().join("alerts.yml"), changed).expect("write");
    std::fs::copy(
        dir.join("alerts.test.yml"),
        tmp.path().join("alerts.test.yml"),
    )
    .expect("copy");
    let (ok, said) = promtool_in(tmp.path(), &["test", "rules", "alerts.test.yml"]);
    assert!(!ok, "{said}");
    assert!(said.contains("McastClientOffsetTooLarge"), "{said}");
}

/// Every query of the dashboard (rows' panels included): panel title and
/// expression.
fn dashboard_queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            if p["type"] == "row" {
                walk(p["panels"].as_array().map_or(&[], Vec::as_slice), out);
                continue;
            }
            let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
            assert!(!targets.is_empty(), "panel {title} has no query");
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "panel {title}: empty query");
                out.push((title.clone(), expr.to_string()));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        dash["panels"].as_array().expect("panels").as_slice(),
        &mut out,
    );
    out
}

#[test]
fn dashboard_alerts_and_test_series_name_only_metrics_the_daemons_serve() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(packaging().join("grafana/mcast-ntp.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    assert_eq!(dash["uid"], "mcast-ntp");
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let variables: BTreeSet<&str> = dash["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        variables,
        BTreeSet::from(["datasource", "client", "server"])
    );
    // Panel ids are distinct and every panel fits the 24-column grid.
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        assert!(ids.insert(p["id"].as_u64().expect("id")), "id twice: {p}");
        let (x, w) = (p["gridPos"]["x"].as_u64(), p["gridPos"]["w"].as_u64());
        assert!(x.zip(w).is_some_and(|(x, w)| x + w <= 24), "{p}");
    }

    // The live pages of both daemons, the client tracking the server.
    let live = Live::start();
    let (server, client) = live.pages();
    let mut served: BTreeSet<String> = BTreeSet::new();
    for page in [&server, &client] {
        let p = prometheus::parse(page).expect("page parses");
        served.extend(p.families.into_keys());
    }
    // Two server families appear only with an upstream daemon or a client
    // polling by unicast; they are taken from the live status with those
    // added, through the same writer.
    let conditional =
        prometheus::parse(&live.server_page_with_upstream_and_poller()).expect("page parses");
    let conditional: BTreeSet<String> = conditional
        .families
        .into_keys()
        .filter(|f| !served.contains(f))
        .collect();
    assert!(
        conditional
            .iter()
            .all(|f| f.starts_with("mcast_server_upstream_")
                || f == "mcast_server_unicast_poller_requests"),
        "only those are conditional: {conditional:?}"
    );
    served.extend(conditional);

    for (title, expr) in &queries {
        for name in metric_names(expr) {
            assert!(
                served.contains(&name),
                "dashboard panel {title:?}: {name} is not served"
            );
        }
    }
    for file in ["prometheus/alerts.yml", "prometheus/alerts.test.yml"] {
        let text = std::fs::read_to_string(packaging().join(file)).expect(file);
        let names = metric_names(&text);
        assert!(names.len() >= 8, "{file}: {names:?}");
        for name in names {
            assert!(served.contains(&name), "{file}: {name} is not served");
        }
    }
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool parses each query as a recording rule, with Grafana's
    // variables replaced by what they stand for.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(packaging().join("grafana/mcast-ntp.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let queries = dashboard_queries(&dash);
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$client", ".*")
            .replace("$server", ".*");
        assert!(!expr.contains('$'), "an unknown variable in {expr}");
        let quoted = serde_json::to_string(&expr).expect("quoted");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("dashboard.yml"), &rules).expect("write");
    let (ok, said) = promtool_in(tmp.path(), &["check", "rules", "dashboard.yml"]);
    assert!(ok, "{said}\n{rules}");
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{said}"
    );
    // And a broken query is caught.
    std::fs::write(
        tmp.path().join("bad.yml"),
        "groups:\n  - name: d\n    rules:\n      - record: d:q\n        expr: \"rate(x[5m]\"\n",
    )
    .expect("write");
    let (ok, said) = promtool_in(tmp.path(), &["check", "rules", "bad.yml"]);
    assert!(!ok, "{said}");
}
