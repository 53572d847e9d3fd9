//! Parallel deflate for the archive's data entry, the way pigz does it: the input is cut
//! into chunks that worker threads compress independently, each primed with the last
//! 32 KiB of the chunk before it (so the ratio stays that of one stream) and ended with a
//! sync flush (so the pieces concatenate, in order, into one valid deflate stream). The
//! stream has no final block; the zip writer's own encoder, which never sees any input,
//! adds the empty final block when the entry is finished.
//!
//! Memory is bounded: at most `2 × workers` chunks are in flight. The workers also take
//! the CRC-32 of their chunks, which the zip entry needs, off the writing thread.

use flate2::{Compress, Compression, FlushCompress};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Uncompressed bytes per chunk.
const CHUNK: usize = 512 * 1024;
/// Deflate's window: how much of the previous chunk primes the next one.
const DICT: usize = 32 * 1024;

struct Job {
    input: Vec<u8>,
    dict: Vec<u8>,
    reply: SyncSender<io::Result<Done>>,
}

/// A compressed chunk, its input's CRC-32, and the input buffer back for reuse.
struct Done {
    compressed: Vec<u8>,
    crc: crc32fast::Hasher,
    input: Vec<u8>,
}

/// A writer that deflates what it is given on `workers` threads and writes the raw deflate
/// stream (without a final block) to `out`, in order. It also keeps the CRC-32 and length
/// of the uncompressed data, which the zip entry needs.
pub struct ParallelDeflate<W: Write> {
    /// Taken by `finish`.
    out: Option<W>,
    chunk: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    inflight: VecDeque<Receiver<io::Result<Done>>>,
    max_inflight: usize,
    /// Input buffers back from the workers: fresh 512 KiB buffers cost page faults.
    spare: Vec<Vec<u8>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelDeflate<W> {
    /// Fails if a worker thread cannot start (those already started exit: the job channel
    /// closes with the return).
    pub fn new(out: W, level: u32, workers: usize) -> io::Result<Self> {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel::<Job>(workers);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..workers)
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("deflate-{i}"))
                    .spawn(move || worker(rx, level))
            })
            .collect::<io::Result<_>>()?;
        Ok(ParallelDeflate {
            out: Some(out),
            chunk: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
            inflight: VecDeque::new(),
            max_inflight: workers * 2,
            spare: Vec::new(),
            jobs: Some(tx),
            workers: handles,
        })
    }

    /// Hands the current chunk to the workers.
    fn dispatch(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        while self.inflight.len() >= self.max_inflight {
            self.write_oldest()?;
        }
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let input = std::mem::replace(&mut self.chunk, fresh);
        let dict = std::mem::take(&mut self.dict);
        self.dict = input[input.len().saturating_sub(DICT)..].to_vec();
        let (reply, result) = sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or_else(gone)?;
        jobs.send(Job { input, dict, reply }).map_err(|_| gone())?;
        self.inflight.push_back(result);
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(next) = self.inflight.pop_front() {
            let mut done = next.recv().map_err(|_| gone())??;
            self.out
                .as_mut()
                .ok_or_else(gone)?
                .write_all(&done.compressed)?;
            self.crc.combine(&done.crc);
            done.input.clear();
            self.spare.push(done.input);
        }
        Ok(())
    }

    /// Compresses and writes everything; returns the output writer, the CRC-32 and the
    /// length of the uncompressed data.
    pub fn finish(mut self) -> io::Result<(W, u32, u64)> {
        self.dispatch()?;
        while !self.inflight.is_empty() {
            self.write_oldest()?;
        }
        self.stop();
        let mut out = self.out.take().ok_or_else(gone)?;
        out.flush()?;
        let crc = std::mem::take(&mut self.crc).finalize();
        Ok((out, crc, self.len))
    }

    fn stop(&mut self) {
        self.jobs = None;
        self.inflight.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Drop for ParallelDeflate<W> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<W: Write> Write for ParallelDeflate<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        self.len += n as u64;
        while !buf.is_empty() {
            let room = CHUNK - self.chunk.len();
            let take = room.min(buf.len());
            self.chunk.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.chunk.len() == CHUNK {
                self.dispatch()?;
            }
        }
        Ok(n)
    }

    /// Does not force a chunk out: a sync point every flush would hurt the ratio.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gone() -> io::Error {
    io::Error::other("a deflate worker stopped")
}

fn worker(jobs: Arc<Mutex<Receiver<Job>>>, level: u32) {
    let mut c = Compress::new(Compression::new(level), false);
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        c.reset();
        let done = deflate_chunk(&mut c, &job.dict, &job.input).map(|compressed| {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&job.input);
            Done {
                compressed,
                crc,
                input: job.input,
            }
        });
        let _ = job.reply.send(done);
    }
}

/// Raw deflate of `input` primed with `dict`, ended by a sync flush (byte-aligned, not
/// final), so chunks compressed this way concatenate into one stream.
fn deflate_chunk(c: &mut Compress, dict: &[u8], input: &[u8]) -> io::Result<Vec<u8>> {
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(input.len() / 4 + 1024);
    let start = c.total_in();
    loop {
        let done = (c.total_in() - start) as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        c.compress_vec(&input[done..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // the flush is complete when all input is taken and output space was left over
        if (c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::DeflateDecoder;
    use std::io::Read;

    fn roundtrip(data: &[u8], workers: usize, pieces: usize) {
        let mut w = ParallelDeflate::new(Vec::new(), 6, workers).unwrap();
        for part in data.chunks(data.len().div_ceil(pieces.max(1)).max(1)) {
            w.write_all(part).unwrap();
        }
        let (mut out, crc, len) = w.finish().unwrap();
        out.extend_from_slice(&[0x03, 0x00]); // the empty final block the zip encoder adds
        let mut back = Vec::new();
        DeflateDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert_eq!(len, data.len() as u64);
        assert_eq!(crc, crc32fast::hash(data));
    }

    #[test]
    fn concatenated_chunks_inflate_to_the_input() {
        let mut data = Vec::new();
        let mut x = 7u64;
        while data.len() < CHUNK * 5 + 1234 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // compressible text with some noise, spanning chunk boundaries
            data.extend_from_slice(format!("{{\"n\":{},\"s\":\"row\"}}\n", x % 1000).as_bytes());
        }
        roundtrip(&data, 2, 1);
        roundtrip(&data, 3, 977);
        roundtrip(&data[..10], 1, 1);
        roundtrip(b"", 2, 1);
    }

    #[test]
    fn incompressible_input_survives() {
        let data: Vec<u8> = (0..CHUNK * 2 + 5).map(|i| (i * 7919 % 251) as u8).collect();
        roundtrip(&data, 2, 3);
    }
}
