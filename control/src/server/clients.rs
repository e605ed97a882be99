//! Who is connected to the control socket, and who is only waiting.
//!
//! A connection is idle while it waits for the first byte of its next
//! request. At the limit, the connection idle longest is closed to make room
//! for a new one, so clients that connect and say nothing can never lock the
//! others out; only connections at work (a request being read or carried
//! out, a capture streaming) hold their place.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The connections being served.
pub struct Clients {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    conns: HashMap<u64, Conn>,
}

struct Conn {
    stream: Arc<UnixStream>,
    /// Since when it has waited for a request; `None` while at work.
    idle_since: Option<Instant>,
    /// Closed to make room for a newcomer: nothing more is served on it.
    evicted: bool,
}

/// A connection's place among the [`Clients`], given back on drop.
pub struct Place {
    clients: Arc<Clients>,
    id: u64,
}

impl Clients {
    /// Room for `max` connections at once.
    pub fn new(max: usize) -> Arc<Clients> {
        Arc::new(Clients {
            max,
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays whole if a holder panicked: every change is one call.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives a new connection a place (it starts idle). At the limit, the
    /// connection idle longest is shut down to make room: its thread wakes
    /// up, sees [`Place::busy`] refused, says why and ends. `None` if every
    /// place is at work.
    pub fn admit(self: &Arc<Self>, stream: &Arc<UnixStream>) -> Option<Place> {
        let mut inner = self.lock();
        let taken = inner.conns.values().filter(|c| !c.evicted).count();
        if taken >= self.max {
            let (_, oldest) = inner
                .conns
                .iter_mut()
                .filter(|(_, c)| !c.evicted)
                .filter_map(|(id, c)| Some((c.idle_since?, id, c)))
                .min_by_key(|(since, id, _)| (*since, **id))
                .map(|(since, _, c)| (since, c))?;
            oldest.evicted = true;
            // Shutting down the reading side wakes a read waiting on it (the
            // client's next write fails: it knows nothing was read).
            let _ = oldest.stream.shutdown(Shutdown::Read);
        }
        let id = inner.next;
        inner.next += 1;
        inner.conns.insert(
            id,
            Conn {
                stream: stream.clone(),
                idle_since: Some(Instant::now()),
                evicted: false,
            },
        );
        Some(Place {
            clients: self.clone(),
            id,
        })
    }
}

impl Place {
    /// The connection waits for its next request from now on.
    pub fn idle(&self) {
        if let Some(c) = self.clients.lock().conns.get_mut(&self.id) {
            c.idle_since = Some(Instant::now());
        }
    }

    /// The connection is at work (a request came in), and keeps its place
    /// until [`Place::idle`]; `false` if the place was given to a newcomer
    /// meanwhile: then whatever came in must not be served.
    pub fn busy(&self) -> bool {
        match self.clients.lock().conns.get_mut(&self.id) {
            Some(c) if !c.evicted => {
                c.idle_since = None;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.clients.lock().conns.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Arc<UnixStream>, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Arc::new(a), b)
    }

    #[test]
    fn the_longest_idle_makes_room_and_busy_ones_keep_theirs() {
        let clients = Clients::new(3);
        let conns: Vec<_> = (0..3).map(|_| pair()).collect();
        let places: Vec<Place> = conns
            .iter()
            .map(|(s, _)| clients.admit(s).unwrap())
            .collect();
        // The first is at work, the second idle longest, the third idle.
        assert!(places[0].busy());
        places[2].idle();
        let newcomer = pair();
        let fourth = clients.admit(&newcomer.0).expect("room made");
        assert!(places[0].busy(), "at work: kept");
        assert!(!places[1].busy(), "idle longest: evicted");
        assert!(places[2].busy());
        // Its peer hears of it: writes fail, as nothing more is read.
        use std::io::Write;
        assert!((&conns[1].1).write_all(b"x").is_err());
        // Every place at work: a newcomer is refused.
        assert!(fourth.busy());
        assert!(clients.admit(&pair().0).is_none());
        // A place given back is free again.
        drop(fourth);
        assert!(clients.admit(&pair().0).is_some());
    }
}
