//! CSV (SPEC §4.5): documents flattened to leaf columns (`a.b`, `a[0]`), `_id` first then the
//! other columns in plain string order, rows ending in `\n`, RFC 4180 quoting. The column set
//! is known only after every document is seen, hence two passes (see the pipeline): the first
//! flattens each document into a compact row of (column number, cell) pairs, the second
//! writes the rows with the columns in their final order.

use super::emit::Emit;
use serde_json::Number;
use std::collections::HashMap;
use std::io::{self, Read, Write};

/// Column names → numbers. foldhash: SipHash was a tenth of pass one's time. Names can come
/// from documents (the keys of an `Any` property, array indices); foldhash is seeded at
/// random per process, which is resistance enough for one export's column set.
type Numbers = HashMap<String, u32, foldhash::fast::RandomState>;

/// Pass one: flattens documents emitted into it. `null` is a leaf with an empty cell; empty
/// arrays and objects produce nothing. Columns are numbered as they first appear.
#[derive(Default)]
pub struct Flattener {
    /// The current leaf's column name.
    key: String,
    frames: Vec<Frame>,
    numbers: Numbers,
    names: Vec<String>,
    /// The current document's row: (varint column, varint length, cell bytes)*.
    row: Vec<u8>,
    scratch: String,
}

struct Frame {
    /// Length of `key` at the container.
    at: usize,
    /// Arrays: the next element's index.
    next: usize,
    /// The document itself: its keys are column names as they are.
    top: bool,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint byte by byte; None when the input ends before its first byte.
fn read_varint(mut next: impl FnMut() -> io::Result<Option<u8>>) -> io::Result<Option<u64>> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(b) = next()? else {
            return if shift == 0 { Ok(None) } else { Err(bad_row()) };
        };
        n |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Ok(Some(n));
        }
    }
    Err(bad_row())
}

fn get_varint(buf: &[u8], pos: &mut usize) -> io::Result<u64> {
    let next = || {
        let b = buf.get(*pos).copied();
        *pos += b.is_some() as usize;
        Ok(b)
    };
    read_varint(next)?.ok_or_else(bad_row)
}

fn bad_row() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "spilled CSV row is malformed")
}

/// Rows flattened on their own (on another thread), their columns numbered by `names`;
/// `Flattener::merge` renumbers and spills them.
pub struct FlatBatch {
    names: Vec<String>,
    /// Rows as `spill_row` writes them.
    rows: Vec<u8>,
}

impl Flattener {
    /// The number of column `name`, given on first sight.
    fn number(numbers: &mut Numbers, names: &mut Vec<String>, name: &str) -> u32 {
        match numbers.get(name) {
            Some(&n) => n,
            None => {
                let n = names.len() as u32;
                numbers.insert(name.to_string(), n);
                names.push(name.to_string());
                n
            }
        }
    }

    fn leaf(&mut self, cell: &str) {
        let n = Self::number(&mut self.numbers, &mut self.names, &self.key);
        put_varint(&mut self.row, n as u64);
        put_varint(&mut self.row, cell.len() as u64);
        self.row.extend_from_slice(cell.as_bytes());
    }

    fn open(&mut self) {
        let top = self.frames.is_empty();
        self.frames.push(Frame {
            at: self.key.len(),
            next: 0,
            top,
        });
    }

    /// Writes the row of the document emitted since the last call as one spill record.
    pub fn spill_row<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<()> {
        let mut head = Vec::with_capacity(10);
        put_varint(&mut head, self.row.len() as u64);
        w.write_all(&head)?;
        w.write_all(&self.row)?;
        self.row.clear();
        self.frames.clear();
        self.key.clear();
        Ok(())
    }

    /// The rows spilled into `rows` by this flattener, with its column names.
    pub fn into_batch(self, rows: Vec<u8>) -> FlatBatch {
        FlatBatch {
            names: self.names,
            rows,
        }
    }

    /// Spills the rows of `batch` (flattened apart, in document order) to `w` as if they
    /// had been flattened here: their columns take this flattener's numbers.
    pub fn merge<W: Write + ?Sized>(&mut self, batch: &FlatBatch, w: &mut W) -> io::Result<()> {
        let numbers: Vec<u32> = batch
            .names
            .iter()
            .map(|name| Self::number(&mut self.numbers, &mut self.names, name))
            .collect();
        let rows = &batch.rows[..];
        let mut pos = 0;
        while pos < rows.len() {
            let len = usize::try_from(get_varint(rows, &mut pos)?).map_err(|_| bad_row())?;
            let end = pos
                .checked_add(len)
                .filter(|&e| e <= rows.len())
                .ok_or_else(bad_row)?;
            let row = &rows[..end];
            while pos < end {
                let column = get_varint(row, &mut pos)?;
                let n = usize::try_from(get_varint(row, &mut pos)?).map_err(|_| bad_row())?;
                let cell = pos
                    .checked_add(n)
                    .and_then(|e| row.get(pos..e))
                    .ok_or_else(bad_row)?;
                let number = usize::try_from(column)
                    .ok()
                    .and_then(|c| numbers.get(c))
                    .ok_or_else(bad_row)?;
                put_varint(&mut self.row, *number as u64);
                put_varint(&mut self.row, n as u64);
                self.row.extend_from_slice(cell);
                pos += n;
            }
            self.spill_row(w)?;
        }
        Ok(())
    }

