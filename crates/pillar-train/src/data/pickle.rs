//! A reader of the Python pickles that torchvision's CIFAR folders hold (`cifar-10-batches-py`,
//! `cifar-100-python`): dictionaries of byte strings, integer lists and one numpy `uint8`
//! array, written by Python 2's `cPickle` with protocol 2 (and by Python 3 with protocols 2 to
//! 4 when a user re-pickles them).
//!
//! Hand-written rather than `serde-pickle`: that crate cannot build numpy arrays (its value
//! API keeps an unknown class's state only as an opaque tuple), converts nested values
//! recursively (a file of a few kilobytes of nested lists overflows the stack, which aborts),
//! and copies a memoised value at every reference. Here nothing runs: opcodes build plain
//! values, `REDUCE` and `BUILD` record their callable, arguments and state for the caller to
//! interpret; nesting depth and the number of values are bounded as they are built; every
//! length is checked against the bytes left before anything is taken; byte strings are shared,
//! not copied, when a memo entry is referenced again; and a list or dict referenced a second
//! time is refused (sharing a mutable object is not something a data file needs).

use std::collections::HashMap;
use std::rc::Rc;

/// Deepest nesting of containers accepted (a CIFAR batch nests five deep).
pub const MAX_DEPTH: u32 = 64;

/// Most values one pickle may build, memo copies included (a CIFAR-100 split has about
/// 150,000: labels and file names).
pub const MAX_VALUES: usize = 1 << 22;

/// A Python value as the pickle describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An integer (those beyond 64 bits are refused).
    Int(i64),
    /// A float.
    Float(f64),
    /// A Python 2 `str` or a Python 3 `bytes`.
    Bytes(Rc<[u8]>),
    /// A unicode string.
    Str(Rc<str>),
    /// A class or function named by module and name, never looked up.
    Global(Rc<str>, Rc<str>),
    /// A list.
    List(Container),
    /// A tuple.
    Tuple(Container),
    /// A dict, as `[key, value, key, value, ...]`.
    Dict(Container),
    /// `callable(*args)` with the state a `BUILD` gave it: `[callable, args, state]`, the
    /// state `None` when there was none.
    Object(Container),
}

/// The items of a list, tuple, dict or object, with what bounds them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Container {
    items: Vec<Value>,
    depth: u32,
    values: usize,
}

impl Container {
    /// The items.
    pub fn items(&self) -> &[Value] {
        &self.items
    }
}

impl Value {
    fn depth(&self) -> u32 {
        self.container().map_or(0, |c| c.depth)
    }

    /// Values in this one, itself included.
    fn values(&self) -> usize {
        self.container().map_or(1, |c| c.values)
    }

    fn container(&self) -> Option<&Container> {
        match self {
            Value::List(c) | Value::Tuple(c) | Value::Dict(c) | Value::Object(c) => Some(c),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn sequence(&self) -> Option<&[Value]> {
        match self {
            Value::List(c) | Value::Tuple(c) => Some(&c.items),
            _ => None,
        }
    }

    /// The value of a dict at the key spelled `key`, as bytes (Python 2 `str`, Python 3
    /// `bytes`) or as a unicode string.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(c) = self else { return None };
        c.items
            .chunks_exact(2)
            .find(|kv| kv[0].text().is_some_and(|k| k == key.as_bytes()))
            .map(|kv| &kv[1])
    }

    /// The bytes of a byte string, or of a unicode string in UTF-8.
    pub fn text(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Str(_) => "a string".into(),
            Value::Global(m, n) => format!("{m}.{n}"),
            Value::List(_) => "a list".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Object(c) => match c.items.first() {
                Some(Value::Global(m, n)) => format!("a {m}.{n} object"),
                _ => "an object".into(),
            },
        }
    }
}

/// Why a pickle was refused, with the byte offset of the opcode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pickle byte {at}: {what}")]
pub struct Error {
    /// Offset of the opcode.
    pub at: usize,
    /// What is wrong.
    pub what: String,
}

/// What sits on the stack: a value, or a `MARK`.
#[derive(Debug)]
enum Slot {
    Mark,
    Value(Value),
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    at: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Value>,
    values: usize,
}

