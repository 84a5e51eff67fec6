//! The access log: one JSON line per request, written by a dedicated thread so request
//! tasks never block on disk. Lines are dropped (and counted) if the writer falls behind
//! by more than a bounded queue.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;

const QUEUE: usize = 64 * 1024;

/// Handle to the access log writer.
pub struct AccessLog {
    tx: Mutex<Option<SyncSender<String>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Opens `FILE` (appending) or `-` (stdout) and starts the writer thread.
    pub fn open(spec: &str) -> Result<AccessLog, String> {
        let out: Box<dyn Write + Send> = if spec == "-" {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(spec)
                .map_err(|e| format!("--access-log {spec}: {e}"))?;
            Box::new(file)
        };
        let (tx, rx) = sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))
            .map_err(|e| format!("--access-log: cannot start writer: {e}"))?;
        Ok(AccessLog {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues one line (without newline).
    pub fn write(&self, line: String) {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else { return };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Flushes every queued line and stops the writer.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// Writes queued lines in batches: everything already queued goes out in one
/// `write_all` of whole lines, so a reader (`tail -f`, a log shipper) never sees a line
/// cut off by a buffer boundary, and sees each batch promptly.
fn write_lines(rx: Receiver<String>, mut out: Box<dyn Write + Send>) {
    let mut batch: Vec<u8> = Vec::new();
    while let Ok(line) = rx.recv() {
        batch.clear();
        push_line(&mut batch, &line);
        // Bounded: at most the queue's capacity is waiting; stop at 1 MiB anyway.
        while batch.len() < 1 << 20 {
            let Ok(line) = rx.try_recv() else { break };
            push_line(&mut batch, &line);
        }
        let _ = out.write_all(&batch);
        let _ = out.flush();
        if batch.capacity() > 1 << 20 {
            batch = Vec::new();
        }
    }
    let _ = out.flush();
}

fn push_line(batch: &mut Vec<u8>, line: &str) {
    batch.extend_from_slice(line.as_bytes());
    batch.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(path.to_str().unwrap()).unwrap();
        for i in 0..100 {
            log.write(format!("{{\"n\":{i}}}"));
        }
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0], "{\"n\":0}");
        assert_eq!(lines[99], "{\"n\":99}");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let err = AccessLog::open("/nonexistent-dir/x.log").err().unwrap();
        assert!(err.contains("/nonexistent-dir/x.log"), "{err}");
    }
}
