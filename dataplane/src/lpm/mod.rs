//! Longest-prefix match for IPv4 and IPv6: one engine, [`Poptrie`] (Asai
//! and Ohara, "Poptrie: A Compressed Trie with Population Count for Fast
//! and Scalable Software IP Routing Table Lookup", SIGCOMM 2015), over any
//! key width ([`Key`]: `u32` for IPv4, `u128` for IPv6).
//!
//! The routes themselves live in a binary trie ([`rib::Rib`]), the source of
//! truth for changes and for listing; the lookup structure is compiled from
//! it, whole at first and then one region at a time on each change.

pub mod poptrie;
pub mod rib;

pub use poptrie::{LpmError, Poptrie};

/// An address as a number, most significant bit first: what the tables
/// are keyed by.
pub trait Key: Copy + Eq + Ord + std::hash::Hash + std::fmt::Debug + Default + 'static {
    /// Bits in the key.
    const BITS: u32;
    /// Bits of the direct-pointing table (its index is the key's top bits).
    const DIRECT_BITS: u32;
    /// Bit `i` (0 is the most significant).
    fn bit(self, i: u32) -> usize;
    /// The 6 bits starting at bit `off` (0 is the most significant), with
    /// zeros past the end of the key.
    fn chunk(self, off: u32) -> usize;
    /// The top [`Key::DIRECT_BITS`] bits.
    fn direct(self) -> usize;
    /// The key with only its top `len` bits kept.
    fn masked(self, len: u8) -> Self;
    /// The key with bit `i` (0 is the most significant) set.
    fn with_bit(self, i: u32) -> Self;
    /// The key whose top [`Key::DIRECT_BITS`] bits are `slot`, the rest 0.
    fn from_direct(slot: usize) -> Self;
}

impl Key for u32 {
    const BITS: u32 = 32;
    const DIRECT_BITS: u32 = 18;

    #[inline]
    fn bit(self, i: u32) -> usize {
        ((self >> (31 - i)) & 1) as usize
    }

    #[inline]
    fn chunk(self, off: u32) -> usize {
        // As a 64-bit number, so a chunk past bit 31 reads zeros.
        (((u64::from(self) << 32) << off) >> 58) as usize
    }

    #[inline]
    fn direct(self) -> usize {
        (self >> (32 - Self::DIRECT_BITS)) as usize
    }

    #[inline]
    fn masked(self, len: u8) -> u32 {
        crate::wire::ipv4net::mask(self, len)
    }

    #[inline]
    fn with_bit(self, i: u32) -> u32 {
        self | (1 << (31 - i))
    }

    #[inline]
    fn from_direct(slot: usize) -> u32 {
        (slot as u32) << (32 - Self::DIRECT_BITS)
    }
}

impl Key for u128 {
    const BITS: u32 = 128;
    const DIRECT_BITS: u32 = 18;

    #[inline]
    fn bit(self, i: u32) -> usize {
        ((self >> (127 - i)) & 1) as usize
    }

    #[inline]
    fn chunk(self, off: u32) -> usize {
        // Chunks start at 18 + 6k, at most 126: the shift stays under 128.
        ((self << off) >> 122) as usize
    }

    #[inline]
    fn direct(self) -> usize {
        (self >> (128 - Self::DIRECT_BITS)) as usize
    }

    #[inline]
    fn masked(self, len: u8) -> u128 {
        match len {
            0 => 0,
            l if l >= 128 => self,
            l => self & !(u128::MAX >> l),
        }
    }

    #[inline]
    fn with_bit(self, i: u32) -> u128 {
        self | (1 << (127 - i))
    }

    #[inline]
    fn from_direct(slot: usize) -> u128 {
        (slot as u128) << (128 - Self::DIRECT_BITS)
    }
}
