//! When the router re-offers a member's session: its send lines follow whether anyone in the channel
//! publishes what they carry.
//!
//! A session's lines are negotiated once, at join. When the last publisher of a kind leaves the channel,
//! the lines that carried that kind to the other members turn inactive (their remote tracks end); when a
//! publisher of that kind joins, they turn active again. Only those two moves trigger an offer: a line
//! negotiated before any publisher joined stays as negotiated, so the common path (audience joining a live
//! room, the first party joining a call channel) never pays for a renegotiation before media flows.
//!
//! Pure: the engine asks [`changes`] which lines to flip and applies them through str0m's `SdpApi`.

use str0m::media::{Direction, Mid};

use crate::protocol::Kind;

/// One line the router sends a member media on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutLine {
    pub mid: Mid,
    pub kind: Kind,
    /// The router's direction as negotiated at join (SendOnly for an audience member, SendRecv for a
    /// publisher that also receives).
    pub negotiated: Direction,
    /// Whether the line currently sends (false after its publisher left).
    pub active: bool,
}

impl OutLine {
    /// The router's direction for this line in its current state.
    pub fn direction(&self) -> Direction {
        if self.active {
            self.negotiated
        } else {
            without_send(self.negotiated)
        }
    }
}

/// Which way a membership change can move lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// A publisher left: lines whose kind nobody publishes any more turn inactive.
    Down,
    /// A publisher joined: inactive lines whose kind someone publishes again turn active.
    Up,
    /// After an answer: bring every line in line with the channel (changes that waited on it).
    Both,
}

/// The lines to flip (index into `lines`, new `active`), given which kinds someone else in the channel
/// publishes.
pub fn changes(
    lines: &[OutLine],
    published: impl Fn(Kind) -> bool,
    how: Move,
) -> Vec<(usize, bool)> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let wanted = published(line.kind);
            let flip = match how {
                Move::Down => line.active && !wanted,
                Move::Up => !line.active && wanted,
                Move::Both => line.active != wanted,
            };
            flip.then_some((i, wanted))
        })
        .collect()
}

fn without_send(d: Direction) -> Direction {
    match d {
        Direction::SendRecv | Direction::RecvOnly => Direction::RecvOnly,
        Direction::SendOnly | Direction::Inactive => Direction::Inactive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(mid: &str, kind: Kind, negotiated: Direction, active: bool) -> OutLine {
        OutLine {
            mid: Mid::from(mid),
            kind,
            negotiated,
            active,
        }
    }

    #[test]
    fn a_publisher_leaving_deactivates_only_the_kinds_nobody_publishes() {
        let lines = [
            line("0", Kind::Audio, Direction::SendOnly, true),
            line("1", Kind::Video, Direction::SendOnly, true),
        ];
        let video_only = |k: Kind| k == Kind::Video;
        assert_eq!(changes(&lines, video_only, Move::Down), vec![(0, false)]);
        assert_eq!(
            changes(&lines, |_| false, Move::Down),
            vec![(0, false), (1, false)]
        );
        // A join never takes lines away.
        assert!(changes(&lines, |_| false, Move::Up).is_empty());
    }

    #[test]
    fn a_publisher_joining_reactivates_inactive_lines_only() {
        let lines = [
            line("0", Kind::Audio, Direction::SendRecv, false),
            line("1", Kind::Video, Direction::SendRecv, true),
        ];
        assert_eq!(changes(&lines, |_| true, Move::Up), vec![(0, true)]);
        // A leave never brings lines back.
        assert!(changes(&lines, |_| true, Move::Down).is_empty());
        assert_eq!(changes(&lines, |_| false, Move::Both), vec![(1, false)]);
    }

    #[test]
    fn an_inactive_line_keeps_what_the_member_sends() {
        assert_eq!(
            line("0", Kind::Audio, Direction::SendRecv, false).direction(),
            Direction::RecvOnly
        );
        assert_eq!(
            line("0", Kind::Audio, Direction::SendOnly, false).direction(),
            Direction::Inactive
        );
        assert_eq!(
            line("0", Kind::Audio, Direction::SendOnly, true).direction(),
            Direction::SendOnly
        );
    }
}
