//! The log writer thread: log lines go from the request's thread to a bounded queue, and one
//! thread writes them to stderr in batches.
//!
//! Once it has written a batch, the writer sleeps for [`LINGER`] before it looks again, so
//! under load the lines of many requests go out in one `write` and no request's thread wakes
//! the writer (a sender only wakes a receiver that waits on the queue). An idle writer waits
//! on the queue, and the first line wakes it. No line is dropped: a full queue makes the
//! logger wait. Dropping the [`LogGuard`] writes what is left.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;

/// How long the writer sleeps after a batch: the most a line waits under load.
const LINGER: Duration = Duration::from_millis(1);
/// Lines the queue holds before a logger waits.
const QUEUE_LINES: usize = 65_536;
/// Once a batch holds this many bytes it is written, without waiting for the rest.
const BATCH_BYTES: usize = 64 * 1024;
/// How long dropping the guard waits for the writer to finish (a stderr nobody reads must not
/// hold up the exit).
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

enum Message {
    Line(Vec<u8>),
    Finish,
}

/// Hands log lines to the writer thread (a [`MakeWriter`] for the fmt layer).
#[derive(Clone)]
pub struct LogSender(SyncSender<Message>);

/// Writes the lines still queued and stops the writer thread when dropped.
pub struct LogGuard {
    sender: SyncSender<Message>,
    /// Hears from the writer thread once it has written everything and ended.
    done: Receiver<()>,
}

/// Starts the writer thread on `output`.
pub fn start<W: Write + Send + 'static>(output: W) -> std::io::Result<(LogSender, LogGuard)> {
    let (sender, queue) = sync_channel(QUEUE_LINES);
    let (ended, done) = sync_channel(1);
    std::thread::Builder::new()
        .name("backstop-log".into())
        .spawn(move || {
            write_lines(&queue, output);
            let _ = ended.send(());
        })?;
    let guard = LogGuard {
        sender: sender.clone(),
        done,
    };
    Ok((LogSender(sender), guard))
}

/// The writer thread: waits on the queue for a line, then writes every line queued by then in
/// one go and sleeps [`LINGER`], again and again while lines keep coming; back to waiting on the
/// queue once a linger brought none. Ends when told to finish or when every sender is gone.
fn write_lines(queue: &Receiver<Message>, mut output: impl Write) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    while let Ok(Message::Line(line)) = queue.recv() {
        batch.extend_from_slice(&line);
        loop {
            let finish = take_queued(queue, &mut batch);
            if batch.is_empty() && !finish {
                break;
            }
            let full = batch.len() >= BATCH_BYTES;
            // A log that cannot be written has nowhere to report it.
            let _ = output.write_all(&batch).and_then(|()| output.flush());
            batch.clear();
            if finish {
                return;
            }
            if !full {
                // Asleep, not waiting on the queue: a logger meanwhile wakes nobody.
                std::thread::sleep(LINGER);
            }
        }
    }
}

/// Moves the queued lines into `batch`, up to [`BATCH_BYTES`]; true when the writer is to
/// finish (told so, or every sender gone).
fn take_queued(queue: &Receiver<Message>, batch: &mut Vec<u8>) -> bool {
    while batch.len() < BATCH_BYTES {
        match queue.try_recv() {
            Ok(Message::Line(line)) => batch.extend_from_slice(&line),
            Ok(Message::Finish) | Err(TryRecvError::Disconnected) => return true,
            Err(TryRecvError::Empty) => return false,
        }
    }
    false
}

impl Write for LogSender {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        // The writer only goes away with the guard, at exit: a line after it is lost.
        let _ = self.0.send(Message::Line(line.to_vec()));
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSender {
    type Writer = LogSender;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let mut finish = Message::Finish;
        loop {
            match self.sender.try_send(finish) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    finish = back;
                    std::thread::sleep(LINGER);
                }
                Err(_) => return,
            }
        }
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An output that keeps what is written and counts the writes.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut kept = self.0.lock().map_err(|_| std::io::ErrorKind::Other)?;
            kept.0.extend_from_slice(bytes);
            kept.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_batched() {
        let kept = Kept::default();
        let (sender, guard) = start(kept.clone()).unwrap();
        let mut expected = Vec::new();
        for i in 0..10_000 {
            let line = format!("line {i}\n");
            sender.make_writer().write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        drop(guard);
        let kept = kept.0.lock().unwrap();
        assert_eq!(
            kept.0, expected,
            "every line, in order, once the guard is dropped"
        );
        assert!(
            kept.1 < 10_000,
            "lines queued together go out together: {} writes",
            kept.1
        );
    }

    /// An output whose writes never return, like a stderr pipe nobody reads.
    struct Stuck;

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            loop {
                std::thread::park();
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_does_not_hold_up_the_exit() {
        let (sender, guard) = start(Stuck).unwrap();
        sender.make_writer().write_all(b"never written\n").unwrap();
        let started = Instant::now();
        drop(guard);
        assert!(
            started.elapsed() < FINISH_TIMEOUT * 5,
            "the guard waited {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let kept = Kept::default();
        let (sender, _guard) = start(kept.clone()).unwrap();
        sender.make_writer().write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while kept.0.lock().unwrap().0.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(kept.0.lock().unwrap().0, b"alone\n");
    }
}
