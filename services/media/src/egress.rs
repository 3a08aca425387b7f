//! The router's outgoing datagrams: queued during a turn of the loop, sent together at its end with as
//! few system calls as the kernel allows.
//!
//! The engine hands every datagram its sessions produce to [`Egress::queue`] and calls
//! [`Egress::flush`] once the turn's sessions are drained. UDP semantics hold throughout: a datagram the
//! kernel refuses (full socket buffer) is dropped and counted, as the network would drop it.
//!
//! # How a flush sends
//! - **GSO** (`UDP_SEGMENT`, Linux ≥ 4.18): consecutive datagrams to one destination go to the kernel as
//!   one message of up to 64 segments, split back into datagrams below the socket (by the NIC, or in
//!   software). The kernel cuts every segment at one size, so a message holds datagrams of one size, the
//!   last of which may be shorter: a frame's packets to one receiver (equal sizes, a shorter last one) are
//!   one message. The segments are gathered from the queued buffers with an iovec each, so nothing is
//!   copied into a send buffer.
//! - **`sendmmsg`**: up to 1,024 such messages (the kernel's `UIO_MAXIOV`), for any destinations, in one
//!   system call. A keyframe to 100 receivers (≈ 30 packets each) is 100 messages in one call, where
//!   it used to be 3,000 `sendto`s.
//!
//! The control message carrying the segment size is shared by every message of a `sendmmsg` call
//! (nix's API, and what the kernel needs: one value per message), so a call holds messages of one segment
//! size plus single datagrams no longer than it (the kernel sends those as they are). To make calls
//! long, the flush orders messages by *round* (a destination's first message, then its second…) and by
//! size within a round: every receiver of a fan-out gets the same packet sizes, so a round is one call.
//!
//! Ordering: datagrams to one destination leave in the order they were queued (they are grouped per
//! destination in queue order, a destination's round *k* precedes its round *k + 1* in every call and
//! calls go out in order). Across destinations nothing is promised; nothing needs it.
//!
//! # Fallback
//! - A kernel without GSO: probed once in [`Egress::new`] (setting `UDP_SEGMENT` on the socket, then
//!   clearing it so that only the per-message control message applies); without it, every message is one
//!   datagram and the flush is `sendmmsg` alone.
//! - GSO refused at run time: `EIO` or `EINVAL` from a GSO call (a device or route without checksum
//!   offload, IPsec) turns GSO off for this socket for good and the unsent rest of the call goes out again
//!   as single datagrams, so nothing is lost to the switch; `EMSGSIZE` (a segment over the route's MTU,
//!   which GSO cannot fragment) sends that one message as single datagrams, which the IP layer may
//!   fragment like a plain `sendto` would.
//! - A full socket buffer (`EAGAIN`, `ENOBUFS`) drops the rest of that `sendmmsg` batch, counted in
//!   [`Flushed::dropped`]; the next batch tries again. Any other error drops the one message it names.
//! - Other systems than Linux: one `send_to` per datagram, as before.
//!
//! # Crates
//! `nix` (safe `sendmmsg`, the `UDP_SEGMENT` control message and socket option) and nothing else.
//! `quinn-udp` was the other candidate: it does GSO and its fallback well, but sends one `sendmsg` per
//! transmit (one destination) and has no `sendmmsg`, so it would still need nix for the batching across
//! receivers, which is where the syscalls are in a fan-out (many receivers, few packets each per turn);
//! and with nix's per-call control message the GSO part is a few lines. The GSO probe and the
//! `EIO`/`EINVAL` fallback follow quinn-udp's. The crate keeps `#![forbid(unsafe_code)]`.
//!
//! # Allocation
//! The queue, the send order, the message plan, the `mmsghdr`s (nix's `MultiHeaders`, allocated once
//! per thread: they are not `Send`) and the address list keep their capacity from flush to flush. The iovecs and per-call slices borrow
//! the queued buffers, so they cannot be stored across flushes as such; their vectors are emptied and
//! handed from one lifetime to the next with std's in-place `collect` (see `recycle`), which keeps the
//! allocation. What remains per datagram is str0m's: every `Transmit` is an owned `Vec<u8>`, freed
//! after the flush.
//!
//! # Not done: encrypting in place into the send buffers
//! str0m encrypts inside `Rtc::poll_output` and hands out each datagram as an owned buffer
//! (`Transmit::contents`, a `DatagramSend` that converts `Into<Vec<u8>>`); it offers no way to seal into a
//! buffer the caller provides. So the queue takes those buffers as they are and the iovecs point into them
//! (no copy here); sealing into a shared GSO buffer would need str0m's SRTP context exposed or a fork.

