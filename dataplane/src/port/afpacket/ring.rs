//! The receive rings: TPACKET_V2 slots mapped from the kernel, read and
//! handed back in order.

use super::*;

/// A port's two rings, for frames up to [`SMALL_MAX`] bytes in `blocks`
/// blocks and for bigger ones in [`BIG_RING_FACTOR`] times as many (at
/// most [`BIG_RING_MAX_BLOCKS`]); bound later, by [`bind_rings`].
pub(super) fn open_rings(name: &str, blocks: u32) -> Result<[Ring; 2], PortError> {
    let big_blocks = (blocks * BIG_RING_FACTOR).min(BIG_RING_MAX_BLOCKS);
    Ok([
        Ring::open(name, FRAME_SIZE, blocks)?,
        Ring::open(name, BIG_FRAME_SIZE, big_blocks)?,
    ])
}

#[repr(C)]
pub(super) struct TpacketReq {
    pub(super) block_size: u32,
    pub(super) block_nr: u32,
    pub(super) frame_size: u32,
    pub(super) frame_nr: u32,
}

#[repr(C)]
pub(super) struct Tpacket2Hdr {
    pub(super) status: u32,
    pub(super) len: u32,
    pub(super) snaplen: u32,
    pub(super) mac: u16,
    pub(super) net: u16,
    pub(super) sec: u32,
    pub(super) nsec: u32,
    pub(super) vlan_tci: u16,
    pub(super) vlan_tpid: u16,
    pub(super) padding: [u8; 4],
}

#[repr(C)]
#[derive(Default)]
pub(super) struct TpacketStats {
    pub(super) packets: u32,
    pub(super) drops: u32,
}

/// A receiving socket and its mmap'ed ring.
pub(super) struct Ring {
    pub(super) fd: OwnedFd,
    pub(super) base: *mut u8,
    pub(super) len: usize,
    pub(super) frames: usize,
    pub(super) frame_size: usize,
    /// First slot not yet handed back to the kernel.
    pub(super) head: usize,
    /// Slots taken by the current batch (including ones skipped).
    pub(super) taken: usize,
}

impl Ring {
    pub(super) fn slot(&self, index: usize) -> *mut u8 {
        let per_block = BLOCK_SIZE as usize / self.frame_size;
        let offset =
            (index / per_block) * BLOCK_SIZE as usize + (index % per_block) * self.frame_size;
        // SAFETY: index < frames, so offset + frame_size is inside the mapping.
        unsafe { self.base.add(offset) }
    }

    /// The status word of slot `index`, shared with the kernel.
    pub(super) fn status(&self, index: usize) -> &AtomicU32 {
        // SAFETY: the slot starts with the 4-byte aligned tp_status of a
        // tpacket2_hdr inside the mapping, which lives as long as `self`;
        // the word is only ever accessed atomically while the kernel owns
        // the slot (a slot that is ours may also be read whole, as in
        // take_slot).
        unsafe { AtomicU32::from_ptr(self.slot(index).cast()) }
    }

    /// The status of the next slot to take, if the kernel has filled it
    /// and the batch has not taken every slot yet. Acquire: the frame's
    /// bytes are read only after the status says they are ours.
    pub(super) fn next_status(&self) -> Option<u32> {
        if self.taken == self.frames {
            return None;
        }
        let index = (self.head + self.taken) % self.frames;
        let status = self.status(index).load(Ordering::Acquire);
        (status & TP_STATUS_USER != 0).then_some(status)
    }

    /// When the kernel received the next slot's frame, in nanoseconds (of
    /// the wall clock); call only once [`Ring::next_status`] said it is ours.
    pub(super) fn next_time(&self) -> u64 {
        let slot = self.slot((self.head + self.taken) % self.frames);
        // SAFETY: the slot starts with a tpacket2_hdr that is ours (its
        // status is TP_STATUS_USER); copied out, as in take_slot.
        let hdr = unsafe { std::ptr::read(slot as *const Tpacket2Hdr) };
        u64::from(hdr.sec) * 1_000_000_000 + u64::from(hdr.nsec)
    }

    /// A receiving socket (bound later, by [`AfPacketPort::bind`]) with a
    /// ring of `blocks` blocks of `frame_size` slots.
    pub(super) fn open(name: &str, frame_size: u32, blocks: u32) -> Result<Ring, PortError> {
        // Protocol 0: nothing is received until bind(), after the ring exists.
        let fd =
            packet_socket().map_err(|_| PortError::os(name, "AF_PACKET socket (are you root?)"))?;
        let os = |what| {
            move |e: io::Error| PortError::Os {
                name: name.to_string(),
                what,
                source: e,
            }
        };
        setsockopt(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, &1i32).map_err(os("PACKET_VNET_HDR"))?;
        setsockopt(&fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)
            .map_err(os("PACKET_VERSION"))?;
        let per_block = BLOCK_SIZE / frame_size;
        let req = TpacketReq {
            block_size: BLOCK_SIZE,
            block_nr: blocks,
            frame_size,
            frame_nr: blocks * per_block,
        };
        setsockopt(&fd, libc::SOL_PACKET, PACKET_RX_RING, &req).map_err(os("PACKET_RX_RING"))?;
        let len = (BLOCK_SIZE * blocks) as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket;
        // the result is checked and unmapped in Ring::drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(PortError::os(name, "mmap of the receive ring"));
        }
        // Unmapped by Ring::drop from here on, error or not.
        let ring = Ring {
            fd,
            base: base.cast(),
            len,
            frames: req.frame_nr as usize,
            frame_size: frame_size as usize,
            head: 0,
            taken: 0,
        };
        // Frames bigger than a slot (BIG TCP, say) wait on the socket's
        // queue, charged to its receive buffer, as big as the ring.
        setsockopt(&ring.fd, libc::SOL_PACKET, PACKET_COPY_THRESH, &1i32)
            .map_err(os("PACKET_COPY_THRESH"))?;
        let rcvbuf = len.min(1 << 30) as i32;
        if setsockopt(&ring.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
            let _ = setsockopt(&ring.fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf);
        }
        // Best effort: older kernels lack it, and forwarding works without.
        let _ = setsockopt(&ring.fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &1i32);
        Ok(ring)
    }

    /// Hands the batch's slots back to the kernel.
    pub(super) fn release(&mut self) {
        for i in 0..self.taken {
            // Release: our reads (and the VLAN rewrite) of the frame happen
            // before the kernel may reuse the slot.
            self.status((self.head + i) % self.frames)
                .store(TP_STATUS_KERNEL, Ordering::Release);
        }
        self.head = (self.head + self.taken) % self.frames;
        self.taken = 0;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; nothing refers to
        // the mapping once the port is dropped.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Frames the kernel dropped on `ring`'s socket (full ring) since last asked.
pub(super) fn kernel_drops(ring: &Ring) -> u64 {
    let mut stats = TpacketStats::default();
    let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `stats`; reading
    // PACKET_STATISTICS also resets the kernel's counters.
    let r = unsafe {
        libc::getsockopt(
            ring.fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            (&mut stats as *mut TpacketStats).cast(),
            &mut len,
        )
    };
    if r == 0 {
        u64::from(stats.drops)
    } else {
        0
    }
}
