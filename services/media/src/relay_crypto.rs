//! What protects a node-to-node relay's datagrams ([`crate::relay_node`]): its key, the AEAD that seals
//! and opens each datagram under it, and the replay window that refuses a datagram seen before.
//!
//! **AES-128-GCM** (aws-lc, already the process's crypto provider). The 96-bit nonce is the sender's
//! direction (origin → edge 0, edge → origin 1: both ends share one key) followed by a 64-bit counter
//! the sender never reuses (one per datagram, retransmissions included), carried in the clear header;
//! the header is the AEAD's associated data. A key must serve one relay only (one channel between one
//! origin and one edge: the control plane makes each with [`RelayKey::random`]), so 2⁶⁴ datagrams per
//! direction is the key's whole life; a relay handed the same key again carries on with its counters
//! rather than start them over ([`crate::relay_node`]), so no nonce repeats under a key.
//!
//! **Replays**: the receiver keeps the highest counter it accepted and a bitmap of the 64 before it
//! ([`ReplayWindow`], as IPsec and DTLS do). A counter seen before, or older than the window, is dropped:
//! a recorded datagram replayed cannot roll the edge's view of the channel back.
//!
//! Pure: no IO, no clock; the key's randomness comes from aws-lc's generator.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Bytes of a [`RelayKey`].
pub const KEY_LEN: usize = 16;
/// Bytes the AEAD adds to each datagram (its tag).
pub const TAG_LEN: usize = 16;

/// The secret one relay's datagrams are sealed under: chosen by one node, handed to the other over
/// their authenticated node link (the control plane's job), never sent on the relay itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayKey([u8; KEY_LEN]);

impl RelayKey {
    /// Bytes of a key.
    pub const LEN: usize = KEY_LEN;

    /// A fresh key from the system's secure generator.
    pub fn random() -> RelayKey {
        let mut bytes = [0u8; KEY_LEN];
        // aws-lc's system generator fails only if the OS has no entropy source at all, which leaves
        // nothing secure to run on.
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random generator works");
        RelayKey(bytes)
    }

    /// The key's bytes, to hand to the other node.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> RelayKey {
        RelayKey(bytes)
    }
}

impl TryFrom<&[u8]> for RelayKey {
    type Error = crate::MediaError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| crate::MediaError::BadRelayKey(bytes.len()))?;
        Ok(RelayKey(bytes))
    }
}

impl std::fmt::Debug for RelayKey {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKey(..)")
    }
}

/// Keys already handed to this node's relays, so none serves two relays (or one relay twice, its
/// counters started over): the same nonces under one key would expose the key's authentication.
/// Remembers the last [`KeyLedger::REMEMBERED`] keys (1 MB); the control plane making each key with
/// [`RelayKey::random`] is what makes the older ones safe.
#[derive(Debug, Default)]
pub struct KeyLedger {
    seen: std::collections::HashSet<RelayKey>,
    order: std::collections::VecDeque<RelayKey>,
}

impl KeyLedger {
    pub const REMEMBERED: usize = 65_536;

    /// Whether `key` may serve a relay whose key now is `current` (the same key again carries the
    /// relay on; any other must be new). A new key is remembered.
    pub fn admit(&mut self, key: &RelayKey, current: Option<&RelayKey>) -> bool {
        if current == Some(key) {
            return true;
        }
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key.clone());
        if self.order.len() > Self::REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        true
    }
}

/// Which end sealed a datagram: part of the nonce, so the two ends' counters never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    OriginToEdge = 0,
    EdgeToOrigin = 1,
}