use std::net::{SocketAddr, UdpSocket};

/// What a flush did (for the router's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams the kernel took.
    pub datagrams: u64,
    /// Their bytes (UDP payload).
    pub bytes: u64,
    /// Send system calls made.
    pub syscalls: u64,
    /// Datagrams dropped (the kernel refused them).
    pub dropped: u64,
    /// GSO messages (two or more datagrams to one destination in one buffer) the kernel took.
    pub gso_batches: u64,
}

impl Flushed {
    /// Adds another flush's counts (for totals over many flushes).
    pub fn add(&mut self, other: Flushed) {
        self.datagrams += other.datagrams;
        self.bytes += other.bytes;
        self.syscalls += other.syscalls;
        self.dropped += other.dropped;
        self.gso_batches += other.gso_batches;
    }
}

/// Datagrams waiting to be sent, and the socket they go out on.
pub struct Egress {
    socket: UdpSocket,
    queued: Vec<(SocketAddr, Vec<u8>)>,
    #[cfg(target_os = "linux")]
    batch: linux::Batch,
}

impl Egress {
    /// Sends on `socket` (non-blocking). Uses GSO when the kernel has it.
    pub fn new(socket: UdpSocket) -> Self {
        #[cfg(target_os = "linux")]
        let batch = linux::Batch::new(linux::gso_supported(&socket));
        Self {
            socket,
            queued: Vec::new(),
            #[cfg(target_os = "linux")]
            batch,
        }
    }

    /// Like [`Egress::new`] without GSO (`sendmmsg` alone): for comparing the two, and for tests of the
    /// fallback.
    pub fn without_gso(socket: UdpSocket) -> Self {
        let mut egress = Self::new(socket);
        #[cfg(target_os = "linux")]
        {
            egress.batch.gso = false;
        }
        egress
    }

    /// Whether flushes use GSO now (false without kernel support or after the kernel refused it).
    pub fn gso(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.batch.gso;
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// Queues one datagram for the next flush.
    pub fn queue(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.queued.push((destination, contents));
    }

    /// Sends everything queued.
    pub fn flush(&mut self) -> Flushed {
        let mut flushed = Flushed::default();
        if self.queued.is_empty() {
            return flushed;
        }
        #[cfg(target_os = "linux")]
        self.batch.send(&self.socket, &self.queued, &mut flushed);
        #[cfg(not(target_os = "linux"))]
        for (destination, contents) in &self.queued {
            flushed.syscalls += 1;
            match self.socket.send_to(contents, destination) {
                Ok(_) => {
                    flushed.datagrams += 1;
                    flushed.bytes += contents.len() as u64;
                }
                Err(_) => flushed.dropped += 1,
            }
        }
        self.queued.clear();
        flushed
    }
}

/// Moves an emptied vector's allocation to a vector of another element type of the same size and
/// alignment (here: the same type under another lifetime). std's `collect` from a `vec::IntoIter` reuses
/// the source allocation in place when the layouts match; there are no elements, so the closure never
/// runs. Without that optimisation this would still be correct, only allocate.
#[cfg(target_os = "linux")]
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector was cleared"))
        .collect()
}

#[cfg(target_os = "linux")]
mod linux {
    use std::cell::RefCell;
    use std::cmp::Reverse;
    use std::io::IoSlice;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::{AsRawFd, RawFd};

    use nix::errno::Errno;
    use nix::sys::socket::{
        ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg, setsockopt, sockopt,
    };

    use super::{Flushed, recycle};

    /// Messages per `sendmmsg`: the kernel's `UIO_MAXIOV` (it silently sends no more per call).
    pub(super) const BATCH: usize = 1024;
    /// Segments per GSO message: `UDP_MAX_SEGMENTS` (64 before Linux 6.9, 128 since).
    pub(super) const MAX_SEGMENTS: usize = 64;
    /// Bytes per GSO message: one IP packet's payload before segmentation (65,535 − 40 for an IPv6
    /// header − 8 for UDP), with a margin for IPv6 extension headers.
    const MAX_GSO_BYTES: usize = 65_000;

