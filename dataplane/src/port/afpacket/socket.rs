//! The sockets behind a port: opening and binding them, the fanout group
//! and its BPF program that splits frames between the rings by length.

use super::*;

#[repr(C)]
pub(super) struct PacketMreq {
    pub(super) ifindex: i32,
    pub(super) kind: u16,
    pub(super) alen: u16,
    pub(super) address: [u8; 8],
}

/// Binds the two rings' sockets to `ifindex` in one fanout group whose
/// classic BPF program sends each frame to ring 0 or 1 by its length, so
/// that the kernel hands each frame to patchbay once. No frame is seen
/// twice on the way: ring 1 takes nothing (a socket filter) until it is in
/// the group, and the group sends every frame to ring 0 (bigger ones
/// through its queue) until the program is in. (A frame may be missed in
/// the instant ring 0's own hook gives way to the group's, as with any
/// socket that joins a fanout group.)
///
/// The inner result says whether the rings are split; if they cannot be,
/// ring 0 takes every frame (ring 1 is unhooked, or a member the group
/// sends nothing to).
pub(super) fn bind_rings(rings: &[Ring; 2], ifindex: u32) -> io::Result<Result<(), io::Error>> {
    use libc::{BPF_ABS, BPF_B, BPF_JEQ, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_LEN, BPF_RET, BPF_W};
    let mut none = [bpf(BPF_RET | BPF_K, 0, 0, 0)];
    // A kernel older than 6.2 ignores the group's IGNORE_OUTGOING flag, and
    // in a group a socket's own PACKET_IGNORE_OUTGOING is not asked: there,
    // a socket filter keeps patchbay's own sends out of its rings.
    let pkttype = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
    let mut incoming = [
        bpf(BPF_LD | BPF_B | BPF_ABS, 0, 0, pkttype),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, u32::from(PACKET_OUTGOING)),
        bpf(BPF_RET | BPF_K, 0, 0, 0),
        bpf(BPF_RET | BPF_K, 0, 0, u32::MAX),
    ];
    let (socket, filter) = (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER);
    let filter_outgoing = sys::kernel_version() < (6, 2);
    if filter_outgoing {
        set_program(&rings[0].fd, socket, filter, &mut incoming)?;
    }
    set_program(&rings[1].fd, socket, filter, &mut none)?;
    bind_packet_socket(&rings[0].fd, ifindex, ETH_P_ALL)?;
    bind_packet_socket(&rings[1].fd, ifindex, ETH_P_ALL)?;
    let split = join_fanout(rings);
    if split.is_err() {
        bind_packet_socket(&rings[1].fd, ifindex, 0)?;
        return Ok(split);
    }
    if filter_outgoing {
        set_program(&rings[1].fd, socket, filter, &mut incoming)?;
    } else {
        setsockopt(&rings[1].fd, socket, libc::SO_DETACH_FILTER, &0i32)?;
    }
    // The fanout program runs before the kernel puts the Ethernet header
    // back in front: its length is the frame's less 14 bytes.
    let mut by_length = [
        bpf(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0),
        bpf(BPF_JMP | BPF_JGT | BPF_K, 0, 1, SMALL_MAX - 14),
        bpf(BPF_RET | BPF_K, 0, 0, 1),
        bpf(BPF_RET | BPF_K, 0, 0, 0),
    ];
    Ok(set_program(
        &rings[0].fd,
        libc::SOL_PACKET,
        PACKET_FANOUT_DATA,
        &mut by_length,
    ))
}

/// One classic BPF instruction.
pub(super) fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Gives `fd` a classic BPF program through socket option `opt` (a socket
/// filter, or a fanout group's program); the kernel copies it.
pub(super) fn set_program(
    fd: &OwnedFd,
    level: i32,
    opt: i32,
    program: &mut [libc::sock_filter],
) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    setsockopt(fd, level, opt, &fprog)
}

/// Puts ring 0 and then ring 1 in a new fanout group (of the CBPF kind,
/// which without a program sends every frame to its first member).
pub(super) fn join_fanout(rings: &[Ring; 2]) -> io::Result<()> {
    let kind = PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
    setsockopt(
        &rings[0].fd,
        libc::SOL_PACKET,
        PACKET_FANOUT,
        &((kind | PACKET_FANOUT_FLAG_UNIQUEID) << 16),
    )?;
    let mut id = 0u32;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` (4) bytes into `id`.
    let r = unsafe {
        libc::getsockopt(
            rings[0].fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_FANOUT,
            (&mut id as *mut u32).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    setsockopt(
        &rings[1].fd,
        libc::SOL_PACKET,
        PACKET_FANOUT,
        &((id & 0xffff) | (kind << 16)),
    )
}

/// A new non-blocking AF_PACKET socket that receives nothing until bound.
pub(super) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Binds an AF_PACKET socket to interface `ifindex`, receiving `protocol`
/// (0: nothing).
pub(super) fn bind_packet_socket(fd: &OwnedFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size we pass.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
