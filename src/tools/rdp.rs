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
}