/// Parses a whole pickle and returns the value it ends with (`STOP`).
pub fn parse(bytes: &[u8]) -> Result<Value, Error> {
    let mut m = Machine {
        bytes,
        pos: 0,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        values: 0,
    };
    m.run()
}

impl Machine<'_> {
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, Error> {
        Err(Error {
            at: self.at,
            what: what.into(),
        })
    }

    /// The next `n` bytes, if the pickle has them.
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        match self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
        {
            Some(end) => {
                let out = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => self.fail(format!(
                "truncated: {n} more bytes announced, {} left",
                self.bytes.len() - self.pos
            )),
        }
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn length(&mut self, width: usize) -> Result<usize, Error> {
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(self.take(width)?);
        usize::try_from(u64::from_le_bytes(le)).or_else(|_| self.fail("a length beyond memory"))
    }

    /// A line of text (the `GLOBAL` opcode's module and name), at most 256 bytes.
    fn line(&mut self) -> Result<Rc<str>, Error> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().take(256).position(|&b| b == b'\n') else {
            return self.fail("a GLOBAL name without its newline within 256 bytes");
        };
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| Error {
            at: self.at,
            what: "a GLOBAL name that is not text".into(),
        })?;
        self.pos += end + 1;
        Ok(text.into())
    }

    fn count(&mut self, values: usize) -> Result<(), Error> {
        self.values = self.values.saturating_add(values);
        if self.values > MAX_VALUES {
            return self.fail(format!("more than {MAX_VALUES} values"));
        }
        Ok(())
    }

    fn push(&mut self, value: Value) -> Result<(), Error> {
        self.count(1)?;
        self.stack.push(Slot::Value(value));
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, Error> {
        match self.stack.pop() {
            Some(Slot::Value(v)) => Ok(v),
            Some(Slot::Mark) => self.fail("a MARK where a value was expected"),
            None => self.fail("the stack is empty"),
        }
    }

    fn top(&mut self) -> Result<&mut Value, Error> {
        match self.stack.last_mut() {
            Some(Slot::Value(v)) => Ok(v),
            _ => Err(Error {
                at: self.at,
                what: "no value on the stack".into(),
            }),
        }
    }

    /// The values above the topmost `MARK`, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, Error> {
        let Some(mark) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return self.fail("no MARK on the stack");
        };
        // No MARK lies above the topmost one.
        let items = self
            .stack
            .drain(mark + 1..)
            .filter_map(|s| match s {
                Slot::Value(v) => Some(v),
                Slot::Mark => None,
            })
            .collect();
        self.stack.pop();
        Ok(items)
    }

    /// A container of `items`, its depth checked.
    fn container(&self, items: Vec<Value>) -> Result<Container, Error> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return self.fail(format!("containers nested more than {MAX_DEPTH} deep"));
        }
        let values = 1 + items.iter().map(Value::values).sum::<usize>();
        Ok(Container {
            items,
            depth,
            values,
        })
    }

    /// Appends `items` to the list, dict or object on top of the stack.
    fn extend(&mut self, items: Vec<Value>, what: &str) -> Result<(), Error> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        let values: usize = items.iter().map(Value::values).sum();
        if depth > MAX_DEPTH {
            return self.fail(format!("containers nested more than {MAX_DEPTH} deep"));
        }
        let at = self.at;
        let c = match (what, self.top()?) {
            ("append", Value::List(c)) | ("setitem", Value::Dict(c)) => c,
            (_, other) => {
                return Err(Error {
                    at,
                    what: format!("{what} to {}", other.kind()),
                });
            }
        };
        if what == "setitem" && !items.len().is_multiple_of(2) {
            return Err(Error {
                at,
                what: "SETITEMS with a key but no value".into(),
            });
        }
        c.items.extend(items);
        c.depth = c.depth.max(depth);
        c.values += values;
        Ok(())
    }

    fn memo_put(&mut self, id: u32) -> Result<(), Error> {
        let value = self.top()?.clone();
        self.count(value.values())?;
        self.memo.insert(id, value);
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Result<(), Error> {
        let Some(value) = self.memo.get(&id) else {
            return self.fail(format!("memo entry {id} was never stored"));
        };
        if matches!(value, Value::List(_) | Value::Dict(_)) {
            return self.fail(format!(
                "{} referenced a second time (memo entry {id}): a shared mutable object",
                value.kind()
            ));
        }
        let value = value.clone();
        self.count(value.values())?;
        self.stack.push(Slot::Value(value));
        Ok(())
    }

    fn bytes_value(&mut self, width: usize) -> Result<(), Error> {
        let n = self.length(width)?;
        let b: Rc<[u8]> = self.take(n)?.into();
        self.push(Value::Bytes(b))
    }

    fn str_value(&mut self, width: usize) -> Result<(), Error> {
        let n = self.length(width)?;
        let b = self.take(n)?;
        let s: Rc<str> = match std::str::from_utf8(b) {
            Ok(s) => s.into(),
            Err(_) => return self.fail("a unicode string that is not UTF-8"),
        };
        self.push(Value::Str(s))
    }

    fn run(&mut self) -> Result<Value, Error> {
        loop {
            self.at = self.pos;
            let [op] = self.take_array::<1>()?;
            match op {
                0x80 => {
                    let [protocol] = self.take_array::<1>()?;
                    if protocol > 4 {
                        return self.fail(format!(
                            "pickle protocol {protocol}; pillar reads protocols 2 to 4 \
                             (re-save with pickle.dump(..., protocol=4))"
                        ));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a hint for buffering.
                }
                b'.' => {
                    let value = self.pop()?;
                    return if self.stack.is_empty() {
                        Ok(value)
                    } else {
                        self.fail("STOP with more than one value on the stack")
                    };
                }
                b'(' => self.stack.push(Slot::Mark),
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.take_array()?);
                    self.push(Value::Int(v.into()))?;
                }
                b'K' => {
                    let [v] = self.take_array()?;
                    self.push(Value::Int(v.into()))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_array()?);
                    self.push(Value::Int(v.into()))?;
                }
                0x8a => {
                    let [n] = self.take_array()?;
                    let n = usize::from(n);
                    if n > 8 {
                        return self.fail(format!("an integer of {n} bytes; at most 8 are read"));
                    }
                    let b = self.take(n)?;
                    let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut le = [fill; 8];
                    le[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(le)))?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take_array()?);
                    self.push(Value::Float(v))?;
                }
                b'U' | b'C' => self.bytes_value(1)?,
                b'B' => self.bytes_value(4)?,
                0x8e => self.bytes_value(8)?,
                b'T' => {
                    // BINSTRING's length is signed.
                    let n = i32::from_le_bytes(self.take_array()?);
                    let Ok(n) = usize::try_from(n) else {
                        return self.fail(format!("a string of length {n}"));
                    };
                    let b: Rc<[u8]> = self.take(n)?.into();
                    self.push(Value::Bytes(b))?;
                }
                0x8c => self.str_value(1)?,
                b'X' => self.str_value(4)?,
                0x8d => self.str_value(8)?,
                b'}' => self.push(Value::Dict(Container::default()))?,
                b']' => self.push(Value::List(Container::default()))?,
                b')' => self.push(Value::Tuple(Container::default()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    let c = self.container(items)?;
                    self.push(Value::Tuple(c))?;
                }
                b'l' | b'd' => {
                    let items = self.pop_mark()?;
                    if op == b'd' && !items.len().is_multiple_of(2) {
                        return self.fail("DICT with a key but no value");
                    }
                    let c = self.container(items)?;
                    self.push(if op == b'l' {
                        Value::List(c)
                    } else {
                        Value::Dict(c)
                    })?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let c = self.container(items)?;
                    self.push(Value::Tuple(c))?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend(vec![v], "append")?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend(items, "append")?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend(vec![k, v], "setitem")?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend(items, "setitem")?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module, name))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return self.fail("STACK_GLOBAL of values that are not strings");
                    };
                    self.push(Value::Global(module, name))?;
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    if !matches!(args, Value::Tuple(_)) {
                        return self.fail(format!("arguments that are {}", args.kind()));
                    }
                    let callable = self.pop()?;
                    let value = self.reduce(callable, args)?;
                    self.push(value)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let at = self.at;
                    let depth = 1 + state.depth();
                    if depth > MAX_DEPTH {
                        return self.fail(format!("containers nested more than {MAX_DEPTH} deep"));
                    }
                    match self.top()? {
                        Value::Object(c) if c.items.len() == 3 => {
                            c.values += state.values();
                            c.depth = c.depth.max(depth);
                            c.items[2] = state;
                        }
                        other => {
                            return Err(Error {
                                at,
                                what: format!("BUILD of {}", other.kind()),
                            });
                        }
                    }
                }
                b'q' => {
                    let [id] = self.take_array()?;
                    self.memo_put(id.into())?;
                }
                b'r' => {
                    let id = u32::from_le_bytes(self.take_array()?);
                    self.memo_put(id)?;
                }
                0x94 => {
                    let id = u32::try_from(self.memo.len()).or_else(|_| self.fail("memo full"))?;
                    self.memo_put(id)?;
                }
                b'h' => {
                    let [id] = self.take_array()?;
                    self.memo_get(id.into())?;
                }
                b'j' => {
                    let id = u32::from_le_bytes(self.take_array()?);
                    self.memo_get(id)?;
                }
                other => {
                    return self.fail(format!(
                        "opcode {other:#04x} ({:?}), which a CIFAR batch does not use",
                        char::from(other)
                    ));
                }
            }
        }
    }

    /// `callable(*args)`: Python 3's spelling of bytes in protocol 2,
    /// `_codecs.encode(text, 'latin1')`, becomes the bytes; anything else an object.
    fn reduce(&self, callable: Value, args: Value) -> Result<Value, Error> {
        if let (Value::Global(m, n), Value::Tuple(a)) = (&callable, &args)
            && (&**m, &**n) == ("_codecs", "encode")
        {
            return match a.items.as_slice() {
                [Value::Str(text), Value::Str(enc)] if &**enc == "latin1" => {
                    let bytes: Option<Vec<u8>> =
                        text.chars().map(|c| u8::try_from(c).ok()).collect();
                    match bytes {
                        Some(b) => Ok(Value::Bytes(b.into())),
                        None => self.fail("latin1 text with a character beyond U+00FF"),
                    }
                }
                _ => self.fail("_codecs.encode with arguments other than (text, 'latin1')"),
            };
        }
        let c = self.container(vec![callable, args, Value::None])?;
        Ok(Value::Object(c))
    }
}

