//! VXLAN ports that share a local address and UDP port, as in
//!
//! ```text
//! patchbay link add vx0 type vxlan id 42 local 10.200.0.1 dstport 4789 master br0
//! patchbay link add vx1 type vxlan id 43 local 10.200.0.1 dstport 4789 master br1
//! ```
//!
//! The kernel's VXLAN devices share one socket and look the VNI up; here
//! each port's receiving socket joins one `SO_REUSEPORT` group, and a
//! classic BPF program attached to the group hands each datagram to the
//! socket of its VNI (RFC 7348 5: the VNI names the segment). A VNI no port
//! has goes to a socket the kernel picks, whose port counts it
//! (`vxlan-vni`).
//!
//! The program returns an index into the group's sockets, which are in the
//! order they were bound; when one closes, the kernel moves the last into
//! its place. The members here mirror that order: a port joins and leaves
//! (binds and closes) under one lock, and the program is made anew each
//! time.

use super::{udp_socket, PortError};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h).
const SO_ATTACH_REUSEPORT_CBPF: i32 = 51;
/// Ports one group can hold: two instructions each, and the kernel's limit
/// of 4,096 to a program.
pub(crate) const MAX_MEMBERS: usize = 2_000;

struct Member {
    vni: u32,
    fd: RawFd,
    name: String,
}

struct Group {
    local: Ipv4Addr,
    port: u16,
    /// In the order of the kernel's group.
    members: Vec<Member>,
}

static GROUPS: Mutex<Vec<Group>> = Mutex::new(Vec::new());

/// Opens the receiving socket of port `name` for `vni` on `local:port`,
/// in the group of the ports already there.
pub(super) fn join(name: &str, local: Ipv4Addr, port: u16, vni: u32) -> Result<OwnedFd, PortError> {
    let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
    let at = match groups
        .iter()
        .position(|g| (g.local, g.port) == (local, port))
    {
        Some(at) => at,
        None => {
            groups.push(Group {
                local,
                port,
                members: Vec::new(),
            });
            groups.len() - 1
        }
    };
    let g = &mut groups[at];
    // A port of the same name is the one this replaces (`apply` opens the
    // new port before the old one goes): until it does, the old one keeps
    // the VNI's datagrams.
    if let Some(m) = g.members.iter().find(|m| m.vni == vni && m.name != name) {
        return Err(PortError::Invalid(format!(
            "{name}: VNI {vni} on {local}:{port} is {}'s already",
            m.name
        )));
    }
    if g.members.len() >= MAX_MEMBERS {
        return Err(PortError::Invalid(format!(
            "{name}: {local}:{port} has {MAX_MEMBERS} VXLAN ports, the most it takes"
        )));
    }
    let fd = match udp_socket(name, local, port, true) {
        Ok(fd) => fd,
        Err(e) => {
            if g.members.is_empty() {
                groups.swap_remove(at);
            }
            return Err(e);
        }
    };
    g.members.push(Member {
        vni,
        fd: fd.as_raw_fd(),
        name: name.to_string(),
    });
    attach(g);
    Ok(fd)
}

/// Closes the receiving socket `fd` of a port and takes it out of its group.
pub(super) fn leave(fd: OwnedFd) {
    let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
    let raw = fd.as_raw_fd();
    drop(fd);
    let Some(at) = groups
        .iter()
        .position(|g| g.members.iter().any(|m| m.fd == raw))
    else {
        return;
    };
    let g = &mut groups[at];
    let i = g.members.iter().position(|m| m.fd == raw).expect("found");
    // The kernel moved its last socket into the closed one's place.
    g.members.swap_remove(i);
    if g.members.is_empty() {
        groups.swap_remove(at);
    } else {
        attach(g);
    }
}

/// Gives the group its program: the VNI (bytes 4..7 of the UDP payload,
/// the VXLAN header) picks the member's index.
fn attach(g: &Group) {
    let Some(first) = g.members.first() else {
        return;
    };
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut prog = vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        stmt(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K, 8),
    ];
    for (i, m) in g.members.iter().enumerate() {
        // Equal: the next instruction (return i); else the one after.
        prog.push(libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: m.vni,
        });
        prog.push(stmt(libc::BPF_RET | libc::BPF_K, i as u32));
    }
    // No port has it: out of range, the kernel picks by hash.
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, u32::MAX));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: setsockopt reads a sock_fprog of the size given, and the
    // program it points at, both alive for the call; `first.fd` is an open
    // socket of the group (members leave before their socket closes).
    let r = unsafe {
        libc::setsockopt(
            first.fd,
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    if r < 0 {
        log::warn!(
            "VXLAN ports on {}:{}: steering by VNI: {}",
            g.local,
            g.port,
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::vxlan;

    /// A datagram with VNI `vni` from `from` to 127.0.0.1:`port`.
    fn send(from: &std::net::UdpSocket, port: u16, vni: u32) {
        let mut d = [0u8; 8 + 14];
        vxlan::emit(&mut d, vni);
        from.send_to(&d, ("127.0.0.1", port)).expect("send");
    }

    /// The VNIs waiting on `fd`.
    fn vnis(fd: &OwnedFd) -> Vec<u32> {
        let mut got = Vec::new();
        std::thread::sleep(std::time::Duration::from_millis(20));
        loop {
            let mut b = [0u8; 64];
            // SAFETY: recv writes at most 64 bytes into `b`.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    b.as_mut_ptr().cast(),
                    b.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 8 {
                return got;
            }
            got.push(u32::from_be_bytes([0, b[4], b[5], b[6]]));
        }
    }

    #[test]
    fn ports_on_one_udp_port_each_get_their_vni() {
        let local = Ipv4Addr::LOCALHOST;
        // A port nobody uses: bound once to find one, then let go.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port();
        let from = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
        let a = join("vx0", local, port, 42).expect("vx0");
        let b = join("vx1", local, port, 43).expect("vx1");
        let taken = join("vx2", local, port, 42).map(|_| ()).unwrap_err();
        assert_eq!(
            taken.to_string(),
            format!("port vx2: VNI 42 on 127.0.0.1:{port} is vx0's already")
        );
        for vni in [42, 43, 43, 42, 43] {
            send(&from, port, vni);
        }
        assert_eq!(vnis(&a), [42, 42]);
        assert_eq!(vnis(&b), [43, 43, 43]);
        // vx0 leaves: the kernel moves vx1 into its place; a new port
        // comes after it.
        leave(a);
        let c = join("vx2", local, port, 44).expect("vx2");
        for vni in [44, 43, 44] {
            send(&from, port, vni);
        }
        assert_eq!(vnis(&b), [43]);
        assert_eq!(vnis(&c), [44, 44]);
        leave(b);
        leave(c);
        let empty = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(!empty.iter().any(|g| g.port == port), "the group is gone");
    }
}