/// The AEAD of one relay.
pub struct Cipher {
    key: LessSafeKey,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

fn nonce(direction: Direction, counter: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[0] = direction as u8;
    bytes[NONCE_LEN - 8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

impl Cipher {
    pub fn new(key: &RelayKey) -> Cipher {
        // A 16-byte key is what AES-128-GCM takes: this cannot fail.
        let unbound = UnboundKey::new(&AES_128_GCM, &key.0).expect("a 16-byte AES-128 key");
        Cipher {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `body` (appended to `out`, which holds the clear `header` already) in place: `out` becomes
    /// the datagram.
    pub fn seal(&self, direction: Direction, counter: u64, out: &mut Vec<u8>, header_len: usize) {
        let mut body = out.split_off(header_len);
        // Sealing fails only on a body past GCM's 64 GB limit.
        self.key
            .seal_in_place_append_tag(nonce(direction, counter), Aad::from(&out[..]), &mut body)
            .expect("a datagram is far under the AEAD's limit");
        out.extend_from_slice(&body);
    }

    /// Opens a datagram's sealed part (`sealed`: body and tag) under its clear `header`; `None` when it
    /// does not authenticate.
    pub fn open<'a>(
        &self,
        direction: Direction,
        counter: u64,
        header: &[u8],
        sealed: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        self.key
            .open_in_place(nonce(direction, counter), Aad::from(header), sealed)
            .ok()
    }
}

/// Counters of datagrams accepted from one sender: the highest, and which of the 64 before it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayWindow {
    /// Highest counter accepted plus one (0: none yet).
    top: u64,
    /// Bit `i`: counter `top - 1 - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// Whether `counter` is new; if so it is recorded. Call only once the datagram authenticated (a
    /// forged counter must not move the window).
    pub fn accept(&mut self, counter: u64) -> bool {
        let next = counter.saturating_add(1);
        if next > self.top {
            // Slide: what was bit `i` is now bit `i + shift`; the new top is bit 0.
            let shift = next - self.top;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = next;
            return true;
        }
        let behind = self.top - 1 - counter;
        if behind >= 64 {
            return false;
        }
        let bit = 1u64 << behind;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_datagram_opens_under_its_key_only() {
        let key = RelayKey::random();
        let cipher = Cipher::new(&key);
        let mut datagram = b"HEAD".to_vec();
        datagram.extend_from_slice(b"secret body");
        cipher.seal(Direction::OriginToEdge, 7, &mut datagram, 4);
        assert_eq!(datagram.len(), 4 + 11 + TAG_LEN);
        assert!(!datagram.windows(6).any(|w| w == b"secret"));

        let (header, sealed) = datagram.split_at_mut(4);
        let mut copy = sealed.to_vec();
        let opened = cipher.open(Direction::OriginToEdge, 7, header, &mut copy);
        assert_eq!(opened.as_deref(), Some(&b"secret body"[..]));
        // Another counter, direction, header or key: refused.
        for (direction, counter, header) in [
            (Direction::OriginToEdge, 8, &b"HEAD"[..]),
            (Direction::EdgeToOrigin, 7, &b"HEAD"[..]),
            (Direction::OriginToEdge, 7, &b"HEAX"[..]),
        ] {
            let mut copy = sealed.to_vec();
            assert!(cipher.open(direction, counter, header, &mut copy).is_none());
        }
        let other = Cipher::new(&RelayKey::random());
        let mut copy = sealed.to_vec();
        assert!(
            other
                .open(Direction::OriginToEdge, 7, header, &mut copy)
                .is_none()
        );
        // A flipped bit anywhere in the sealed part: refused.
        let mut copy = sealed.to_vec();
        copy[3] ^= 1;
        assert!(
            cipher
                .open(Direction::OriginToEdge, 7, header, &mut copy)
                .is_none()
        );
    }

    #[test]
    fn keys_round_trip_through_bytes_and_refuse_the_wrong_length() {
        let key = RelayKey::random();
        assert_eq!(RelayKey::from_bytes(key.to_bytes()), key);
        assert_eq!(RelayKey::try_from(&key.to_bytes()[..]).ok(), Some(key));
        assert!(RelayKey::try_from(&[0u8; 15][..]).is_err());
        assert_ne!(RelayKey::random(), RelayKey::random());
        assert_eq!(format!("{:?}", RelayKey::random()), "RelayKey(..)");
    }

    #[test]
    fn a_key_serves_one_relay() {
        let mut ledger = KeyLedger::default();
        let (a, b) = (RelayKey::random(), RelayKey::random());
        assert!(ledger.admit(&a, None));
        // The same relay handed its key again: it carries on.
        assert!(ledger.admit(&a, Some(&a)));
        // Another relay, or the relay started over with it: refused.
        assert!(!ledger.admit(&a, None));
        assert!(!ledger.admit(&a, Some(&b)));
        assert!(ledger.admit(&b, Some(&a)));
    }

    #[test]
    fn the_replay_window_takes_each_counter_once() {
        let mut window = ReplayWindow::default();
        assert!(window.accept(0));
        assert!(!window.accept(0));
        assert!(window.accept(5));
        // Reordered, within the window: once.
        assert!(window.accept(3));
        assert!(!window.accept(3));
        assert!(window.accept(1));
        assert!(!window.accept(5));
        assert!(window.accept(100));
        // 64 behind the top or more: too old.
        assert!(!window.accept(36));
        assert!(window.accept(37));
        assert!(!window.accept(37));
        assert!(window.accept(99));
        assert!(!window.accept(100));
        // A jump past the window forgets what is behind it.
        assert!(window.accept(1000));
        assert!(window.accept(999));
        assert!(!window.accept(99));
    }
}