/// A numpy `uint8` matrix: `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` with
/// the state `(1, (rows, cols), dtype('u1'), False, raw bytes)`. Returns `(rows, cols)` and the
/// bytes, checked to be `rows * cols` long.
pub fn uint8_matrix(value: &Value) -> Result<([usize; 2], Rc<[u8]>), String> {
    let Value::Object(c) = value else {
        return Err(format!("{}, not a numpy array", value.kind()));
    };
    let [callable, _args, state] = c.items() else {
        return Err("an object that is not a numpy array".into());
    };
    match callable {
        Value::Global(m, n)
            if (&**m == "numpy.core.multiarray" || &**m == "numpy._core.multiarray")
                && &**n == "_reconstruct" => {}
        other => return Err(format!("{}, not a numpy array", other.kind())),
    }
    let Some([_version, shape, dtype, fortran, raw]) = state.sequence() else {
        return Err("a numpy array without the state (version, shape, dtype, order, data)".into());
    };
    let shape: Vec<usize> = shape
        .sequence()
        .ok_or("a numpy array whose shape is not a tuple")?
        .iter()
        .map(|d| match d {
            Value::Int(d) => usize::try_from(*d).map_err(|_| format!("a dimension of {d}")),
            other => Err(format!("a dimension that is {}", other.kind())),
        })
        .collect::<Result<_, _>>()?;
    let &[rows, cols] = shape.as_slice() else {
        return Err(format!(
            "a numpy array of shape {shape:?}, not [images, pixels]"
        ));
    };
    let dtype_name = match dtype {
        Value::Object(d) => d
            .items()
            .get(1)
            .and_then(Value::sequence)
            .and_then(|a| a.first()),
        _ => None,
    };
    if dtype_name.and_then(Value::text) != Some(b"u1") {
        return Err(format!(
            "a numpy array whose dtype is not uint8 ({})",
            dtype_name.map_or_else(
                || dtype.kind(),
                |d| String::from_utf8_lossy(d.text().unwrap_or_default()).into_owned()
            )
        ));
    }
    if *fortran != Value::Bool(false) {
        return Err("a numpy array in Fortran order".into());
    }
    let Value::Bytes(raw) = raw else {
        return Err(format!("a numpy array whose data is {}", raw.kind()));
    };
    if rows.checked_mul(cols) != Some(raw.len()) {
        return Err(format!(
            "a numpy array of shape [{rows}, {cols}] with {} bytes of data",
            raw.len()
        ));
    }
    Ok(([rows, cols], raw.clone()))
}