    /// The final header and, for each column number, its position in it: `_id` first, then
    /// the rest in plain string order.
    pub fn columns(self) -> (Vec<String>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.names.len() as u32)
            .filter(|&n| self.names[n as usize] != "_id")
            .collect();
        order.sort_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut header = vec!["_id".to_string()];
        let mut position = vec![0u32; self.names.len()];
        for (i, &n) in order.iter().enumerate() {
            position[n as usize] = i as u32 + 1;
            header.push(self.names[n as usize].clone());
        }
        (header, position)
    }
}

impl Emit for Flattener {
    fn begin_object(&mut self) {
        self.open();
    }
    fn end_object(&mut self) {
        self.frames.pop();
    }
    fn begin_array(&mut self) {
        self.open();
    }
    fn end_array(&mut self) {
        self.frames.pop();
    }
    fn key(&mut self, k: &str) {
        let Some(f) = self.frames.last() else { return };
        self.key.truncate(f.at);
        if !f.top {
            self.key.push('.');
        }
        self.key.push_str(k);
    }
    fn item(&mut self) {
        let Some(f) = self.frames.last_mut() else {
            return;
        };
        self.key.truncate(f.at);
        let i = f.next;
        f.next += 1;
        use std::fmt::Write as _;
        let _ = write!(self.key, "[{i}]");
    }
    fn null(&mut self) {
        self.leaf("");
    }
    fn bool(&mut self, b: bool) {
        self.leaf(if b { "true" } else { "false" });
    }
    fn number(&mut self, n: &Number) {
        use std::fmt::Write as _;
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        let _ = write!(s, "{n}");
        self.leaf(&s);
        self.scratch = s;
    }
    fn str(&mut self, s: &str) {
        self.leaf(s);
    }
}

/// Reads the rows `Flattener::spill_row` wrote.
pub struct SpillRows<R: Read> {
    r: R,
    row: Vec<u8>,
}

impl<R: Read> SpillRows<R> {
    pub fn new(r: R) -> Self {
        SpillRows { r, row: Vec::new() }
    }

    /// The next row, or None at the end.
    pub fn next_row(&mut self) -> io::Result<Option<&[u8]>> {
        let r = &mut self.r;
        let next = || {
            let mut b = [0u8];
            Ok((r.read(&mut b)? == 1).then_some(b[0]))
        };
        let Some(len) = read_varint(next)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| bad_row())?;
        self.row.clear();
        // read to the end of the row without trusting `len` for an allocation up front
        (&mut self.r).take(len as u64).read_to_end(&mut self.row)?;
        if self.row.len() != len {
            return Err(bad_row());
        }
        Ok(Some(&self.row))
    }
}

pub struct CsvWriter<W: Write> {
    w: csv::Writer<W>,
    position: Vec<u32>,
    cells: Vec<(usize, usize)>,
    escape_formulas: bool,
}

