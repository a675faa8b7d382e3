//! Reply ordering: a connection's replies go out in the order of its lines,
//! whichever worker finishes first. The lines of one read are one job with
//! the connection's next sequence number; a reply that comes back before its
//! turn waits in a small map until the replies before it are out.

use std::collections::BTreeMap;

use super::stats::add;
use super::{Reply, Server};

/// One connection's sequence numbers and its early replies.
#[derive(Debug, Default)]
pub(super) struct InOrder {
    /// Sequence number of the next job.
    next_seq: u64,
    /// Sequence number of the next reply to hand out.
    next_out: u64,
    /// Replies that came back before their turn.
    early: BTreeMap<u64, Vec<u8>>,
}

impl InOrder {
    /// The sequence number of a new job.
    pub(super) fn next_job(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Takes the reply to job `seq` and hands `out` every reply whose turn
    /// has come, in order. `false` if this one came early and waits.
    pub(super) fn take(&mut self, seq: u64, data: Vec<u8>, mut out: impl FnMut(Vec<u8>)) -> bool {
        if seq != self.next_out {
            self.early.insert(seq, data);
            return false;
        }
        let mut data = data;
        loop {
            out(data);
            self.next_out += 1;
            match self.early.remove(&self.next_out) {
                Some(next) => data = next,
                None => return true,
            }
        }
    }

    /// Every job's reply has been handed out.
    pub(super) fn all_out(&self) -> bool {
        self.next_out == self.next_seq
    }
}

impl Server<'_> {
    /// Puts a worker's reply in line; replies whose turn has come go to the
    /// connection's output buffer, which is flushed after this batch of
    /// replies.
    pub(super) fn take_reply(&mut self, reply: Reply) {
        let Some(conn) = self.conns.get_mut(&reply.conn) else {
            return; // the connection closed meanwhile
        };
        let in_turn = conn.order.take(reply.seq, reply.data, |data| {
            conn.in_flight -= data.len();
            conn.out.extend_from_slice(&data);
        });
        if !in_turn {
            add(&self.stats.reordered, 1);
            return;
        }
        if !conn.touched {
            conn.touched = true;
            self.touched.push(reply.conn);
        }
    }
}
