//! ICE restart of a running session: what a member's offer must be for the router to take it as one.
//!
//! A client whose network changed (Wi-Fi → cellular, a new port) cannot reach the router on its old
//! path. Rather than join again — a new session, new streams, the receivers' decoders starting over —
//! it sends an SDP offer for its **existing** session with new `a=ice-ufrag`/`a=ice-pwd` (RFC 8445
//! §9, RFC 8839 §4.4.1.1.1: an ICE restart). str0m answers it on the same `Rtc`: new local ICE
//! credentials, the same DTLS association, the same streams (SSRCs, sequence numbers, the router's
//! rewriting state), so media resumes where it stopped once the client's checks reach the router on the
//! new path. The engine then routes STUN by the session's **new** ufrag ([`crate::stun`]).
//!
//! The offer may do nothing else: the router decides a session's lines (it adds none after the join,
//! and turns send lines on and off itself, [`crate::renegotiation`]). So an offer that keeps the
//! credentials, or names other media lines than the session's, is refused here, before str0m sees it,
//! and changes nothing. Directions the client states are taken (str0m answers them) and the router
//! re-offers its own right after, when they differ from what the channel calls for.
//!
//! Pure text checks, like [`crate::sdp_rules`]: the offer has already parsed as SDP when they run.

/// A session's ICE credentials as an SDP states them (the first `a=ice-ufrag` and `a=ice-pwd`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

/// What the router knows of a session's remote side, to tell a restart offer from anything else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteSide {
    /// The credentials of the member's last offer.
    pub credentials: IceCredentials,
    /// The media lines (`a=mid`) of its join offer, in order.
    pub mids: Vec<String>,
}

/// Why an offer is not an ICE restart of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotARestart {
    /// It has no `a=ice-ufrag`/`a=ice-pwd`.
    NoCredentials,
    /// Its credentials are the session's: nothing would restart.
    SameCredentials,
    /// It names other media lines than the session has (`offered`, in order).
    OtherLines { offered: Vec<String> },
}

impl std::fmt::Display for NotARestart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotARestart::NoCredentials => write!(f, "no a=ice-ufrag / a=ice-pwd"),
            NotARestart::SameCredentials => write!(
                f,
                "its ice-ufrag and ice-pwd are the session's: an ICE restart offers new ones"
            ),
            NotARestart::OtherLines { offered } => write!(
                f,
                "an ICE restart keeps the session's media lines; it names {offered:?}"
            ),
        }
    }
}

/// Reads what the router keeps of a member's (join or restart) offer.
pub fn remote_side(sdp: &str) -> Option<RemoteSide> {
    Some(RemoteSide {
        credentials: credentials(sdp)?,
        mids: mids(sdp),
    })
}

/// Checks that `offer` restarts ICE on a session whose remote side is `session`; returns the new
/// credentials.
pub fn check(offer: &str, session: &RemoteSide) -> Result<IceCredentials, NotARestart> {
    let offered = credentials(offer).ok_or(NotARestart::NoCredentials)?;
    if offered == session.credentials {
        return Err(NotARestart::SameCredentials);
    }
    let lines = mids(offer);
    if lines != session.mids {
        return Err(NotARestart::OtherLines { offered: lines });
    }
    Ok(offered)
}

fn attribute<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("a="))
        .find_map(|a| a.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn credentials(sdp: &str) -> Option<IceCredentials> {
    Some(IceCredentials {
        ufrag: attribute(sdp, "ice-ufrag")?.to_owned(),
        pwd: attribute(sdp, "ice-pwd")?.to_owned(),
    })
}

fn mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(ufrag: &str, pwd: &str, mids: &[&str]) -> String {
        let mut sdp = format!("v=0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n");
        for mid in mids {
            sdp.push_str(&format!(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{mid}\r\n"
            ));
        }
        sdp
    }

    fn session() -> RemoteSide {
        remote_side(&offer("old", "oldpassword", &["0", "1"])).expect("credentials")
    }

    #[test]
    fn new_credentials_on_the_same_lines_restart() {
        let new = check(&offer("new", "newpassword", &["0", "1"]), &session());
        assert_eq!(
            new,
            Ok(IceCredentials {
                ufrag: "new".into(),
                pwd: "newpassword".into()
            })
        );
        // A new password alone is a restart too (str0m compares both).
        assert!(check(&offer("old", "another", &["0", "1"]), &session()).is_ok());
    }

    #[test]
    fn the_same_credentials_are_not_a_restart() {
        assert_eq!(
            check(&offer("old", "oldpassword", &["0", "1"]), &session()),
            Err(NotARestart::SameCredentials)
        );
    }

    #[test]
    fn other_lines_are_refused() {
        assert_eq!(
            check(&offer("new", "pw", &["0", "1", "2"]), &session()),
            Err(NotARestart::OtherLines {
                offered: vec!["0".into(), "1".into(), "2".into()]
            })
        );
        assert!(check(&offer("new", "pw", &["1", "0"]), &session()).is_err());
    }

    #[test]
    fn an_offer_without_credentials_is_refused() {
        assert_eq!(
            check("v=0\r\na=mid:0\r\na=mid:1\r\n", &session()),
            Err(NotARestart::NoCredentials)
        );
        assert_eq!(remote_side("v=0\r\n"), None);
    }
}