/// Whether a spreadsheet would run the cell as a formula (it gets a leading `'`).
fn formula(cell: &[u8]) -> bool {
    matches!(
        cell.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

fn neutralize(cell: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if formula(cell) {
        let mut v = Vec::with_capacity(cell.len() + 1);
        v.push(b'\'');
        v.extend_from_slice(cell);
        v.into()
    } else {
        cell.into()
    }
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header row; `position` maps column numbers to header positions.
    pub fn new(
        w: W,
        header: &[String],
        position: Vec<u32>,
        escape_formulas: bool,
    ) -> io::Result<Self> {
        let w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(w);
        let mut this = CsvWriter {
            w,
            position,
            cells: vec![(0, 0); header.len()],
            escape_formulas,
        };
        let joined: Vec<&[u8]> = header.iter().map(|c| c.as_bytes()).collect();
        this.record(&joined)?;
        Ok(this)
    }

    fn record(&mut self, cells: &[&[u8]]) -> io::Result<()> {
        let res = if self.escape_formulas && cells.iter().any(|c| formula(c)) {
            self.w.write_record(cells.iter().map(|c| neutralize(c)))
        } else {
            self.w.write_record(cells)
        };
        res.map_err(io::Error::other)
    }

    /// Writes one spilled row.
    pub fn write_row(&mut self, row: &[u8]) -> io::Result<()> {
        self.cells.iter_mut().for_each(|c| *c = (0, 0));
        let mut pos = 0;
        while pos < row.len() {
            let n = get_varint(row, &mut pos)? as usize;
            let len = get_varint(row, &mut pos)? as usize;
            let end = pos.checked_add(len).filter(|&e| e <= row.len());
            let (Some(&at), Some(end)) = (self.position.get(n), end) else {
                return Err(bad_row());
            };
            self.cells[at as usize] = (pos, end);
            pos = end;
        }
        let cells: Vec<&[u8]> = self.cells.iter().map(|&(a, b)| &row[a..b]).collect();
        self.record(&cells)
    }

    pub fn finish(self) -> io::Result<W> {
        self.w
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Flattens every document into rows, as pass one does.
    fn flatten(docs: &[Value], flat: &mut Flattener, rows: &mut Vec<u8>) {
        for d in docs {
            super::super::emit::value(d, flat);
            flat.spill_row(rows).unwrap();
        }
    }

    /// Pass two: the spilled rows under the final header.
    fn write(flat: Flattener, spill: &[u8], escape: bool) -> String {
        let (header, position) = flat.columns();
        let mut w = CsvWriter::new(Vec::new(), &header, position, escape).unwrap();
        let mut rows = SpillRows::new(spill);
        while let Some(row) = rows.next_row().unwrap() {
            let row = row.to_vec();
            w.write_row(&row).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    fn run(docs: &[Value], escape: bool) -> String {
        let (mut flat, mut spill) = (Flattener::default(), Vec::new());
        flatten(docs, &mut flat, &mut spill);
        write(flat, &spill, escape)
    }

    /// As `run`, flattening `per` documents at a time apart and merging them.
    fn run_batched(docs: &[Value], per: usize) -> String {
        let (mut flat, mut spill) = (Flattener::default(), Vec::new());
        for chunk in docs.chunks(per) {
            let (mut apart, mut rows) = (Flattener::default(), Vec::new());
            flatten(chunk, &mut apart, &mut rows);
            flat.merge(&apart.into_batch(rows), &mut spill).unwrap();
        }
        write(flat, &spill, false)
    }

    #[test]
    fn batches_flattened_apart_merge_like_one_flattener() {
        let docs: Vec<Value> = (0..9)
            .map(|i| match i % 3 {
                0 => json!({"_id": i.to_string(), "a": i, "m": {"x": [i, null]}}),
                1 => json!({"_id": i.to_string(), "z": "é,\"", "a": null, "k": [[]]}),
                _ => json!({"_id": i.to_string(), "m": {"y": true, "x": []}, "b": 1.5}),
            })
            .collect();
        let whole = run(&docs, false);
        assert!(
            whole.starts_with("_id,a,b,m.x[0],m.x[1],m.y,z\n"),
            "{whole}"
        );
        for per in 1..=docs.len() {
            assert_eq!(run_batched(&docs, per), whole, "{per} per batch");
        }
    }

    #[test]
    fn malformed_batch_rows_are_errors() {
        let mut apart = Flattener::default();
        super::super::emit::value(&json!({"_id": "a", "b": "cell"}), &mut apart);
        let mut rows = Vec::new();
        apart.spill_row(&mut rows).unwrap();
        for cut in 1..rows.len() {
            let batch = FlatBatch {
                names: apart.names.clone(),
                rows: rows[..cut].to_vec(),
            };
            let err = Flattener::default().merge(&batch, &mut Vec::new());
            assert!(err.is_err(), "cut at {cut}");
        }
        // a column number the batch never named
        let batch = FlatBatch {
            names: vec!["_id".into()],
            rows: vec![3, 1, 1, b'x'],
        };
        assert!(Flattener::default().merge(&batch, &mut Vec::new()).is_err());
    }

    #[test]
    fn empty_export_is_a_header_of_id() {
        assert_eq!(run(&[], false), "_id\n");
    }

    #[test]
    fn flattening_ordering_nulls_and_missing() {
        let docs = [
            json!({"_id": "a", "object": "c_x", "b": {"z": 1, "y": [true, null]}, "t": [], "e": {}, "s": "x,\"y\"\nz"}),
            json!({"_id": "b", "object": "c_x", "n": null, "B": 2.5}),
        ];
        assert_eq!(
            run(&docs, false),
            "_id,B,b.y[0],b.y[1],b.z,n,object,s\n\
             a,,true,,1,,c_x,\"x,\"\"y\"\"\nz\"\n\
             b,2.5,,,,,c_x,\n"
        );
    }

    #[test]
    fn formulas_are_neutralized_when_asked() {
        let docs =
            [json!({"_id": "a", "f": "=HYPERLINK(\"x\")", "g": "@sum", "h": "-1", "i": "ok"})];
        let out = run(&docs, true);
        assert_eq!(
            out,
            "_id,f,g,h,i\na,\"'=HYPERLINK(\"\"x\"\")\",'@sum,'-1,ok\n"
        );
        assert!(run(&docs, false).contains(",\"=HYPERLINK"));
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        let mut w = CsvWriter::new(Vec::new(), &["_id".into()], vec![0], false).unwrap();
        for row in [&[0x80u8][..], &[0, 5, b'a'], &[9, 0], &[0xff; 12]] {
            assert!(w.write_row(row).is_err(), "{row:?}");
        }
        let mut rows = SpillRows::new(&[0x85u8][..]);
        assert!(rows.next_row().is_err());
        // a length that never ends, or longer than what follows
        assert!(SpillRows::new(&[0xffu8; 11][..]).next_row().is_err());
        assert!(SpillRows::new(&[0x05u8, b'a'][..]).next_row().is_err());
    }
}
