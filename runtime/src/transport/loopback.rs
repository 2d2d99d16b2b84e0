//! A rank sending to itself: frames are copied into a queue and delivered on the next poll,
//! through the same [`Sink`] calls as a network transport, so matching and the rendezvous
//! protocol behave exactly as they do between processes.

use std::collections::VecDeque;

use super::Sink;
use crate::buf::RawSlice;
use crate::wire::Header;

#[derive(Default)]
pub(crate) struct Loopback {
    queue: VecDeque<(Header, Vec<u8>)>,
}

impl Loopback {
    /// Copies the frame; it is handed over at once.
    pub(crate) fn send(
        &mut self,
        header: &Header,
        payload: RawSlice,
        token: Option<u64>,
        sink: &mut impl Sink,
    ) {
        let mut bytes = Vec::with_capacity(payload.len());
        for piece in payload.pieces(0) {
            bytes.extend_from_slice(piece);
        }
        self.queue.push_back((*header, bytes));
        if let Some(t) = token {
            sink.on_sent(t);
        }
    }

    pub(crate) fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Delivers the frames queued before this call. Returns whether there were any.
    pub(crate) fn deliver(&mut self, me: usize, sink: &mut impl Sink) -> bool {
        let n = self.queue.len();
        for _ in 0..n {
            let Some((h, payload)) = self.queue.pop_front() else {
                break;
            };
            let dest = if h.payload_len() > 0 {
                match sink.on_header(me, &h) {
                    Ok(mut d) => {
                        d.copy_in(0, &payload);
                        Some(d)
                    }
                    Err(_) => continue, // cannot happen for frames this rank built itself
                }
            } else {
                None
            };
            let _ = sink.on_frame(me, h, dest);
        }
        n > 0
    }
}
