//! Just enough STUN to route a datagram from an unknown address: the local ICE ufrag in a binding
//! request's USERNAME attribute (RFC 8445: "local-ufrag:remote-ufrag" as the receiver sees it). Every
//! session has its own ufrag, so this finds the session with one map lookup instead of asking every
//! session whether it accepts the packet.

const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The ufrag this node chose for the session a STUN message is addressed to, if `datagram` is a STUN
/// message with a USERNAME attribute.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    // STUN messages start with two zero bits and carry the magic cookie (RFC 5389 §6).
    if datagram.len() < HEADER_LEN || datagram[0] & 0xC0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(HEADER_LEN..HEADER_LEN + body_len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        // Attributes are padded to 4 bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7u8; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn finds_the_receivers_ufrag() {
        assert_eq!(
            local_ufrag(&binding_request("srvufrag:cli")),
            Some("srvufrag")
        );
    }

    #[test]
    fn ignores_what_is_not_stun() {
        assert_eq!(
            local_ufrag(&[
                0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]),
            None
        );
        assert_eq!(local_ufrag(&[0u8; 3]), None);
    }

    #[test]
    fn truncated_attributes_are_not_trusted() {
        let mut msg = binding_request("abc:def");
        msg.truncate(msg.len() - 4);
        assert_eq!(local_ufrag(&msg), None);
    }
}
