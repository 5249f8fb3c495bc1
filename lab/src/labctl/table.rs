//! The table `status` prints.

use std::fmt::Write as _;

use super::{GROUP, Report};

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| x.to_string())
}

fn human_duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The table `status` prints.
pub fn render(r: &Report) -> String {
    let o = &r.options;
    let mut out = format!(
        "lab {:?}: {} hosts on br0 in {}, 198.18.0.0/24, group {GROUP}, poll {} ({} s), \
         keys {}, calibration replies {}, up {}{}\n\n",
        r.lab,
        r.hosts,
        r.switch_ns,
        o.poll,
        1u64 << o.poll,
        format!("{:?}", o.key_type).to_lowercase(),
        if o.drop_replies {
            "DROPPED"
        } else {
            "delivered"
        },
        human_duration(r.up_s),
        if r.complete {
            ""
        } else {
            " (INCOMPLETE: `up` did not finish)"
        },
    );
    let header = [
        "HOST",
        "ROLE",
        "PROGRAM",
        "ADDRESS",
        "SERVER",
        "T",
        "MODE",
        "REACH",
        "UNICAST",
        "WIRE",
        "OFFSET ms",
        "NOTE",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    let mut last_host = String::new();
    for row in &r.rows {
        let first = row.host != last_host;
        last_host.clone_from(&row.host);
        let show = |s: String| if first { s } else { String::new() };
        let mode = if row.fallback {
            format!("{} (fallback)", row.mode)
        } else {
            row.mode.clone()
        };
        cells.push(vec![
            show(row.host.clone()),
            show(row.role.clone()),
            show(row.program.clone()),
            show(row.address.to_string()),
            opt(row.server),
            row.t.clone(),
            mode,
            row.reach.map_or_else(|| "-".into(), |r| format!("{r:o}")),
            opt(row.unicast_sent),
            row.wire.to_string(),
            row.offset_ms
                .map_or_else(|| "-".into(), |x| format!("{x:+.3}")),
            row.note.clone(),
        ]);
    }
    let cols = header.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            cells
                .iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &cells {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(
        "\nUNICAST: clients' unicast requests to that server as the program counts them \
         (ours: unicast_sent; ntpd: the association's `sent`), our servers' replies sent.\n\
         WIRE: the same seen on the bridge (requests from the client to the server; \
         replies leaving the server).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::labctl::{Row, UpOptions};

    #[test]
    fn the_table_groups_a_clients_rows_and_marks_fallback() {
        let row = |host: &str, server: Option<&str>, mode: &str, fallback: bool| Row {
            host: host.into(),
            role: if server.is_some() { "client" } else { "server" }.into(),
            program: "mcast-client".into(),
            address: Ipv4Addr::new(198, 18, 0, 3),
            server: server.map(|s| s.parse().unwrap()),
            t: "b".into(),
            mode: mode.into(),
            fallback,
            reach: Some(0o377),
            unicast_sent: Some(4),
            wire: 4,
            offset_ms: Some(0.0123),
            running: true,
            note: "UNCALIBRATED (using 4.000 ms): no reply".into(),
        };
        let report = Report {
            lab: "lab".into(),
            up_s: 75,
            options: UpOptions::default(),
            complete: true,
            hosts: 3,
            switch_ns: "mlab-lab-sw".into(),
            rows: vec![
                row("h3", Some("198.18.0.1"), "tracking", true),
                row("h3", Some("198.18.0.2"), "calibrating", false),
            ],
        };
        let text = render(&report);
        assert!(text.contains("up 1m15s"), "{text}");
        assert!(text.contains("tracking (fallback)"), "{text}");
        assert!(text.contains("+0.012"), "{text}");
        assert!(text.contains(" 377 "), "{text}");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("198.18.0.") && !l.starts_with("lab "))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("h3"));
        assert!(
            lines[1].starts_with(' '),
            "second row of a host is grouped: {text}"
        );
    }
}