    /// Whether the kernel takes `UDP_SEGMENT` on this socket. The option is cleared again at once: set, it
    /// would segment every send on the socket; the per-message control message is what the flush uses.
    pub(super) fn gso_supported(socket: &UdpSocket) -> bool {
        if setsockopt(socket, sockopt::UdpGsoSegment, &1200).is_err() {
            return false;
        }
        match setsockopt(socket, sockopt::UdpGsoSegment, &0) {
            Ok(()) => true,
            Err(e) => {
                // Unheard of; the socket segments every send over 1,200 bytes now, which the receivers
                // would see as broken packets, so say so.
                tracing::error!(error = %e, "could not clear UDP_SEGMENT after probing it");
                false
            }
        }
    }

    /// One GSO message (or single datagram): `count` queued datagrams to `destination`, at positions
    /// `first..first + count` of the flush's send order; all `segment` bytes long but the last, which
    /// may be shorter.
    #[derive(Clone, Copy, Debug)]
    struct Message {
        destination: SocketAddr,
        first: usize,
        count: usize,
        segment: usize,
        bytes: usize,
        /// A shorter datagram ended it (GSO allows a short segment only last).
        closed: bool,
        /// Its place among its destination's messages.
        round: u32,
    }

    impl Message {
        fn takes(&self, len: usize, max_segments: usize) -> bool {
            !self.closed
                && len > 0
                && len <= self.segment
                && self.count < max_segments
                && self.bytes + len <= MAX_GSO_BYTES
        }
    }

    /// How a `sendmmsg` batch ended when it did not go out whole.
    enum Refused {
        /// GSO refused for good (`EIO`, `EINVAL`) at this entry of the batch.
        Gso(usize),
        /// This entry's segments exceed the route's MTU (`EMSGSIZE`): send it as single datagrams.
        TooBig(usize),
    }

    /// `mmsghdr`s with room for one `UDP_SEGMENT` control message each, and without (a call without GSO
    /// must carry no control message: an empty one is `EINVAL`).
    struct Headers {
        gso: MultiHeaders<SockaddrStorage>,
        plain: MultiHeaders<SockaddrStorage>,
    }

