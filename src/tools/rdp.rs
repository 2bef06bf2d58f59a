//! RDP clients: finding one, telling FreeRDP 2 from 3, the argv each accepts,
//! and what their exit codes mean. The password never appears here: FreeRDP
//! reads it from stdin (`/from-stdin:force`), Remmina asks for it itself.

use crate::exec::Cmd;

/// Which client, and so which argv dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    FreeRdp2,
    FreeRdp3,
    Remmina,
}

/// A client found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub program: String,
    pub flavor: Flavor,
    /// As the client reports it (e.g. `3.10.3`), when it does.
    pub version: Option<String>,
}

/// Candidates in order of preference. `xfreerdp` may be either major
/// version: its `/version` output decides.
pub const CANDIDATES: &[&str] = &[
    "sdl-freerdp3",
    "xfreerdp3",
    "wlfreerdp3",
    "xfreerdp",
    "remmina",
];

/// `CLIENT /version`. FreeRDP 2 needs a display even for this (without one it
/// prints only an error and exits 1): read stdout whatever the status.
pub fn version_cmd(program: &str) -> Cmd {
    Cmd::new(program).arg("/version")
}

/// Parse `This is FreeRDP version 3.10.3 (n/a)` into `3.10.3`.
pub fn parse_version(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("This is FreeRDP version ")?;
        rest.split_whitespace().next().map(str::to_string)
    })
}

/// The FreeRDP flavor a version string means.
pub fn flavor_of(version: &str) -> Option<Flavor> {
    match version.split('.').next()?.parse::<u32>().ok()? {
        2 => Some(Flavor::FreeRdp2),
        n if n >= 3 => Some(Flavor::FreeRdp3),
        _ => None,
    }
}

/// What the user asked the session to be like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub host: String,
    pub user: Option<String>,
    pub title: String,
    pub fullscreen: bool,
    /// A host directory to share into the guest.
    pub share: Option<String>,
}

/// The client's argv. FreeRDP gets `/from-stdin:force` so that it reads the
/// password from stdin before connecting.
pub fn argv(client: &Client, s: &Session) -> Cmd {
    let c = Cmd::new(&client.program);
    match client.flavor {
        Flavor::Remmina => {
            let target = match &s.user {
                Some(u) => format!("rdp://{u}@{}", s.host),
                None => format!("rdp://{}", s.host),
            };
            c.arg("-c").arg(target)
        }
        Flavor::FreeRdp2 | Flavor::FreeRdp3 => {
            let mut a = vec![format!("/v:{}", s.host)];
            if let Some(u) = &s.user {
                a.push(format!("/u:{u}"));
            }
            a.push("/from-stdin:force".into());
            // Trust on first use: the guest's self-signed certificate is
            // accepted once and pinned, not ignored forever.
            a.push("/cert:tofu".into());
            a.push(match client.flavor {
                Flavor::FreeRdp3 => "+dynamic-resolution".into(),
                _ => "/dynamic-resolution".into(),
            });
            a.push("+clipboard".into());
            a.push("/sound".into());
            if let Some(dir) = &s.share {
                a.push(format!("/drive:bkt,{dir}"));
            }
            if s.fullscreen {
                a.push("/f".into());
            }
            a.push(format!("/t:{}", s.title));
            c.args(a)
        }
    }
}

/// How a FreeRDP run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The session ran and ended (window closed, logoff, disconnect).
    Ended,
    /// It never got a session: the network or the protocol failed. Worth
    /// falling back to SPICE.
    ConnectFailed,
    /// The credentials were refused.
    AuthFailed,
    /// Anything else.
    Failed,
}

/// FreeRDP's exit codes (client/common: `freerdp_client_exit_code`), in
/// words, with what they mean for us.
pub fn explain_exit(code: i32) -> (Outcome, &'static str) {
    use Outcome::*;
    match code {
        0 => (Ended, "the session ended"),
        1 => (Ended, "disconnected"),
        2 => (Ended, "logged off"),
        3 => (Ended, "idle timeout"),
        5 => (Ended, "another session replaced this one"),
        11 | 12 => (Ended, "disconnected by the user"),
        7 => (Failed, "the server denied the connection"),
        9 => (Failed, "the user lacks the privilege to log on remotely"),
        128 => (Failed, "the client rejected its arguments"),
        131 => (ConnectFailed, "connection failed"),
        133 => (ConnectFailed, "protocol negotiation failed"),
        137 => (ConnectFailed, "connection failed"),
        139 | 140 => (ConnectFailed, "the address could not be resolved"),
        141 => (ConnectFailed, "connection failed"),
        142 => (ConnectFailed, "the RDP handshake failed"),
        143 => (ConnectFailed, "the TLS handshake failed"),
        145 => (Failed, "the connection was cancelled"),
        147 => (ConnectFailed, "connection failed (transport)"),
        150 => (ConnectFailed, "the Kerberos KDC is unreachable"),
        132 | 134 | 154 | 159 => (AuthFailed, "authentication failed"),
        135 => (AuthFailed, "the account is locked out"),
        148 | 149 | 152 => (AuthFailed, "the password has expired or must be changed"),
        151 => (AuthFailed, "the account is disabled"),
        155 => (AuthFailed, "access denied"),
        156..=158 => (AuthFailed, "the account may not log on this way"),
        _ => (Failed, "the client failed"),
    }
}

