//! Small wrappers over interface ioctls shared by the port backends.

use super::{LinkState, PortError};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Checks that `name` can be a Linux interface name (IFNAMSIZ - 1 bytes).
pub fn check_ifname(name: &str) -> Result<(), PortError> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace())
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(PortError::BadName(name.to_string()))
    }
}

/// The ifindex of `name`, or `None` if there is no such interface.
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// An `ifreq` naming `name` (already checked to fit).
pub fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct for which all-zero bytes are valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The interface flags (IFF_UP, IFF_RUNNING, ...).
pub fn if_flags(name: &str) -> io::Result<i32> {
    let sock = control_socket()?;
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of `req`,
    // which lives for the whole call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the union holds ifru_flags.
    Ok(i32::from(unsafe { req.ifr_ifru.ifru_flags }))
}

/// `struct ethtool_drvinfo` of <linux/ethtool.h>.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const ETHTOOL_GDRVINFO: u32 = 3;

/// The interface's driver and bus, as `ethtool -i NAME` shows them: a
/// TAP device is ("tun", "tap"), a veth ("veth", "").
pub fn driver_info(name: &str) -> io::Result<(String, String)> {
    let sock = control_socket()?;
    // SAFETY: a plain C struct for which all-zero bytes are valid.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: SIOCETHTOOL reads ifr_name and the command `info` starts
    // with, and writes at most size_of::<EthtoolDrvinfo>() bytes into it;
    // `req` and `info` live for the whole call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let text = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    Ok((text(&info.driver), text(&info.bus_info)))
}

/// `struct ethtool_value` of <linux/ethtool.h>.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_GTSO: u32 = 0x1e;

/// Whether the interface takes TSO frames: TCP segmentation offload on,
/// and transmit checksumming, which it needs (`ethtool -k NAME`). A frame
/// it does not take, the kernel will not segment for a packet socket.
pub fn takes_tso(name: &str) -> io::Result<bool> {
    let sock = control_socket()?;
    let mut on = true;
    for cmd in [ETHTOOL_GTXCSUM, ETHTOOL_GTSO] {
        let mut v = EthtoolValue { cmd, data: 0 };
        let mut req = ifreq(name);
        req.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
        // SAFETY: SIOCETHTOOL reads ifr_name and the command `v` starts
        // with, and writes at most size_of::<EthtoolValue>() bytes into
        // it; `req` and `v` live for the whole call.
        let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        on &= v.data != 0;
    }
    Ok(on)
}

/// Sets IFF_UP on the interface, as `ip link set NAME up` does.
pub fn set_if_up(name: &str) -> io::Result<()> {
    let flags = if_flags(name)?;
    if flags & libc::IFF_UP != 0 {
        return Ok(());
    }
    let sock = control_socket()?;
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags = (flags | libc::IFF_UP) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads `req`, which lives for the whole call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Up if the interface exists, is up and has carrier.
pub fn link_state(name: &str) -> LinkState {
    match if_flags(name) {
        Ok(f) if f & libc::IFF_UP != 0 && f & libc::IFF_RUNNING != 0 => LinkState::Up,
        Ok(_) => LinkState::Down,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => LinkState::Gone,
        Err(_) => LinkState::Down,
    }
}

/// Reads and clears a socket's pending error (SO_ERROR).
pub fn take_socket_error(fd: &OwnedFd) -> Option<io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `err`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0 && err != 0).then(|| io::Error::from_raw_os_error(err))
}

/// setsockopt for an integer-like or struct option.
pub fn setsockopt<T>(fd: &OwnedFd, level: i32, opt: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of exactly the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Pins the calling thread to one CPU (for the forwarding thread, so that
/// benchmarks can give it a core of its own).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "CPU number out of range",
        ));
    }
    // SAFETY: cpu_set_t is a plain bitmask; CPU_SET writes inside it (cpu is
    // in range), and sched_setaffinity reads it for the calling thread.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The running kernel's version (major, minor), from uname(2); (0, 0) if it
/// cannot be told.
pub fn kernel_version() -> (u32, u32) {
    // SAFETY: utsname is a plain C struct of byte arrays; all-zero is valid.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname writes into the struct we own and pass by pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (0, 0);
    }
    let release: String = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    parse_kernel_version(&release)
}

/// "6.1.0-18-amd64" -> (6, 1); (0, 0) for what is not a version.
fn parse_kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok());
    let minor = parts.next().and_then(|p| p.parse().ok());
    match (major, minor) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_versions() {
        use super::parse_kernel_version as v;
        assert_eq!(v("6.18.44-fc-v1272"), (6, 18));
        assert_eq!(v("5.15.0-91-generic"), (5, 15));
        assert_eq!(v("6.1"), (6, 1));
        assert_eq!(v("weird"), (0, 0));
    }
}
