//! Reassembly of datagrams addressed to the router (RFC 791 3.2, RFC 815):
//! a fragmented ping to a router address is put together and answered.
//!
//! Bounded: at most [`MAX_DATAGRAMS`] datagrams at a time, each at most
//! [`MAX_PAYLOAD`] bytes, for at most [`REASSEMBLY_MS`]; the buffers are
//! made once, at start. A fragment that overlaps one already held drops its
//! whole datagram, as Linux has done since FragmentSmack (CVE-2018-5391)
//! and RFC 5722 asks of IPv6: overlaps are attacks, not retransmissions.

use crate::wire::ipv4::{IpProtocol, Ipv4Packet};
use std::net::Ipv4Addr;

/// Datagrams put together at once; a new one takes the place of the oldest.
pub const MAX_DATAGRAMS: usize = 8;
/// The largest datagram put back together, header included: what a buffer
/// of the router's pool holds after its virtio-net and Ethernet headers (a
/// jumbo ping fits).
pub const MAX_DATAGRAM: usize = crate::emit::BUF_SIZE - crate::wire::VNET_HDR_LEN - 14;
/// The largest payload: what is left after the longest header.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - 60;
/// How long the fragments of a datagram may take to come (RFC 1122
/// 3.3.2 suggests 60 to 120 s; fragments on a lab's links come within
/// milliseconds, and a short time frees a slot taken by a lost fragment).
pub const REASSEMBLY_MS: u64 = 15_000;

const BLOCKS: usize = MAX_PAYLOAD / 8;
const WORDS: usize = BLOCKS.div_ceil(64);

/// A datagram, as its fragments name it: (source, destination, protocol,
/// identification).
type Key = (Ipv4Addr, Ipv4Addr, IpProtocol, u16);

/// A datagram being put together.
struct Slot {
    key: Option<Key>,
    until: u64,
    /// The first fragment's header (options included), once it came.
    header: [u8; 60],
    header_len: usize,
    payload: Box<[u8]>,
    /// Which 8-byte blocks of the payload came.
    have: [u64; WORDS],
    blocks: usize,
    /// The payload's length, once the last fragment came (0 before).
    total: usize,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            key: None,
            until: 0,
            header: [0; 60],
            header_len: 0,
            payload: vec![0; MAX_PAYLOAD].into_boxed_slice(),
            have: [0; WORDS],
            blocks: 0,
            total: 0,
        }
    }

    fn reset(&mut self, key: Option<Key>, until: u64) {
        self.key = key;
        self.until = until;
        self.header_len = 0;
        self.have = [0; WORDS];
        self.blocks = 0;
        self.total = 0;
    }

    fn complete(&self) -> bool {
        self.total != 0 && self.header_len != 0 && self.blocks == self.total.div_ceil(8)
    }

    fn has(&self, block: usize) -> bool {
        self.have[block / 64] & (1 << (block % 64)) != 0
    }
}

/// What a fragment did to its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Held; more fragments are to come.
    Held,
    /// The datagram is whole: [`Reassembly::take`] it from this slot.
    Complete(usize),
    /// The datagram is too big, or this fragment is malformed or overlaps
    /// another: the datagram is dropped.
    Dropped,
}

/// The datagrams being put together.
pub struct Reassembly {
    slots: Vec<Slot>,
    /// Datagrams given up: timed out, or pushed out by newer ones.
    pub timed_out: u64,
    pub reassembled: u64,
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly {
            slots: (0..MAX_DATAGRAMS).map(|_| Slot::new()).collect(),
            timed_out: 0,
            reassembled: 0,
        }
    }
}

impl Reassembly {
    /// Adds a fragment (a checked packet with MF set or an offset).
    pub fn add<T: AsRef<[u8]>>(&mut self, ip: &Ipv4Packet<T>, now: u64) -> Added {
        let key = (ip.src(), ip.dst(), ip.protocol(), ip.ident());
        let at = match self.slots.iter().position(|s| s.key == Some(key)) {
            Some(i) => i,
            None => {
                // A free slot, else the one that expires first.
                let i = (0..self.slots.len())
                    .min_by_key(|&i| self.slots[i].key.map_or(0, |_| self.slots[i].until))
                    .unwrap_or(0);
                if self.slots[i].key.is_some() {
                    self.timed_out += 1;
                }
                self.slots[i].reset(Some(key), now + REASSEMBLY_MS);
                i
            }
        };
        let s = &mut self.slots[at];
        let (off, data, more) = (ip.frag_offset(), ip.payload(), ip.more_frags());
        let end = off + data.len();
        // Every fragment but the last carries a multiple of 8 bytes; none
        // goes past the end the last one set, or past what a slot holds.
        let bad = (more && data.len() % 8 != 0)
            || data.is_empty()
            || end > MAX_PAYLOAD
            || (s.total != 0 && (end > s.total || (!more && end != s.total)))
            // The last fragment: nothing may have come past its end.
            || (!more && (end.div_ceil(8)..BLOCKS).any(|b| s.has(b)));
        // Checked only once the range is known to be inside the bitmap.
        let blocks = off / 8..end.div_ceil(8);
        if bad || blocks.clone().any(|b| s.has(b)) {
            s.reset(None, 0);
            return Added::Dropped;
        }
        for b in blocks {
            s.have[b / 64] |= 1 << (b % 64);
            s.blocks += 1;
        }
        s.payload[off..end].copy_from_slice(data);
        if !more {
            s.total = end;
        }
        if off == 0 {
            let h = ip.header();
            s.header[..h.len()].copy_from_slice(h);
            s.header_len = h.len();
        }
        if s.complete() {
            self.reassembled += 1;
            Added::Complete(at)
        } else {
            Added::Held
        }
    }