/// The server FreeRDP refused because its certificate is not the one pinned
/// for it (`/cert:tofu`) at an earlier connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedCertificate {
    pub host: String,
    pub port: u16,
}

/// Find FreeRDP's report of a changed server certificate in its output
/// (stdout and stderr together, as in bkt's client log). Both 2.11 and 3.10
/// print, when they refuse a certificate that differs from the pinned one:
///
/// `!!!Certificate for 127.0.0.2:3389 (RDP-Server) has changed!!!`
///
/// and then exit 143 (TLS connect failed). The log lines around it prove
/// nothing alone: FreeRDP 3 logs "REMOTE HOST IDENTIFICATION HAS CHANGED" at
/// a first contact too, when it pins the certificate.
pub fn changed_certificate(output: &str) -> Option<ChangedCertificate> {
    output.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("!!!Certificate for ")?;
        let (addr, what) = rest.split_once(' ')?;
        if !what.ends_with(" has changed!!!") {
            return None;
        }
        let (host, port) = addr.rsplit_once(':')?;
        Some(ChangedCertificate {
            host: host.to_string(),
            port: port.parse().ok()?,
        })
    })
}

/// How to drop the certificate a FreeRDP pinned for a server, so that the
/// next connection pins the new one. `config` is FreeRDP's configuration
/// directory's parent as it computes it: `$XDG_CONFIG_HOME`, else
/// `$HOME/.config`. FreeRDP 2 keeps one line `HOST PORT FINGERPRINT ...` per
/// server in `freerdp/known_hosts2`; FreeRDP 3 one file per server,
/// `freerdp/server/HOST_PORT.pem` (both as its own message names them).
pub fn forget_certificate_cmd(
    flavor: Flavor,
    config: &std::path::Path,
    c: &ChangedCertificate,
) -> String {
    use crate::exec::shell_quote;
    let dir = config.join("freerdp");
    match flavor {
        Flavor::FreeRdp2 => {
            let file = dir.join("known_hosts2");
            let line = format!("^{} {} ", c.host.replace('.', "\\."), c.port);
            format!(
                "sed -i {} {}",
                shell_quote(&format!("/{line}/d")),
                shell_quote(&file.display().to_string())
            )
        }
        // FreeRDP 3 (Remmina's output is never read: it has its own dialogs).
        _ => {
            let file = dir
                .join("server")
                .join(format!("{}_{}.pem", c.host, c.port));
            format!("rm {}", shell_quote(&file.display().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/fixtures/freerdp/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn versions() {
        let v2 = parse_version(&fx("xfreerdp2-version.txt")).unwrap();
        assert_eq!(v2, "2.11.7");
        assert_eq!(flavor_of(&v2), Some(Flavor::FreeRdp2));
        let v3 = parse_version(&fx("xfreerdp3-version.txt")).unwrap();
        assert_eq!(v3, "3.10.3");
        assert_eq!(flavor_of(&v3), Some(Flavor::FreeRdp3));
        assert_eq!(
            parse_version(&fx("sdl-freerdp3-version.txt")).as_deref(),
            Some("3.10.3")
        );
        assert_eq!(parse_version("usage: remmina"), None);
        assert_eq!(flavor_of("1.0"), None);
    }

    fn session() -> Session {
        Session {
            host: "192.168.122.57".into(),
            user: Some("anna".into()),
            title: "windows".into(),
            fullscreen: true,
            share: Some("/home/anna/Shared".into()),
        }
    }

    #[test]
    fn freerdp3_argv() {
        let c = Client {
            program: "xfreerdp3".into(),
            flavor: Flavor::FreeRdp3,
            version: Some("3.10.3".into()),
        };
        assert_eq!(
            argv(&c, &session()).display(),
            "xfreerdp3 /v:192.168.122.57 /u:anna /from-stdin:force /cert:tofu \
             +dynamic-resolution +clipboard /sound /drive:bkt,/home/anna/Shared /f /t:windows"
        );
    }

    #[test]
    fn freerdp2_argv() {
        let c = Client {
            program: "xfreerdp".into(),
            flavor: Flavor::FreeRdp2,
            version: Some("2.11.7".into()),
        };
        let s = Session {
            fullscreen: false,
            share: None,
            ..session()
        };
        assert_eq!(
            argv(&c, &s).display(),
            "xfreerdp /v:192.168.122.57 /u:anna /from-stdin:force /cert:tofu \
             /dynamic-resolution +clipboard /sound /t:windows"
        );
    }

    #[test]
    fn remmina_argv() {
        let c = Client {
            program: "remmina".into(),
            flavor: Flavor::Remmina,
            version: None,
        };
        assert_eq!(
            argv(&c, &session()).display(),
            "remmina -c rdp://anna@192.168.122.57"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(explain_exit(0).0, Outcome::Ended);
        assert_eq!(
            explain_exit(147),
            (Outcome::ConnectFailed, "connection failed (transport)")
        );
        assert_eq!(
            explain_exit(132),
            (Outcome::AuthFailed, "authentication failed")
        );
        assert_eq!(explain_exit(99).0, Outcome::Failed);
    }

    #[test]
    fn a_changed_certificate_in_both_versions() {
        let at = |host: &str, port| {
            Some(ChangedCertificate {
                host: host.into(),
                port,
            })
        };
        assert_eq!(
            changed_certificate(&fx("xfreerdp2-cert-changed.txt")),
            at("127.0.0.2", 3389)
        );
        assert_eq!(
            changed_certificate(&fx("xfreerdp3-cert-changed.txt")),
            at("127.0.0.2", 3389)
        );
        // A first contact pins the certificate; FreeRDP 3 logs "REMOTE HOST
        // IDENTIFICATION HAS CHANGED" then as well.
        assert_eq!(changed_certificate(&fx("xfreerdp2-cert-first.txt")), None);
        assert_eq!(changed_certificate(&fx("xfreerdp3-cert-first.txt")), None);
        assert_eq!(changed_certificate(&fx("xfreerdp3-version.txt")), None);
        assert_eq!(
            changed_certificate("!!!Certificate for h:3390 (RDP-Gateway) has changed!!!\n"),
            at("h", 3390)
        );
        assert_eq!(
            changed_certificate("!!!Certificate for h:x (RDP-Server) has changed!!!"),
            None
        );
        assert_eq!(
            changed_certificate("!!!Certificate for h:3389 (RDP-Server) is new!!!"),
            None
        );
        assert_eq!(
            changed_certificate("!!!Certificate for h3389 has changed!!!"),
            None
        );
    }

    /// Run a hint's command with `sh`, as the user would paste it.
    fn sh(cmd: &str) {
        let st = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }

    #[test]
    fn forgetting_a_pinned_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("my config");
        let c = ChangedCertificate {
            host: "127.0.0.2".into(),
            port: 3389,
        };
        let cmd = forget_certificate_cmd(Flavor::FreeRdp2, &config, &c);
        let file = config.join("freerdp/known_hosts2");
        assert_eq!(
            cmd,
            format!("sed -i '/^127\\.0\\.0\\.2 3389 /d' '{}'", file.display())
        );
        // FreeRDP 2's own file, with other servers around the one to drop.
        let pinned = fx("xfreerdp2-known_hosts2.txt");
        let others = [
            pinned.replace("127.0.0.2 3389 ", "127.0.0.2 3390 "),
            pinned.replace("127.0.0.2 3389 ", "127.0.0.23 3389 "),
            pinned.replace("127.0.0.2 3389 ", "127.0.0.21 3389 "),
        ];
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            format!("{}{pinned}{}{}", others[0], others[1], others[2]),
        )
        .unwrap();
        sh(&cmd);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), others.concat());

        let cmd = forget_certificate_cmd(Flavor::FreeRdp3, &config, &c);
        let file = config.join("freerdp/server/127.0.0.2_3389.pem");
        assert_eq!(cmd, format!("rm '{}'", file.display()));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "pinned").unwrap();
        std::fs::write(config.join("freerdp/server/127.0.0.2_3390.pem"), "other").unwrap();
        sh(&cmd);
        assert!(!file.exists());
        assert!(config.join("freerdp/server/127.0.0.2_3390.pem").exists());
    }
}
