//! CSV (SPEC §4.5): documents flattened to leaf columns (`a.b`, `a[0]`), `_id` first then the
//! other columns in plain string order, rows ending in `\n`, RFC 4180 quoting. The column set
//! is known only after every document is seen, hence two passes (see the pipeline).

use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};

/// Leaf values of a document as (column, cell). `null` is a leaf with an empty cell; empty
/// arrays and objects produce nothing.
pub fn flatten(doc: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in doc {
        flatten_into(k.clone(), v, &mut out);
    }
    out
}

fn flatten_into(key: String, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten_into(format!("{key}.{k}"), x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten_into(format!("{key}[{i}]"), x, out);
            }
        }
        Value::Null => out.push((key, String::new())),
        Value::String(s) => out.push((key, s.clone())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::Bool(b) => out.push((key, b.to_string())),
    }
}

/// Collects the column set during the first pass.
#[derive(Default)]
pub struct Columns(BTreeSet<String>);

impl Columns {
    pub fn add(&mut self, doc: &Map<String, Value>) {
        for (k, _) in flatten(doc) {
            if !self.0.contains(&k) {
                self.0.insert(k);
            }
        }
    }

    /// `_id` first, then the rest in plain string order.
    pub fn ordered(self) -> Vec<String> {
        let mut cols = vec!["_id".to_string()];
        cols.extend(self.0.into_iter().filter(|c| c != "_id"));
        cols
    }
}

pub struct CsvWriter<W: Write> {
    w: csv::Writer<W>,
    index: HashMap<String, usize>,
    width: usize,
    escape_formulas: bool,
}

/// A leading `'` for cells a spreadsheet would run as a formula.
fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header row.
    pub fn new(w: W, columns: Vec<String>, escape_formulas: bool) -> io::Result<Self> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(w);
        let header: Vec<_> = columns
            .iter()
            .map(|c| {
                if escape_formulas {
                    neutralize(c)
                } else {
                    c.into()
                }
            })
            .collect();
        w.write_record(header.iter().map(|c| c.as_bytes()))
            .map_err(io::Error::other)?;
        let width = columns.len();
        let index = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c, i))
            .collect();
        Ok(CsvWriter {
            w,
            index,
            width,
            escape_formulas,
        })
    }

    pub fn write_doc(&mut self, doc: &Map<String, Value>) -> io::Result<()> {
        let mut row = vec![String::new(); self.width];
        for (k, v) in flatten(doc) {
            if let Some(&i) = self.index.get(&k) {
                row[i] = v;
            }
        }
        let cells = row.iter().map(|c| {
            if self.escape_formulas {
                neutralize(c)
            } else {
                c.as_str().into()
            }
        });
        self.w
            .write_record(cells.collect::<Vec<_>>().iter().map(|c| c.as_bytes()))
            .map_err(io::Error::other)
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
    use serde_json::json;

    fn run(docs: &[Value], escape: bool) -> String {
        let mut cols = Columns::default();
        for d in docs {
            cols.add(d.as_object().unwrap());
        }
        let mut w = CsvWriter::new(Vec::new(), cols.ordered(), escape).unwrap();
        for d in docs {
            w.write_doc(d.as_object().unwrap()).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
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
}
