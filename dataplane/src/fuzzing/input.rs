//! A fuzzer's input as steps for the [`Lab`]: frames in on its ports, time
//! passing, traces armed and read, dry runs.
//!
//! The bytes are a list of records, `op len-lo len-hi payload[len]` (a
//! record whose length runs past the end takes what is left). In `op`:
//!
//! | bits | meaning |
//! | ---- | ------- |
//! | 0-1  | port: 0 inside, 1 neighbour, 2 and 3 outside |
//! | 2-4  | kind, below |
//! | 5    | hold the frame for the same batch as the port's next frame |
//!
//! | kind | payload |
//! | ---- | ------- |
//! | 0 | an Ethernet frame, fed as it is (behind an empty virtio header) |
//! | 1 | an Ethernet frame, its checksums repaired first |
//! | 2 | a [`FrameSpec`], decoded with `arbitrary` |
//! | 3 | a 10-byte virtio-net header, then an Ethernet frame, checksums repaired |
//! | 4 | a 10-byte virtio-net header, then a [`FrameSpec`] |
//! | 5 | a [`FrameSpec`], run as a dry-run trace |
//! | 6 | time passing: milliseconds, 2 bytes little-endian, times 16 |
//! | 7 | byte 0 even: arm a trace and captures; odd: stop and read them |
//!
//! Kinds 0, 1 and 3 let a corpus start from real frames, which byte-level
//! mutation then varies; kinds 2, 4 and 5 let the fuzzer vary fields
//! without breaking lengths and checksums.

use super::frame::{repair_checksums, FrameSpec};
use super::lab::{Lab, LabPort};
use crate::wire::VNET_HDR_LEN;
use arbitrary::{Arbitrary, Unstructured};

/// Most records run from one input.
pub const MAX_STEPS: usize = 64;

/// What a record's kind says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Raw = 0,
    Repaired = 1,
    Spec = 2,
    VnetRepaired = 3,
    VnetSpec = 4,
    DrySpec = 5,
    Wait = 6,
    Trace = 7,
}

/// One record of an input.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub port: LabPort,
    pub kind: Kind,
    pub hold: bool,
    pub payload: &'a [u8],
}

/// The records of `data`, at most [`MAX_STEPS`].
pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (&op, rest) = data.split_first()?;
        let len = match rest {
            [lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let (payload, next) = rest.split_at(len.min(rest.len()));
        data = next;
        let port = match op & 3 {
            0 => LabPort::Inside,
            1 => LabPort::Neighbour,
            _ => LabPort::Outside,
        };
        let kind = match (op >> 2) & 7 {
            0 => Kind::Raw,
            1 => Kind::Repaired,
            2 => Kind::Spec,
            3 => Kind::VnetRepaired,
            4 => Kind::VnetSpec,
            5 => Kind::DrySpec,
            6 => Kind::Wait,
            _ => Kind::Trace,
        };
        Some(Record {
            port,
            kind,
            hold: op & 0x20 != 0,
            payload,
        })
    })
    .take(MAX_STEPS)
}

/// Appends a record to `out`.
pub fn push_record(out: &mut Vec<u8>, port: LabPort, kind: Kind, hold: bool, payload: &[u8]) {
    let port = match port {
        LabPort::Inside => 0,
        LabPort::Neighbour => 1,
        LabPort::Outside => 2,
    };
    out.push(port | (kind as u8) << 2 | if hold { 0x20 } else { 0 });
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
}

impl Lab {
    /// Runs a fuzzer's input (see the [module](self) for its format)
    /// through a lab.
    pub fn run(&mut self, data: &[u8]) {
        for r in records(data) {
            self.step(r);
        }
        self.flush();
        self.trace(false);
    }

    fn step(&mut self, r: Record<'_>) {
        let spec = |b: &[u8]| FrameSpec::arbitrary_take_rest(Unstructured::new(b)).ok();
        let frame = match r.kind {
            Kind::Raw | Kind::Repaired => {
                let mut f = vec![0u8; VNET_HDR_LEN];
                f.extend_from_slice(r.payload);
                f
            }
            Kind::VnetRepaired => {
                let mut f = r.payload.to_vec();
                f.resize(f.len().max(VNET_HDR_LEN), 0);
                f
            }
            Kind::Spec | Kind::DrySpec => match spec(r.payload) {
                Some(s) => s.build(r.port, self.router_macs),
                None => return,
            },
            Kind::VnetSpec => {
                let (vnet, rest) = r.payload.split_at(r.payload.len().min(VNET_HDR_LEN));
                let Some(s) = spec(rest) else { return };
                let mut f = s.build(r.port, self.router_macs);
                f[..vnet.len()].copy_from_slice(vnet);
                f
            }
            Kind::Wait => {
                let ms = match r.payload {
                    [lo, hi, ..] => u64::from(u16::from_le_bytes([*lo, *hi])),
                    [lo] => u64::from(*lo),
                    [] => 1000,
                };
                self.wait(ms * 16);
                return;
            }
            Kind::Trace => {
                self.trace(r.payload.first().is_some_and(|b| b % 2 == 0));
                return;
            }
        };
        let mut frame = frame;
        if matches!(r.kind, Kind::Repaired | Kind::VnetRepaired) {
            repair_checksums(&mut frame[VNET_HDR_LEN..]);
        }
        if r.kind == Kind::DrySpec {
            self.dry_run(r.port, frame);
        } else {
            self.feed(r.port, frame, r.hold);
        }
    }
}
