//! The forwarding loop: poll, receive a batch, forward it, repeat.

use super::switch::{Switch, SwitchConfig};
use crate::l2::PortId;
use crate::BATCH;
use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll, Token, Waker};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work the control plane hands to the engine: run between two batches with
/// the switch to itself.
pub type Job = Box<dyn FnOnce(&mut Switch) + Send>;

const WAKER: Token = Token(usize::MAX);
const TICK: Duration = Duration::from_secs(1);

/// The engine is gone (stopped, or its thread died).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the forwarding engine has stopped")]
pub struct EngineStopped;

/// The control plane's way into a running [`Engine`].
#[derive(Clone)]
pub struct EngineHandle {
    jobs: Sender<Job>,
    waker: Arc<Waker>,
}

impl EngineHandle {
    /// Runs `f` on the switch between two batches and returns its result.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Switch) -> R + Send + 'static,
    ) -> Result<R, EngineStopped> {
        let (reply, result) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move |sw| {
            let _ = reply.send(f(sw));
        });
        self.jobs.send(job).map_err(|_| EngineStopped)?;
        self.waker.wake().map_err(|_| EngineStopped)?;
        result.recv().map_err(|_| EngineStopped)
    }

    /// Asks the engine to stop after the current batch.
    pub fn stop(&self) -> Result<(), EngineStopped> {
        self.call(Switch::request_stop)
    }
}

/// Polls every port and drives the [`Switch`].
pub struct Engine {
    poll: Poll,
    switch: Switch,
    jobs: Receiver<Job>,
    busy_poll: Duration,
}

/// While busy polling, epoll is asked only every this many rounds (for
/// ports that cannot be peeked at and control jobs; ring ports are off
/// epoll then, and housekeeping checks them).
const POLL_EVERY: u32 = 64;

impl Engine {
    pub fn new(config: SwitchConfig) -> io::Result<(Engine, EngineHandle)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let switch = Switch::new(config, Some(poll.registry().try_clone()?));
        let (tx, jobs) = crossbeam_channel::unbounded();
        let engine = Engine {
            poll,
            switch,
            jobs,
            busy_poll: Duration::ZERO,
        };
        Ok((engine, EngineHandle { jobs: tx, waker }))
    }

    /// Keep polling the ports without sleeping for `d` after the last frame
    /// (zero: sleep in epoll as soon as the ports are drained).
    ///
    /// A port whose owner sleeps in epoll makes the kernel wake it for every
    /// frame; in a VM that wake-up is an inter-processor interrupt, and it is
    /// paid on the *sender's* core. Awake, the engine peeks at the receive
    /// rings itself and the kernel has nobody to wake: the next frame (a
    /// reply, the next segment) is picked up sooner and costs its sender less.
    pub fn with_busy_poll(mut self, d: Duration) -> Engine {
        self.busy_poll = d;
        self
    }

    /// The switch, for setting it up before [`Engine::run`].
    pub fn switch(&mut self) -> &mut Switch {
        &mut self.switch
    }

    /// Runs until asked to stop; returns the switch.
    ///
    /// Ports are polled edge-triggered: a port that filled a whole batch may
    /// have more waiting, so it stays on the ready list and the next poll does
    /// not sleep; a port that returned less is drained and waits for its next
    /// wake-up. Ready ports take turns one batch at a time.
    pub fn run(mut self) -> Switch {
        let mut events = Events::with_capacity(256);
        let mut ready: Vec<bool> = Vec::new();
        let mut next_tick = Instant::now() + TICK;
        let mut last_work: Option<Instant> = None;
        let mut rounds_since_poll = POLL_EVERY;
        let mut rings_polled = true;
        loop {
            let now = Instant::now();
            let spinning = last_work.is_some_and(|t| now.duration_since(t) < self.busy_poll);
            // Spinning peeks at the rings; sleeping needs their wake-ups (and
            // asking again each time retries a registration that failed).
            if spinning {
                self.switch.mark_rx_pending(&mut ready);
            } else {
                self.switch.set_ring_polling(true);
                rings_polled = true;
            }
            if !spinning || rounds_since_poll >= POLL_EVERY {
                let timeout = if spinning || ready.contains(&true) {
                    Duration::ZERO
                } else {
                    next_tick.saturating_duration_since(now)
                };
                if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                    if e.kind() != io::ErrorKind::Interrupted {
                        log::error!("poll: {e}");
                    }
                    continue;
                }
                rounds_since_poll = 0;
                for event in events.iter() {
                    if event.token() == WAKER {
                        while let Ok(job) = self.jobs.try_recv() {
                            job(&mut self.switch);
                        }
                        // A job may have added a port (registered).
                        self.switch.set_ring_polling(rings_polled);
                        continue;
                    }
                    let id = event.token().0;
                    if event.is_error() {
                        self.switch.port_error(id as PortId);
                    }
                    if id >= ready.len() {
                        ready.resize(id + 1, false);
                    }
                    ready[id] = true;
                }
                if self.switch.stop {
                    return self.switch;
                }
            } else {
                rounds_since_poll += 1;
            }
            for (id, is_ready) in ready.iter_mut().enumerate() {
                if *is_ready {
                    let n = self.switch.process_rx(id as PortId);
                    if n > 0 {
                        last_work = Some(Instant::now());
                    }
                    // A port may stop a batch early (an AF_PACKET port has
                    // buffers for 16 big frames per batch): if its ring
                    // shows more, it stays ready.
                    *is_ready = n == BATCH || self.switch.rx_pending(id as PortId);
                }
            }
            // Rings leave epoll once the frames that woke the engine are
            // sent on: the two system calls are not in their way.
            if spinning && rings_polled {
                self.switch.set_ring_polling(false);
                rings_polled = false;
            }
            if now >= next_tick {
                self.switch.housekeeping();
                next_tick = Instant::now() + TICK;
            }
        }
    }
}
