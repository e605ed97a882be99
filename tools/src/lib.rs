//! Labs of network namespaces for patchbay's tests, demo and benchmarks.
//!
//! A [`Lab`] is a switch namespace (where patchbayd or a kernel bridge runs)
//! and host namespaces, each host wired to the switch by a veth pair: the
//! host's end is `eth0`, the switch's end is `p1`, `p2`, ... Every name is
//! unique to this process, the hosts use the kernel's own stack, and
//! everything is removed when the lab is dropped, even after a failed
//! assertion. Nothing is created or changed in the root namespace.

pub mod lab;

pub use lab::{
    have, iperf3_bytes, wait_for, wait_listening, Bins, Capture, Daemon, Host, Lab, Netns,
};
