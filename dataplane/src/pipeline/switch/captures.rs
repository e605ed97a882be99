//! Packet capture: taps on ports, read by the control socket.

use super::*;

impl Switch {
    /// Starts capturing frames of `port` (in if `rx`, out if `tx`) that
    /// match `filter`, cut to `snaplen`, `count` of them if given. The
    /// capture's buffers are allocated here: on the forwarding thread, make
    /// the tap elsewhere and [`Switch::capture_attach`] it.
    pub fn capture_start(
        &mut self,
        port: &str,
        dirs: (bool, bool),
        filter: Filter,
        snaplen: usize,
        count: Option<u64>,
    ) -> Result<TapHandle, SwitchError> {
        let (t, handle) = tap(dirs, filter, snaplen, count);
        self.capture_attach(port, t)?;
        Ok(handle)
    }

    /// Attaches a capture made by [`crate::capture::tap`] to `port`;
    /// returns its id.
    pub fn capture_attach(&mut self, port: &str, mut t: Tap) -> Result<u32, SwitchError> {
        t.port = self.existing_port(port)?;
        t.id = self.next_capture;
        self.next_capture += 1;
        let id = t.id;
        self.captures.push(t);
        log::info!(op = "capture_start", id, port; "capture {id} of {port} started");
        Ok(id)
    }

    /// Ends a capture (its writer sees the end of its frames).
    pub fn capture_stop(&mut self, id: u32) {
        self.captures.retain(|t| t.id != id);
    }

    /// The captures under way.
    pub fn captures(&self) -> Vec<TapInfo> {
        use std::sync::atomic::Ordering::Relaxed;
        self.captures
            .iter()
            .map(|t| TapInfo {
                id: t.id,
                port: self.port_name(t.port).to_string(),
                rx: t.rx,
                tx: t.tx,
                captured: t.counters.captured.load(Relaxed),
                dropped: t.counters.dropped.load(Relaxed),
            })
            .collect()
    }
}
