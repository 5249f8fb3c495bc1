//! The configurations `up` writes: our servers', our clients' (monitor
//! mode) and the reference ntpds' (`disable ntp`, `disable kernel`).

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{GROUP, HostRecord, Kind, LabState, NTP_PORT};
use crate::{lab, refntpd};

/// Our server's configuration.
pub(super) fn our_server_config(state: &LabState, h: &HostRecord) -> String {
    let poll = state.options.poll;
    let fast = if poll < 3 {
        "lab-allow-fast-poll = true\n"
    } else {
        ""
    };
    format!(
        "# mcast-lab {lab:?} {name} ({addr})\nkeys = {keys:?}\nport = {NTP_PORT}\n\
         control-socket = {sock:?}\n{fast}{dest}{source}",
        lab = state.name,
        name = h.name,
        addr = h.addr,
        keys = state.keys,
        sock = h.socket.clone().unwrap_or_default(),
        dest = lab::destination(
            &GROUP.to_string(),
            u32::from(h.key.unwrap_or(0)),
            i8::try_from(poll).unwrap_or(i8::MAX),
            ""
        ),
        source = lab::local_source(2),
    )
}

/// Our client's configuration: every server of the lab, each with its key.
pub(super) fn our_client_config(state: &LabState, h: &HostRecord) -> String {
    let o = &state.options;
    let servers = state.servers().count();
    let mut s = format!(
        "# mcast-lab {lab:?} {name} ({addr})\nkeys = {keys:?}\nport = {NTP_PORT}\n\
         control-socket = {sock:?}\n\
         [[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n\
         [calibration]\nstart-delay-max-s = {delay}\nrequests = {req}\nspacing-s = 2\n\
         retries = {ret}\n\
         [selection]\nmin-agreeing = {agree}\n\
         [clock]\n# Never touch the clock: it is shared by every namespace.\nmode = \"monitor\"\n",
        lab = state.name,
        name = h.name,
        addr = h.addr,
        keys = state.keys,
        sock = h.socket.clone().unwrap_or_default(),
        delay = o.cal_start_delay_s,
        req = o.cal_requests,
        ret = o.cal_retries,
        agree = if servers >= 3 { 2 } else { 1 },
    );
    for srv in state.servers() {
        let _ = write!(
            s,
            "[[server]]\naddress = \"{}\"\nkey = {}\nname = \"{}\"\n",
            srv.addr,
            srv.key.unwrap_or(0),
            srv.name
        );
    }
    s
}

/// A reference ntpd's configuration.
pub(super) fn ntpd_config(state: &LabState, h: &HostRecord) -> Result<String, String> {
    let label = format!("{} of mcast-lab {:?}", h.name, state.name);
    let conf = if h.kind == Kind::RefServer {
        let key = h.key.unwrap_or(0);
        let poll = state.options.poll.max(3);
        let body =
            refntpd::server_body(IpAddr::V4(GROUP), Some(key), poll).map_err(|e| e.to_string())?;
        refntpd::config_text(&label, &state.keys, &[key], &h.log, &body, "")
    } else {
        let trusted: Vec<u16> = state.servers().filter_map(|s| s.key).collect();
        refntpd::config_text(
            &label,
            &state.keys,
            &trusted,
            &h.log,
            &refntpd::client_body(IpAddr::V4(GROUP)),
            &state.options.ref_client_conf.join("\n"),
        )
    };
    conf.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::labctl::UpOptions;
    use crate::labctl::up::{plan, write_keys};

    #[test]
    fn generated_configs_are_valid_and_never_touch_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let opts = UpOptions {
            servers: 2,
            ref_servers: 1,
            clients: 1,
            ref_clients: 1,
            poll: 1,
            ..UpOptions::default()
        };
        let s = plan("x", dir.path(), &opts, None);
        write_keys(&s).unwrap();
        let server = our_server_config(&s, &s.hosts[0]);
        assert!(server.contains("lab-allow-fast-poll = true"), "{server}");
        fs::write(&s.hosts[0].config, &server).unwrap();
        mcast_config::ServerConfig::load_with_keys(&s.hosts[0].config).unwrap();
        let client = our_client_config(&s, &s.hosts[3]);
        assert!(client.contains("mode = \"monitor\""));
        assert_eq!(client.matches("[[server]]").count(), 3, "{client}");
        fs::write(&s.hosts[3].config, &client).unwrap();
        let (c, _) = mcast_config::ClientConfig::load_with_keys(&s.hosts[3].config).unwrap();
        assert_eq!(c.servers.len(), 3);
        let ntpd_server = ntpd_config(&s, &s.hosts[2]).unwrap();
        assert!(
            ntpd_server.contains("broadcast 224.0.1.1 key 3 minpoll 3"),
            "ntpd servers broadcast at 8 s or slower: {ntpd_server}"
        );
        let ntpd_client = ntpd_config(&s, &s.hosts[4]).unwrap();
        assert!(ntpd_client.contains("trustedkey 1 2 3"), "{ntpd_client}");
        assert!(ntpd_client.contains("disable ntp\ndisable kernel"));
        let keys = fs::read_to_string(&s.keys).unwrap();
        assert_eq!(keys.lines().filter(|l| !l.starts_with('#')).count(), 3);
    }
}