    thread_local! {
        /// nix's `MultiHeaders` hold raw pointers and so are not `Send`, while the engine that owns an
        /// [`super::Egress`] moves between tokio's worker threads. Allocating them per flush would cost
        /// three allocations a turn; declaring them `Send` needs `unsafe`, which this crate forbids. So
        /// each thread that flushes keeps one set (≈ 400 KB per thread, allocated on its first flush).
        static HEADERS: RefCell<Headers> = RefCell::new(Headers {
            gso: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(u16))),
            plain: MultiHeaders::preallocate(BATCH, None),
        });
    }

    /// The reusable state of the batched sender.
    pub(super) struct Batch {
        pub(super) gso: bool,
        /// Queue indices sorted by destination (queue order within one).
        order: Vec<usize>,
        messages: Vec<Message>,
        addresses: Vec<Option<SockaddrStorage>>,
        /// Emptied between flushes (see [`recycle`]).
        iovecs: Vec<IoSlice<'static>>,
        entries: Vec<&'static [IoSlice<'static>]>,
        /// Tests: make every GSO call fail with `EIO`, as a kernel whose device refuses GSO would.
        #[cfg(test)]
        pub(super) refuse_gso: bool,
    }

    impl Batch {
        pub(super) fn new(gso: bool) -> Self {
            Self {
                gso,
                order: Vec::new(),
                messages: Vec::new(),
                addresses: Vec::with_capacity(BATCH),
                iovecs: Vec::new(),
                entries: Vec::with_capacity(BATCH),
                #[cfg(test)]
                refuse_gso: false,
            }
        }

        /// Groups the queue into messages, in the order they will be sent.
        fn plan(&mut self, queued: &[(SocketAddr, Vec<u8>)]) {
            self.order.clear();
            self.order.extend(0..queued.len());
            // Unstable sort with the index as tie-break: queue order per destination, no scratch buffer.
            self.order.sort_unstable_by_key(|&i| (queued[i].0, i));
            let max_segments = if self.gso { MAX_SEGMENTS } else { 1 };
            self.messages.clear();
            for (position, &i) in self.order.iter().enumerate() {
                let (destination, ref contents) = queued[i];
                let len = contents.len();
                let round = match self.messages.last_mut() {
                    Some(last) if last.destination == destination => {
                        if last.takes(len, max_segments) {
                            last.count += 1;
                            last.bytes += len;
                            last.closed = len < last.segment;
                            continue;
                        }
                        last.round + 1
                    }
                    _ => 0,
                };
                self.messages.push(Message {
                    destination,
                    first: position,
                    count: 1,
                    segment: len,
                    bytes: len,
                    closed: false,
                    round,
                });
            }
            // Rounds keep each destination's order; larger segments first within a round lets the
            // single datagrams of the round (audio, RTCP) ride in the same call as the GSO messages.
            self.messages
                .sort_unstable_by_key(|m| (m.round, Reverse(m.segment), m.first));
        }

        pub(super) fn send(
            &mut self,
            socket: &UdpSocket,
            queued: &[(SocketAddr, Vec<u8>)],
            flushed: &mut Flushed,
        ) {
            self.plan(queued);
            let fd = socket.as_raw_fd();
            let mut iovecs: Vec<IoSlice<'_>> = recycle(std::mem::take(&mut self.iovecs));
            iovecs.extend(self.order.iter().map(|&i| IoSlice::new(&queued[i].1)));
            let mut entries: Vec<&[IoSlice<'_>]> = recycle(std::mem::take(&mut self.entries));

            let mut next = 0;
            // Messages before this index go out as single datagrams although GSO is on (EMSGSIZE).
            let mut plain_until = 0;
            while next < self.messages.len() {
                let plain = !self.gso || next < plain_until;
                let start = next;
                let mut segment: Option<usize> = None;
                let mut longest_single = 0;
                entries.clear();
                self.addresses.clear();
                while next < self.messages.len() && plain == (!self.gso || next < plain_until) {
                    let m = self.messages[next];
                    let address = Some(SockaddrStorage::from(m.destination));
                    if plain {
                        if entries.len() + m.count > BATCH {
                            break;
                        }
                        for k in m.first..m.first + m.count {
                            entries.push(&iovecs[k..k + 1]);
                            self.addresses.push(address);
                        }
                    } else {
                        let fits = match (m.count > 1, segment) {
                            _ if entries.len() == BATCH => false,
                            (true, Some(s)) => s == m.segment,
                            (true, None) => longest_single <= m.segment,
                            (false, Some(s)) => m.segment <= s,
                            (false, None) => true,
                        };
                        if !fits {
                            break;
                        }
                        if m.count > 1 {
                            segment = Some(m.segment);
                        } else {
                            longest_single = longest_single.max(m.segment);
                        }
                        entries.push(&iovecs[m.first..m.first + m.count]);
                        self.addresses.push(address);
                    }
                    next += 1;
                }
                // A call of single datagrams only needs no control message (and so cannot trip a
                // device's GSO limits).
                // A GSO message is under MAX_GSO_BYTES with two or more segments, so its segment fits.
                let segment =
                    segment.map(|s| u16::try_from(s).expect("GSO segments are under 64 KiB"));
                match self.send_batch(fd, &entries, segment, flushed) {
                    None => {}
                    Some(Refused::Gso(at)) => {
                        tracing::info!("the kernel refused UDP GSO; sending single datagrams");
                        self.gso = false;
                        next = start + at;
                    }
                    Some(Refused::TooBig(at)) => {
                        next = start + at;
                        plain_until = next + 1;
                    }
                }
            }
            entries.clear();
            self.entries = recycle(entries);
            iovecs.clear();
            self.iovecs = recycle(iovecs);
        }

        /// Sends `entries` (one message each, to the matching `self.addresses`) with `sendmmsg`, as many
        /// calls as partial sends and errors take. Returns where GSO was refused, if it was.
        fn send_batch(
            &mut self,
            fd: RawFd,
            entries: &[&[IoSlice<'_>]],
            segment: Option<u16>,
            flushed: &mut Flushed,
        ) -> Option<Refused> {
            let size = segment.unwrap_or(0);
            let gso_cmsg = [ControlMessage::UdpGsoSegments(&size)];
            let cmsgs: &[ControlMessage<'_>] = if segment.is_some() { &gso_cmsg } else { &[] };
            let datagrams = |e: &[&[IoSlice<'_>]]| e.iter().map(|s| s.len() as u64).sum::<u64>();
            let mut at = 0;
            while at < entries.len() {
                flushed.syscalls += 1;
                #[cfg(test)]
                if self.refuse_gso && segment.is_some() {
                    return Some(Refused::Gso(at));
                }
                let sent = HEADERS.with_borrow_mut(|headers| {
                    let headers = if segment.is_some() {
                        &mut headers.gso
                    } else {
                        &mut headers.plain
                    };
                    // MSG_DONTWAIT: never block the router's loop, whatever mode the socket is in.
                    sendmmsg(
                        fd,
                        headers,
                        entries[at..].iter(),
                        &self.addresses[at..],
                        cmsgs,
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map(Iterator::count)
                });
                match sent {
                    Ok(n) if n > 0 => {
                        for entry in &entries[at..at + n] {
                            flushed.datagrams += entry.len() as u64;
                            flushed.bytes += entry.iter().map(|s| s.len() as u64).sum::<u64>();
                            flushed.gso_batches += u64::from(entry.len() > 1);
                        }
                        at += n;
                    }
                    Err(Errno::EINTR) => {}
                    Err(Errno::EIO | Errno::EINVAL) if segment.is_some() => {
                        return Some(Refused::Gso(at));
                    }
                    Err(Errno::EMSGSIZE) if segment.is_some() && entries[at].len() > 1 => {
                        return Some(Refused::TooBig(at));
                    }
                    Ok(_) | Err(Errno::EAGAIN | Errno::ENOBUFS) => {
                        // The socket buffer is full: the rest of the batch is dropped, as UDP would.
                        flushed.dropped += datagrams(&entries[at..]);
                        return None;
                    }
                    Err(e) => {
                        // Names one message (an unreachable network, a bad address): drop it, go on.
                        tracing::debug!(error = %e, "dropping a datagram the kernel refused");
                        flushed.dropped += datagrams(&entries[at..at + 1]);
                        at += 1;
                    }
                }
            }
            None
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::IoSlice;
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    use super::*;

    /// A datagram of `len` bytes saying who it is for and its place in that destination's stream.
    fn datagram(receiver: usize, seq: usize, len: usize) -> Vec<u8> {
        assert!(len >= 4);
        let mut d = vec![(receiver * 31 + seq) as u8; len];
        d[..2].copy_from_slice(&(receiver as u16).to_be_bytes());
        d[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
        d
    }

    fn sender() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    fn receivers(n: usize) -> Vec<UdpSocket> {
        (0..n)
            .map(|_| {
                let r = UdpSocket::bind("127.0.0.1:0").unwrap();
                r.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                r
            })
            .collect()
    }

    /// Queues `sizes[r]` to receiver `r` (receiver by receiver, as the engine drains session by
    /// session, unless `interleave`), flushes, and checks every receiver got exactly its datagrams,
    /// intact and in order.
    fn round_trip(egress: &mut Egress, sizes: &[Vec<usize>], interleave: bool) -> Flushed {
        let rx = receivers(sizes.len());
        let addrs: Vec<SocketAddr> = rx.iter().map(|r| r.local_addr().unwrap()).collect();
        if interleave {
            let longest = sizes.iter().map(Vec::len).max().unwrap_or(0);
            for seq in 0..longest {
                for (r, s) in sizes.iter().enumerate() {
                    if let Some(&len) = s.get(seq) {
                        egress.queue(addrs[r], datagram(r, seq, len));
                    }
                }
            }
        } else {
            for (r, s) in sizes.iter().enumerate() {
                for (seq, &len) in s.iter().enumerate() {
                    egress.queue(addrs[r], datagram(r, seq, len));
                }
            }
        }
        let flushed = egress.flush();
        let total: usize = sizes.iter().map(Vec::len).sum();
        assert_eq!(flushed.datagrams, total as u64, "{flushed:?}");
        assert_eq!(flushed.dropped, 0);
        let mut buf = vec![0u8; 65_536];
        for (r, socket) in rx.iter().enumerate() {
            for (seq, &len) in sizes[r].iter().enumerate() {
                let (n, _) = socket.recv_from(&mut buf).unwrap();
                assert_eq!(
                    &buf[..n],
                    &datagram(r, seq, len)[..],
                    "receiver {r} datagram {seq}"
                );
            }
            socket.set_nonblocking(true).unwrap();
            assert!(
                socket.recv_from(&mut buf).is_err(),
                "receiver {r}: extra datagram"
            );
        }
        flushed
    }

    /// A frame's packets: `n - 1` of `size` and a shorter last one.
    fn frame(n: usize, size: usize) -> Vec<usize> {
        let mut f = vec![size; n - 1];
        f.push(size / 3);
        f
    }

    #[test]
    fn many_destinations_get_their_datagrams_intact_and_in_order_with_few_syscalls() {
        let mut egress = Egress::new(sender());
        let sizes = vec![frame(10, 1100); 50];
        let flushed = round_trip(&mut egress, &sizes, false);
        assert!(flushed.syscalls < flushed.datagrams, "{flushed:?}");
        assert_eq!(flushed.bytes, 50 * (9 * 1100 + 366));
        if egress.gso() {
            // One GSO message per receiver, all in one sendmmsg.
            assert_eq!(flushed.syscalls, 1, "{flushed:?}");
            assert_eq!(flushed.gso_batches, 50);
        }
    }

    #[test]
    fn a_mix_of_sizes_keeps_each_destinations_order() {
        let mut egress = Egress::new(sender());
        // Video packets, audio, RTCP, a second frame, a size change in the middle of a run, an empty
        // datagram and one over the GSO limits of one message.
        let mix = |r: usize| {
            let mut s = frame(7, 1180);
            s.extend([160, 80, 1180, 1180, 900, 900, 1000, 4]);
            s.extend(frame(4, 1024 + r));
            s.extend(vec![1000; 70]);
            s.extend([16, 200, 200]);
            s
        };
        let sizes: Vec<Vec<usize>> = (0..30).map(mix).collect();
        let flushed = round_trip(&mut egress, &sizes, true);
        assert!(flushed.syscalls * 4 < flushed.datagrams, "{flushed:?}");
        // Again on the same Egress: the reused buffers hold nothing of the first flush.
        let flushed = round_trip(&mut egress, &sizes[..5], false);
        assert!(flushed.syscalls < flushed.datagrams, "{flushed:?}");
    }

    #[test]
    fn without_gso_sendmmsg_alone_batches_across_destinations() {
        let mut egress = Egress::without_gso(sender());
        assert!(!egress.gso());
        let sizes = vec![frame(10, 1100); 150];
        let flushed = round_trip(&mut egress, &sizes, false);
        // 1,500 datagrams, 1,024 per call.
        assert_eq!(flushed.syscalls, 2, "{flushed:?}");
        assert_eq!(flushed.gso_batches, 0);
    }

    #[test]
    fn gso_refused_at_run_time_falls_back_without_losing_a_datagram() {
        let mut egress = Egress::new(sender());
        if !egress.gso() {
            return; // Nothing to refuse on a kernel without GSO.
        }
        egress.batch.refuse_gso = true;
        let sizes: Vec<Vec<usize>> = (0..20).map(|r| frame(8, 1000 + r)).collect();
        let flushed = round_trip(&mut egress, &sizes, false);
        assert!(!egress.gso());
        assert_eq!(flushed.gso_batches, 0);
        // The refused call, then sendmmsg alone.
        assert_eq!(flushed.syscalls, 2, "{flushed:?}");
    }

    #[test]
    fn a_failed_send_drops_only_its_datagram() {
        let mut egress = Egress::new(sender());
        let rx = receivers(1);
        let to = rx[0].local_addr().unwrap();
        // An IPv6 destination on an IPv4 socket: the kernel refuses that message alone.
        let nowhere: SocketAddr = "[::1]:9".parse().unwrap();
        egress.queue(to, datagram(0, 0, 100));
        egress.queue(nowhere, datagram(1, 0, 100));
        egress.queue(to, datagram(0, 1, 100));
        let flushed = egress.flush();
        assert_eq!((flushed.datagrams, flushed.dropped), (2, 1), "{flushed:?}");
        let mut buf = [0u8; 200];
        for seq in 0..2 {
            let (n, _) = rx[0].recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &datagram(0, seq, 100)[..]);
        }
    }

    #[test]
    fn an_empty_flush_makes_no_syscall() {
        let mut egress = Egress::new(sender());
        assert_eq!(egress.flush(), Flushed::default());
    }

    #[test]
    fn recycled_vectors_keep_their_allocation() {
        let data = [1u8, 2, 3];
        let mut v: Vec<IoSlice<'_>> = Vec::with_capacity(64);
        v.push(IoSlice::new(&data));
        let stored: Vec<IoSlice<'static>> = recycle(v);
        assert!(stored.capacity() >= 64);
        let again: Vec<IoSlice<'_>> = recycle(stored);
        assert!(again.capacity() >= 64);
    }
}