/// Writes pickles as Python 2's `cPickle` writes a CIFAR batch (protocol 2, byte strings as
/// `BINSTRING`, the array through numpy's `_reconstruct`): the tests' way to make the files
/// torchvision downloads without Python.
#[cfg(test)]
pub mod write {
    /// One item of a batch dict.
    pub enum Item<'a> {
        /// A `uint8` matrix of `rows` rows.
        Matrix {
            /// Its rows.
            rows: usize,
            /// All its values, row after row.
            data: &'a [u8],
        },
        /// A list of small integers.
        Ints(&'a [u16]),
        /// A byte string.
        Bytes(&'a [u8]),
    }

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        if s.len() < 256 {
            out.push(b'U');
            out.push(s.len() as u8);
        } else {
            out.push(b'T');
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(s);
    }

    fn int(out: &mut Vec<u8>, v: u32) {
        match v {
            0..=0xff => out.extend_from_slice(&[b'K', v as u8]),
            0x100..=0xffff => {
                out.push(b'M');
                out.extend_from_slice(&(v as u16).to_le_bytes());
            }
            _ => {
                out.push(b'J');
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// A dict of `items` by key, as `cPickle.dump(d, f, 2)` writes it.
    pub fn batch(items: &[(&str, Item<'_>)]) -> Vec<u8> {
        let mut out = vec![0x80, 2, b'}', b'q', 1, b'('];
        let mut memo = 2u8;
        let mut put = |out: &mut Vec<u8>| {
            out.extend_from_slice(&[b'q', memo]);
            memo = memo.wrapping_add(1);
        };
        for (key, item) in items {
            string(&mut out, key.as_bytes());
            put(&mut out);
            match item {
                Item::Matrix { rows, data } => {
                    out.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\n");
                    put(&mut out);
                    out.extend_from_slice(b"cnumpy\nndarray\n");
                    put(&mut out);
                    out.extend_from_slice(&[b'K', 0, 0x85]);
                    string(&mut out, b"b");
                    out.extend_from_slice(&[0x87, b'R']);
                    put(&mut out);
                    out.extend_from_slice(&[b'(', b'K', 1]);
                    int(&mut out, *rows as u32);
                    int(&mut out, (data.len() / rows.max(&1)) as u32);
                    out.push(0x86);
                    out.extend_from_slice(b"cnumpy\ndtype\n");
                    put(&mut out);
                    string(&mut out, b"u1");
                    out.extend_from_slice(&[b'K', 0, b'K', 1, 0x87, b'R']);
                    put(&mut out);
                    out.extend_from_slice(&[b'(', b'K', 3]);
                    string(&mut out, b"|");
                    out.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
                    out.push(0x89);
                    out.push(b'T');
                    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"tb");
                }
                Item::Ints(values) => {
                    out.push(b']');
                    put(&mut out);
                    // cPickle batches APPENDS by 1000.
                    for chunk in values.chunks(1000) {
                        out.push(b'(');
                        for &v in chunk {
                            int(&mut out, v.into());
                        }
                        out.push(b'e');
                    }
                }
                Item::Bytes(b) => {
                    string(&mut out, b);
                    put(&mut out);
                }
            }
        }
        out.extend_from_slice(b"u.");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::write::{Item, batch};
    use super::*;

    fn err(bytes: &[u8]) -> String {
        parse(bytes).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_cifar_batch_as_python_2_wrote_it() {
        let pixels: Vec<u8> = (0..2 * 3072).map(|i| (i % 251) as u8).collect();
        let bytes = batch(&[
            (
                "data",
                Item::Matrix {
                    rows: 2,
                    data: &pixels,
                },
            ),
            ("labels", Item::Ints(&[3, 9])),
            ("batch_label", Item::Bytes(b"testing batch 1 of 1")),
        ]);
        let v = parse(&bytes).unwrap();
        let (shape, raw) = uint8_matrix(v.get("data").unwrap()).unwrap();
        assert_eq!((shape, &*raw), ([2, 3072], &pixels[..]));
        let labels = v.get("labels").unwrap().sequence().unwrap();
        assert_eq!(labels, &[Value::Int(3), Value::Int(9)]);
        assert_eq!(
            v.get("batch_label").unwrap().text().unwrap(),
            b"testing batch 1 of 1"
        );
        assert_eq!(v.get("missing"), None);
    }

    /// `pickle.dumps({b'data': numpy.zeros((1, 4), numpy.uint8), b'labels': [1, 2]},
    /// protocol=2)` by Python 3.11 and numpy 2.4: bytes as `_codecs.encode`, shared strings by
    /// `BINGET`.
    const PY3_PROTOCOL_2: &[u8] = b"\x80\x02}q\x00(c_codecs\x0aencode\x0aq\x01X\x04\x00\x00\x00dataq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05cnumpy._core.multiarray\x0a_reconstruct\x0aq\x06cnumpy\x0andarray\x0aq\x07K\x00\x85q\x08h\x01X\x01\x00\x00\x00bq\x09h\x03\x86q\x0aRq\x0b\x87q\x0cRq\x0d(K\x01K\x01K\x04\x86q\x0ecnumpy\x0adtype\x0aq\x0fX\x02\x00\x00\x00u1q\x10\x89\x88\x87q\x11Rq\x12(K\x03X\x01\x00\x00\x00|q\x13NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x14b\x89h\x01X\x04\x00\x00\x00\x00\x00\x00\x00q\x15h\x03\x86q\x16Rq\x17tq\x18bh\x01X\x06\x00\x00\x00labelsq\x19h\x03\x86q\x1aRq\x1b]q\x1c(K\x01K\x02eu.";

    /// The same with protocol 4: frames, `MEMOIZE`, `STACK_GLOBAL`, `SHORT_BINBYTES`.
    const PY3_PROTOCOL_4: &[u8] = b"\x80\x04\x95\xab\x00\x00\x00\x00\x00\x00\x00}\x94(C\x04data\x94\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x01K\x04\x86\x94h\x05\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x89C\x04\x00\x00\x00\x00\x94t\x94bC\x06labels\x94]\x94(K\x01K\x02eu.";

    #[test]
    fn reads_what_python_3_writes() {
        for bytes in [PY3_PROTOCOL_2, PY3_PROTOCOL_4] {
            let v = parse(bytes).unwrap();
            let (shape, raw) = uint8_matrix(v.get("data").unwrap()).unwrap();
            assert_eq!((shape, &*raw), ([1, 4], &[0u8; 4][..]));
            let labels = v.get("labels").unwrap().sequence().unwrap();
            assert_eq!(labels, &[Value::Int(1), Value::Int(2)]);
        }
    }

    #[test]
    fn hostile_pickles_are_errors_with_bounded_work() {
        // Nesting: a tiny file of ten thousand nested lists is refused at depth 65.
        let mut deep = vec![0x80, 2];
        deep.extend(std::iter::repeat_n(b']', 10_000));
        deep.extend(std::iter::repeat_n(b'a', 9_999));
        deep.push(b'.');
        assert!(err(&deep).contains("nested more than 64"), "{}", err(&deep));
        let mut tuples = vec![0x80, 2, b')'];
        tuples.extend(std::iter::repeat_n(0x85, 10_000));
        assert!(err(&tuples).contains("nested more than 64"));
        // Doubling by memo references: a tuple of two copies of the last, 40 times.
        let mut bomb = vec![0x80, 2, b')'];
        for _ in 0..40 {
            bomb.extend_from_slice(&[b'q', 0, b'h', 0, 0x86]);
        }
        bomb.push(b'.');
        assert!(
            err(&bomb).contains("more than 4194304 values"),
            "{}",
            err(&bomb)
        );
        // A list referenced twice.
        assert!(err(b"\x80\x02]q\x00h\x00\x86.").contains("shared mutable object"));
        // Lengths past the end, and a negative one.
        assert!(err(b"\x80\x02T\xff\xff\xff\x7fabc").contains("truncated"));
        assert!(err(b"\x80\x02T\xff\xff\xff\xffabc").contains("length -1"));
        assert!(err(b"\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\xff").contains("truncated"));
        // Code never runs, and unknown opcodes are named.
        let call = parse(b"\x80\x02cos\nsystem\nq\x00(U\x02lstR.").unwrap();
        assert_eq!(call.kind(), "a os.system object");
        assert!(
            uint8_matrix(&call)
                .unwrap_err()
                .contains("os.system, not a numpy array")
        );
        assert!(err(b"\x80\x02N(U\x02lsR.").contains("arguments that are bytes"));
        let e = err(b"\x80\x02cos\nsystem\n(U\x02lsti.");
        assert!(e.contains("opcode 0x69"), "{e}");
        assert!(err(b"\x80\x05N.").contains("protocol 5"));
        // Stack misuse.
        assert!(err(b"\x80\x02.").contains("stack is empty"));
        assert!(err(b"\x80\x02NN.").contains("more than one value"));
        assert!(err(b"\x80\x02(N").contains("truncated"));
        assert!(err(b"\x80\x02NNa.").contains("append to None"));
        assert!(err(b"\x80\x02Na.").contains("no value on the stack"));
        assert!(err(b"\x80\x02}(Nu.").contains("key but no value"));
        assert!(err(b"\x80\x02Nh\x07.").contains("never stored"));
        assert!(err(b"\x80\x02N(b.").contains("MARK where a value"));
        assert!(err(b"\x80\x02t.").contains("no MARK"));
    }

    #[test]
    fn arrays_that_are_not_uint8_images_are_refused() {
        let ok = parse(PY3_PROTOCOL_2).unwrap();
        assert!(uint8_matrix(&Value::Int(1)).unwrap_err().contains("an int"));
        assert!(
            uint8_matrix(ok.get("labels").unwrap())
                .unwrap_err()
                .contains("a list")
        );
        // The same file with float32 declared, or a cut data string.
        let f4 = PY3_PROTOCOL_2
            .windows(6)
            .position(|w| w == b"\x02\x00\x00\x00u1")
            .unwrap();
        let mut bytes = PY3_PROTOCOL_2.to_vec();
        bytes[f4 + 4..f4 + 6].copy_from_slice(b"f4");
        let v = parse(&bytes).unwrap();
        let e = uint8_matrix(v.get("data").unwrap()).unwrap_err();
        assert!(e.contains("not uint8 (f4)"), "{e}");
        // Shape (1, 4) declared with 5 bytes of data missing one.
        let shape = PY3_PROTOCOL_2
            .windows(3)
            .position(|w| w == b"K\x04\x86")
            .unwrap();
        let mut bytes = PY3_PROTOCOL_2.to_vec();
        bytes[shape + 1] = 5;
        let v = parse(&bytes).unwrap();
        let e = uint8_matrix(v.get("data").unwrap()).unwrap_err();
        assert!(e.contains("shape [1, 5] with 4 bytes"), "{e}");
    }

    /// Every prefix and many single-byte changes of a real batch: an error or a value, never a
    /// panic, and never past the bounds.
    #[test]
    fn cut_or_changed_pickles_never_panic() {
        let pixels: Vec<u8> = (0..3 * 3072).map(|i| (i * 7 % 256) as u8).collect();
        let good = batch(&[
            (
                "data",
                Item::Matrix {
                    rows: 3,
                    data: &pixels,
                },
            ),
            ("labels", Item::Ints(&[1, 2, 3])),
        ]);
        let data = good.windows(64).position(|w| w == &pixels[..64]).unwrap();
        // Every opcode byte, but only a few of the pixels, which any value may take.
        let around: Vec<usize> = (0..data)
            .chain(data + pixels.len()..good.len())
            .chain((data..data + pixels.len()).step_by(1000))
            .collect();
        for &cut in &around {
            assert!(parse(&good[..cut]).is_err(), "a cut at {cut} parsed");
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = good.clone();
            for k in 0..1 + state % 3 {
                let at = around[(state >> (8 + 8 * k)) as usize % around.len()];
                bytes[at] = (state >> (40 + k)) as u8;
            }
            if let Ok(v) = parse(&bytes)
                && let Some(d) = v.get("data")
            {
                let _ = uint8_matrix(d);
            }
        }
    }
}