    /// Writes the whole datagram of slot `at` into `out` (header with its
    /// total length, no fragment bits, a new checksum) and frees the slot;
    /// returns its length: 0 (the datagram dropped) if it is longer than
    /// `out`, which holds [`MAX_DATAGRAM`] (a long header with a long
    /// payload).
    pub fn take(&mut self, at: usize, out: &mut [u8]) -> usize {
        let s = &mut self.slots[at];
        let (h, total) = (s.header_len, s.header_len + s.total);
        if total > out.len() {
            s.reset(None, 0);
            return 0;
        }
        out[..h].copy_from_slice(&s.header[..h]);
        out[h..total].copy_from_slice(&s.payload[..s.total]);
        let mut ip = Ipv4Packet::new_unchecked(&mut out[..total]);
        let ttl = ip.ttl();
        ip.set_fragment(total as u16, 0, false, ttl);
        ip.fill_checksum();
        s.reset(None, 0);
        total
    }

    /// Forgets the datagrams past their time.
    pub fn expire(&mut self, now: u64) {
        for s in &mut self.slots {
            if s.key.is_some() && s.until <= now {
                s.reset(None, 0);
                self.timed_out += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::{IpProtocol, Ipv4Repr};

    /// Fragment `payload[off..off + len]` of datagram `ident`.
    fn fragment(payload: &[u8], off: usize, len: usize, ident: u16) -> Vec<u8> {
        let header = Ipv4Repr {
            src: "10.0.0.2".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            protocol: IpProtocol::Icmp,
            ttl: 64,
            tos: 0,
            ident,
            dont_frag: false,
            more_frags: off + len < payload.len(),
            frag_offset: off,
            payload_len: len,
        };
        let mut p = vec![0u8; header.buffer_len()];
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        header.emit(&mut ip);
        ip.payload_mut().copy_from_slice(&payload[off..off + len]);
        p
    }

    fn add(r: &mut Reassembly, p: &[u8], now: u64) -> Added {
        r.add(&Ipv4Packet::new_checked(p).unwrap(), now)
    }

    #[test]
    fn puts_fragments_together_in_any_order() {
        let payload: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let mut r = Reassembly::default();
        assert_eq!(
            add(&mut r, &fragment(&payload, 400, 200, 1), 0),
            Added::Held
        );
        assert_eq!(add(&mut r, &fragment(&payload, 0, 200, 1), 0), Added::Held);
        let Added::Complete(at) = add(&mut r, &fragment(&payload, 200, 200, 1), 0) else {
            panic!("whole")
        };
        let mut out = vec![0u8; 1000];
        let n = r.take(at, &mut out);
        let ip = Ipv4Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(ip.payload(), &payload[..]);
        assert!(!ip.more_frags() && ip.frag_offset() == 0);
    }

    #[test]
    fn overlaps_and_odd_sizes_drop_the_datagram_and_time_frees_slots() {
        let payload = vec![7u8; 600];
        let mut r = Reassembly::default();
        add(&mut r, &fragment(&payload, 0, 208, 2), 0);
        assert_eq!(
            add(&mut r, &fragment(&payload, 200, 200, 2), 0),
            Added::Dropped
        );
        assert_eq!(
            add(&mut r, &fragment(&payload, 0, 204, 3), 0),
            Added::Dropped
        );
        // Offsets past the bitmap, the longest datagram, and holes.
        let far = vec![0u8; 9300];
        assert_eq!(add(&mut r, &fragment(&far, 9216, 8, 4), 0), Added::Dropped);
        let big = vec![1u8; MAX_PAYLOAD];
        add(&mut r, &fragment(&big, 0, 8000, 5), 0);
        let Added::Complete(at) = add(&mut r, &fragment(&big, 8000, MAX_PAYLOAD - 8000, 5), 0)
        else {
            panic!("the longest payload")
        };
        let mut out = vec![0u8; MAX_DATAGRAM];
        assert_eq!(r.take(at, &mut out), 20 + MAX_PAYLOAD);
        let holes = vec![2u8; 2000];
        assert_eq!(add(&mut r, &fragment(&holes, 1000, 800, 7), 0), Added::Held);
        let last = fragment(&holes[..1000], 992, 8, 7);
        assert_eq!(add(&mut r, &last, 0), Added::Dropped, "data past the end");
        for ident in 10..30 {
            add(&mut r, &fragment(&payload, 0, 200, ident), 0);
        }
        assert_eq!(r.timed_out, 12, "the oldest make room, counted");
        r.expire(REASSEMBLY_MS);
        assert_eq!(r.timed_out, 20);
    }
}
