//! A port on a TAP device that patchbay creates (or opens, if a persistent
//! one of that name exists), so a VM or a namespace host on the TAP is on
//! the switch.
//!
//! The device is opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD` accepting
//! checksum and TSO offloads: the host behind the TAP may hand us 64 KiB
//! TCP super-frames with partial checksums, described by the virtio-net
//! header, exactly like a veth peer does to an AF_PACKET port.

use super::sys;
use super::{tx_drop_reason, LinkState, Port, PortError, PortKind, RxBatch, TxFrame};
use crate::counters::{DropReason, PortCounters};
use crate::wire::vlan::HEAD_MAX;
use crate::wire::vnet::VNET_HDR_LEN;
use crate::BATCH;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// From <linux/if_tun.h>.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;

/// Room for the virtio header, a 64 KiB GSO frame and a VLAN tag.
const BUF_SIZE: usize = VNET_HDR_LEN + 65_536 + 64;

/// A port on a TAP device.
pub struct TapPort {
    name: String,
    fd: OwnedFd,
    rx_batch: RxBatch,
}

impl TapPort {
    /// What [`TapPort::open`] can tell without touching anything: an
    /// interface of that name, if there is one, must be a TAP device (it
    /// is attached to; one that is not there is made).
    pub fn check(name: &str) -> Result<(), PortError> {
        if sys::if_index(name).is_none() {
            return Ok(());
        }
        match sys::driver_info(name) {
            Ok((driver, bus)) if driver == "tun" && bus == "tap" => Ok(()),
            _ => Err(PortError::NotTap(name.to_string())),
        }
    }

    pub fn open(name: &str) -> Result<TapPort, PortError> {
        Self::check(name)?;
        // SAFETY: open(2) of a constant path; the result is checked.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(PortError::os(name, "open /dev/net/tun"));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = sys::ifreq(name);
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: TUNSETIFF reads and updates `req`, which outlives the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            let err = io::Error::last_os_error();
            // EINVAL for a name taken by a device of another kind (made
            // since the check).
            if err.raw_os_error() == Some(libc::EINVAL) && sys::if_index(name).is_some() {
                return Err(PortError::NotTap(name.to_string()));
            }
            return Err(PortError::Os {
                name: name.to_string(),
                what: "TUNSETIFF (create or attach the TAP device)",
                source: err,
            });
        }
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(PortError::os(name, "TUNSETVNETHDRSZ"));
        }
        let offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        // SAFETY: TUNSETOFFLOAD takes the flags by value.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, offloads as libc::c_ulong) } < 0 {
            return Err(PortError::os(name, "TUNSETOFFLOAD"));
        }
        if let Err(e) = sys::set_if_up(name) {
            log::warn!("port {name}: could not set the TAP device up: {e}");
        }
        Ok(TapPort {
            name: name.to_string(),
            fd,
            rx_batch: RxBatch::new(BUF_SIZE),
        })
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn recv(&mut self, max: usize, counters: &mut PortCounters) -> io::Result<usize> {
        self.rx_batch.clear();
        let max = max.min(BATCH);
        // Bounded, so a device that keeps failing cannot hold the loop.
        for _ in 0..2 * max {
            if self.rx_batch.len() == max {
                break;
            }
            let buf = self.rx_batch.next_buf();
            // SAFETY: reads at most buf.len() bytes into the buffer.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    // The frame that failed is gone; the next ones may be fine.
                    _ => {
                        counters.drop(DropReason::RxError);
                        continue;
                    }
                }
            }
            let len = r as usize;
            if len > buf.len() {
                // The kernel reports the full length of a frame it cut short.
                counters.drop(DropReason::Truncated);
                continue;
            }
            if len < VNET_HDR_LEN + 14 {
                counters.drop(DropReason::Runt);
                continue;
            }
            self.rx_batch.push(len);
        }
        Ok(self.rx_batch.len())
    }

    fn frame(&self, index: usize) -> &[u8] {
        self.rx_batch.frame(index)
    }

    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        self.rx_batch.frame_mut(index)
    }

    fn release(&mut self) {
        self.rx_batch.clear();
    }

    fn send<'a>(
        &mut self,
        frames: &mut dyn Iterator<Item = TxFrame<'a>>,
        counters: &mut PortCounters,
    ) {
        let mut head = [0u8; HEAD_MAX];
        for frame in frames {
            let Some((h, rest)) = frame.pieces(&mut head) else {
                counters.drop(DropReason::Runt);
                continue;
            };
            let iov = [
                libc::iovec {
                    iov_base: h.as_ptr() as *mut libc::c_void,
                    iov_len: h.len(),
                },
                libc::iovec {
                    iov_base: rest.as_ptr() as *mut libc::c_void,
                    iov_len: rest.len(),
                },
            ];
            // SAFETY: writev reads the two live slices the iovecs describe
            // (a tun device takes one frame per write).
            let r = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            if r < 0 {
                counters.drop(tx_drop_reason(&io::Error::last_os_error()));
            } else {
                counters.tx_packets += 1;
                counters.tx_bytes += frame.wire_len() as u64;
            }
        }
    }

    /// A TAP device may be moved to another namespace (where its host
    /// lives) and stay attached to our descriptor, so "no such interface
    /// here" does not mean gone: only a device we can see down is down.
    fn link_state(&self) -> LinkState {
        match sys::link_state(&self.name) {
            LinkState::Down => LinkState::Down,
            LinkState::Up | LinkState::Gone => LinkState::Up,
        }
    }
}
