//! `capture`: a port's frames streamed as pcap on the request's connection.

use super::*;

/// What a `capture` request asks for.
pub(super) struct CaptureSpec {
    pub(super) port: String,
    pub(super) dir: Option<String>,
    pub(super) count: Option<u64>,
    pub(super) snaplen: Option<usize>,
    pub(super) filter: Option<String>,
}

/// Streams a capture to the client as pcap, until its count is reached, the
/// port goes or the client hangs up. A slow client only loses captured
/// frames (counted), never traffic.
pub(super) fn serve_capture(
    reader: BufReader<&UnixStream>,
    engine: &EngineHandle,
    spec: CaptureSpec,
) -> io::Result<()> {
    let writer = *reader.get_ref();
    let invalid = |m: String| ApiError::new(ErrorCode::Invalid, m);
    let dirs = match spec.dir.as_deref().unwrap_or("both") {
        "rx" | "in" => Ok((true, false)),
        "tx" | "out" => Ok((false, true)),
        "both" => Ok((true, true)),
        d => Err(invalid(format!(
            "capture: direction is rx, tx or both, not '{d}'"
        ))),
    };
    let filter = Filter::parse(spec.filter.as_deref().unwrap_or("")).map_err(invalid);
    let dirs = match spec.count {
        Some(0) => Err(invalid("capture: count must be at least 1".into())),
        _ => dirs,
    };
    let started = dirs.and_then(|dirs| {
        let filter = filter?;
        // As tcpdump: 0 is the whole frame.
        let snaplen = match spec.snaplen {
            None | Some(0) => pcap::DEFAULT_SNAPLEN,
            Some(n) if n < pcap::MIN_SNAPLEN => {
                return Err(invalid(format!(
                    "snaplen {n}: at least {} bytes (0: the whole frame)",
                    pcap::MIN_SNAPLEN
                )))
            }
            Some(n) => n,
        };
        // The buffers are allocated here, not on the forwarding thread.
        let (tap, handle) = pcap::tap(dirs, filter, snaplen, spec.count);
        let port = spec.port.clone();
        let id = engine
            .call(move |sw| sw.capture_attach(&port, tap))
            .map_err(|_| stopped())?
            .map_err(switch_error)?;
        Ok((id, handle))
    });
    let (id, handle) = match started {
        Ok(h) => h,
        Err(e) => return write_response(writer, Err(e)),
    };
    let result = write_response(
        writer,
        Ok(json!({ "capture": id, "format": "pcap", "snaplen": handle.snaplen })),
    )
    .and_then(|()| stream_pcap(writer, reader, &handle));
    // However the stream ended, the capture ends with it.
    let _ = engine.call(move |sw| sw.capture_stop(id));
    let counters = &handle.counters;
    log::info!(
        op = "capture_end", id, captured = counters.captured.load(Ordering::Relaxed),
        dropped = counters.dropped.load(Ordering::Relaxed);
        "capture {id} of {} ended", spec.port
    );
    result
}

fn stream_pcap(
    mut writer: &UnixStream,
    mut reader: BufReader<&UnixStream>,
    handle: &pcap::TapHandle,
) -> io::Result<()> {
    use crossbeam_channel::RecvTimeoutError;
    writer.write_all(&pcap::pcap_header(handle.snaplen))?;
    let mut out = Vec::with_capacity(64 * 1024);
    // A client that hangs up while no frame comes is noticed here.
    // (A read timeout, not O_NONBLOCK: that would make writes fail too.)
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(1)))?;
    loop {
        match handle.frames.recv_timeout(Duration::from_millis(500)) {
            Ok(c) => {
                pcap::pcap_record(&c, &mut out);
                let _ = handle.free.try_send(c.data);
                // Take what else is waiting, then write it in one go.
                while out.len() < 60 * 1024 {
                    let Ok(c) = handle.frames.try_recv() else {
                        break;
                    };
                    pcap::pcap_record(&c, &mut out);
                    let _ = handle.free.try_send(c.data);
                }
                writer.write_all(&out)?;
                out.clear();
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut byte = [0u8; 1];
                match std::io::Read::read(reader.get_mut(), &mut byte) {
                    Ok(0) => return Ok(()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
