//! Action events: the one typed form every source turns its input into.
//!
//! An action event mirrors a row of Sanplex's `zt_action` table plus the enrichment a sidecar
//! cannot look up itself (docs/reference.md §3). Parsing is tolerant where Sanplex itself is (numbers as
//! strings, `",1,2,"` product lists) and precise everywhere else.

use memchr::memchr;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use simd_json::{Buffers, ErrorType, Node, StaticNode, Tape};

/// One action ("alice resolved bug #12"), normalised.
///
/// Stored in the outbox in this form (compact JSON), so that deliveries can be rendered at send
/// time from the event alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionEvent {
    /// The action's id in Sanplex: the idempotency key. `None` when the producer sent none;
    /// such events are never deduplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `bug`, `story`, `task`, ...
    pub object_type: String,
    /// The object's id.
    #[serde(rename = "objectID")]
    pub object_id: u64,
    /// Product ids, zeros removed; empty means "no product" (Sanplex's `",0,"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub product: Vec<u64>,
    /// The project id (ZenTao 15+); 0 when absent. Not sent in `default` payloads (docs/sanplex.md).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub project: u64,
    /// Execution (sprint/stage) id; 0 means none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub execution: u64,
    /// The account that acted.
    pub actor: String,
    /// `opened`, `resolved`, ...
    pub action: String,
    /// `YYYY-MM-DD HH:MM:SS`, Sanplex server local time; filled with the ingestion time when absent.
    pub date: String,
    /// May contain HTML.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extra: String,
    /// The object's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
    /// The actor's real name; text falls back to `actor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<String>,
    /// Link to the object; when absent it is built from the webhook's domain or `sanplex.base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `kanbancard` events: the card's board.
    #[serde(default, rename = "kanbanID", skip_serializing_if = "Option::is_none")]
    pub kanban_id: Option<u64>,
    /// Recipients (Sanplex accounts) for work/app-message webhooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_list: Vec<String>,
    /// Mobile numbers to @-mention in group-bot messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// What the action changed (Sanplex's `zt_history` rows). `None`: not known; `Some([])`:
    /// known to have changed nothing (the "no-op edit" rule of README "Message details").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
}

/// One field an action changed: a row of Sanplex's `zt_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Change {
    /// The field's code (`status`, `assignedTo`, ...).
    pub field: String,
    #[serde(default)]
    pub old: String,
    #[serde(default)]
    pub new: String,
}

/// The most entries of `changes` one event may carry (docs/reference.md §3).
pub const MAX_CHANGES: usize = MAX_ENTRIES;

/// The most entries of each list one event may carry: `toList`, `mentions`, `changes`, and
/// product ids (docs/reference.md §3), so that no single event costs more than a few milliseconds to
/// route and render.
pub const MAX_ENTRIES: usize = 1000;

/// Local time as Sanplex writes it (`YYYY-MM-DD HH:MM:SS`): the `date` of events that carry
/// none, whichever source they come from.
pub fn local_now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ActionEvent {
    /// Sanplex's `",1,2,"` form of the product list (`",0,"` when there is none).
    pub fn product_string(&self) -> String {
        if self.product.is_empty() {
            return ",0,".to_string();
        }
        let mut s = String::from(",");
        for p in &self.product {
            s.push_str(&p.to_string());
            s.push(',');
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
//
// simd-json builds a tape (a flat list of nodes) over the input, and we walk that tape by hand.
// Going through serde derive would make every tolerated form (numbers as strings, four shapes of
// `product`) a custom deserializer and would give poorer error messages; a BorrowedValue would
// build a hash map per event. The tape is reused between events, so the only allocations per
// event are the event's own strings and vectors.

/// Why one action event was rejected.
///
/// `key` is the offending top-level key (`None` for syntax errors and non-objects), so the HTTP
/// API can report it separately; `message` is complete on its own: it names the key and the
/// value that was sent, and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EventError {
    /// The top-level key whose value (or absence) is the problem.
    pub key: Option<String>,
    /// Human-readable description, e.g. `objectID: expected an integer or numeric string, got "abc"`.
    pub message: String,
}

impl EventError {
    fn new(message: String) -> Self {
        Self { key: None, message }
    }

    fn at(key: &str, message: String) -> Self {
        Self {
            key: Some(key.to_owned()),
            message,
        }
    }
}

/// Why a request body (one event, an array of events, or NDJSON) was rejected.
///
/// A body is accepted or rejected as a whole (docs/reference.md §4), so one error is enough; it says where
/// the bad event is so the producer can fix exactly that one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BodyError {
    /// 0-based position of the bad event in a JSON array body.
    pub index: Option<usize>,
    /// 1-based line of the bad event in an NDJSON body.
    pub line: Option<usize>,
    /// The offending key, when one key is to blame.
    pub key: Option<String>,
    /// What was wrong (without the index/line prefix, which `Display` adds).
    pub message: String,
    /// Set when the body holds more events than the parser was allowed to take: nothing of
    /// it was parsed into events (the HTTP API answers 413).
    pub too_many: Option<TooMany>,
}

/// A body with more events than allowed ([`parse_body_at_most`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany {
    /// The events the body holds (its elements or non-blank lines, counted before parsing them).
    pub events: usize,
    /// The most allowed.
    pub limit: usize,
}

impl BodyError {
    fn whole(e: EventError) -> Self {
        Self {
            index: None,
            line: None,
            key: e.key,
            message: e.message,
            too_many: None,
        }
    }

    fn too_many(events: usize, limit: usize) -> Self {
        Self {
            too_many: Some(TooMany { events, limit }),
            ..Self::whole(EventError::new(format!(
                "{events} events in one body; at most {limit} are accepted: split it"
            )))
        }
    }

    fn at_index(e: EventError, index: usize) -> Self {
        Self {
            index: Some(index),
            ..Self::whole(e)
        }
    }

    fn at_line(e: EventError, line: usize) -> Self {
        Self {
            line: Some(line),
            ..Self::whole(e)
        }
    }

    fn no_events() -> Self {
        Self::whole(EventError::new(
            "no events: send one JSON object, a JSON array of objects, or NDJSON (one object per line)"
                .to_owned(),
        ))
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        } else if let Some(index) = self.index {
            write!(f, "event at index {index}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// Decide from the body: `[` starts an array of events, `{` one event, or NDJSON when the
    /// first line is a complete object and more follows (producers often omit the content type).
    #[default]
    Auto,
    /// One event per line (`application/x-ndjson`); blank lines are skipped.
    Ndjson,
}

/// A reusable parser: keeps simd-json's scratch buffers and tape between events so that parsing
/// a stream of events does not allocate for the parse itself.
///
/// The free functions ([`parse_event`], [`parse_line`], [`parse_body`]) use one per thread; hold
/// your own when you want the buffers' lifetime under your control.
pub struct EventParser {
    buffers: Buffers,
    /// Always empty between calls; only its allocation is kept.
    tape: Tape<'static>,
    /// Scratch for the NDJSON fast path: the body's lines joined into one JSON array.
    joined: Vec<u8>,
    /// Scratch for the NDJSON fast path: where in `joined` the separating commas were put.
    seps: Vec<usize>,
    /// Bodies longer than this are parsed one event at a time (see [`Self::with_whole_max`]).
    whole_max: usize,
}

/// The longest body parsed in one simd-json call by default. Past it, arrays and NDJSON are
/// parsed one event at a time: one tape over a whole 16 MiB body costs up to 24 bytes per JSON
/// value (~200 MB for a body of tiny values), where one event's tape is small and reused; the
/// joined NDJSON path would also copy the body. Below it the one call is ~25 % faster.
pub const WHOLE_MAX: usize = 1 << 20;

impl Default for EventParser {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventParser").finish_non_exhaustive()
    }
}

impl EventParser {
    /// A parser with buffers sized for typical (sub-kilobyte) events; they grow as needed.
    pub fn new() -> Self {
        Self {
            buffers: Buffers::new(1024),
            tape: Tape(Vec::with_capacity(64)),
            joined: Vec::new(),
            seps: Vec::new(),
            whole_max: WHOLE_MAX,
        }
    }

    /// Bodies longer than `bytes` are parsed one event at a time instead of in one simd-json
    /// call ([`WHOLE_MAX`] by default). The result is the same either way, except that a body
    /// that is not JSON may be refused for a different first fault (simd-json checks a whole
    /// body's UTF-8 and grammar at once); the fuzz target `event_body` checks that by parsing
    /// every input both ways.
    pub fn with_whole_max(mut self, bytes: usize) -> Self {
        self.whole_max = bytes;
        self
    }

    /// Parses one event; see [`parse_event`]. `bytes` is overwritten (strings are unescaped in
    /// place), so verify signatures over it first.
    pub fn parse_event(&mut self, bytes: &mut [u8], now: &str) -> Result<ActionEvent, EventError> {
        if bytes.trim_ascii().is_empty() {
            return Err(EventError::new(
                "empty input: expected a JSON object (one action event)".to_owned(),
            ));
        }
        self.with_tape(bytes, None, 0, |nodes| event_from_nodes(nodes, now))?
    }

    /// Parses a request body; see [`parse_body`].
    pub fn parse_body(
        &mut self,
        body: &mut [u8],
        format: BodyFormat,
        now: &str,
    ) -> Result<Vec<ActionEvent>, BodyError> {
        self.parse_body_at_most(body, format, now, usize::MAX)
    }

    /// Parses a request body of at most `max_events` events; see [`parse_body_at_most`].
    pub fn parse_body_at_most(
        &mut self,
        body: &mut [u8],
        format: BodyFormat,
        now: &str,
        max_events: usize,
    ) -> Result<Vec<ActionEvent>, BodyError> {
        // Some editors save UTF-8 with a byte-order mark; it is not JSON whitespace.
        let body = match body {
            [0xEF, 0xBB, 0xBF, rest @ ..] => rest,
            body => body,
        };
        match format {
            BodyFormat::Ndjson => self.parse_ndjson(body, now, max_events),
            BodyFormat::Auto => {
                let Some(start) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
                    return Err(BodyError::no_events());
                };
                match body[start] {
                    b'[' => self.parse_array(body, now, max_events),
                    b'{' if looks_like_ndjson(&body[start..]) => {
                        self.parse_ndjson(body, now, max_events)
                    }
                    _ if max_events == 0 => Err(BodyError::too_many(1, 0)),
                    _ => self
                        .parse_event(body, now)
                        .map(|e| vec![e])
                        .map_err(BodyError::whole),
                }
            }
        }
    }

    fn parse_array(
        &mut self,
        body: &mut [u8],
        now: &str,
        max_events: usize,
    ) -> Result<Vec<ActionEvent>, BodyError> {
        if body.len() > self.whole_max {
            if let Some(elements) = split_array(body) {
                if elements.len() > max_events {
                    return Err(BodyError::too_many(elements.len(), max_events));
                }
                return self.parse_elements(body, &elements, now);
            }
            // Not an array at the top level: the whole parse below names the error.
        }
        self.with_tape(body, None, 0, |nodes| {
            let Some(&Node::Array { len, .. }) = nodes.first() else {
                return Err(BodyError::whole(not_an_object(nodes)));
            };
            if len == 0 {
                return Err(BodyError::no_events());
            }
            // Counted from the tape, before a single event is built.
            if len > max_events {
                return Err(BodyError::too_many(len, max_events));
            }
            let mut events = Vec::with_capacity(len);
            let mut at = 1;
            for index in 0..len {
                let value = value_at(nodes, at).map_err(BodyError::whole)?;
                at += value.len();
                let event =
                    event_from_nodes(value, now).map_err(|e| BodyError::at_index(e, index))?;
                events.push(event);
            }
            Ok(events)
        })
        .map_err(BodyError::whole)?
    }

    /// The elements of a large array body (`split_array`'s ranges), each parsed on its own
    /// reused tape: memory is the events, not a tape of the whole body. The answer is the whole
    /// parse's: a JSON error anywhere wins over a bad event (the whole parse checks all the
    /// syntax first), else the first bad event is named by its index.
    fn parse_elements(
        &mut self,
        body: &mut [u8],
        elements: &[(usize, usize)],
        now: &str,
    ) -> Result<Vec<ActionEvent>, BodyError> {
        if elements.is_empty() {
            return Err(BodyError::no_events());
        }
        let mut events = Vec::with_capacity(elements.len());
        let mut first_bad: Option<BodyError> = None;
        for (index, &(from, len)) in elements.iter().enumerate() {
            // After a bad event only the syntax of the rest is checked.
            let build = first_bad.is_none();
            let event = |nodes: &[Node<'_>]| match build {
                true => event_from_nodes(nodes, now).map(Some),
                false => Ok(None),
            };
            let rest = &mut body[from..];
            let parsed = if rest.len() - len >= simd_json::INPUT_PADDING {
                self.with_tape(rest, Some(len), from, event)
            } else {
                self.with_tape(&mut rest[..len], None, from, event)
            };
            match parsed {
                Err(syntax) => return Err(BodyError::whole(syntax)),
                Ok(Ok(Some(event))) => events.push(event),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    first_bad = Some(BodyError::at_index(e, index));
                    events = Vec::new();
                }
            }
        }
        match first_bad {
            Some(e) => Err(e),
            None => Ok(events),
        }
    }

    /// NDJSON: the events are counted first (non-blank lines, no parsing). Then a small body
    /// is parsed as one JSON array (one simd-json call instead of one per line, the hot path);
    /// anything wrong, or a body over the whole-parse size, goes through the line-by-line
    /// parser, which finds and names the bad line.
    fn parse_ndjson(
        &mut self,
        body: &mut [u8],
        now: &str,
        max_events: usize,
    ) -> Result<Vec<ActionEvent>, BodyError> {
        let lines = count_lines(body);
        if lines > max_events {
            return Err(BodyError::too_many(lines, max_events));
        }
        if body.len() > self.whole_max {
            return self.parse_ndjson_lines(body, now);
        }
        match self.parse_ndjson_joined(body, now) {
            Some(events) => Ok(events),
            None => self.parse_ndjson_lines(body, now),
        }
    }

    /// Joins the non-blank lines of `body` with commas inside `[...]` and parses that.
    ///
    /// Only valid if every inserted comma turns out to separate top-level elements: otherwise a
    /// line holding `{..},{..}`, or one object spread over two lines, would be misread. That is
    /// checked afterwards from simd-json's structural index (unescaping never overwrites
    /// structural bytes). `None` means "use the line-by-line parser"; `body` is not modified.
    fn parse_ndjson_joined(&mut self, body: &[u8], now: &str) -> Option<Vec<ActionEvent>> {
        let mut joined = std::mem::take(&mut self.joined);
        let mut seps = std::mem::take(&mut self.seps);
        joined.clear();
        seps.clear();
        joined.reserve(body.len() + 2 + simd_json::INPUT_PADDING);
        joined.push(b'[');
        let mut start = 0;
        while start < body.len() {
            let (end, next) = match memchr(b'\n', &body[start..]) {
                Some(n) => (start + n, start + n + 1),
                None => (body.len(), body.len()),
            };
            if let Some((from, len)) = trimmed(&body[start..end]) {
                if joined.len() > 1 {
                    seps.push(joined.len());
                    joined.push(b',');
                }
                joined.extend_from_slice(&body[start + from..start + from + len]);
            }
            start = next;
        }
        joined.push(b']');
        let len = joined.len();
        joined.resize(len + simd_json::INPUT_PADDING, b' ');

        let events = if len > 2 {
            self.with_tape(&mut joined, Some(len), 0, |nodes| match nodes.first() {
                Some(&Node::Array { len, .. }) if len == seps.len() + 1 => {
                    let mut events = Vec::with_capacity(len);
                    let mut at = 1;
                    for _ in 0..len {
                        let value = value_at(nodes, at).ok()?;
                        at += value.len();
                        events.push(event_from_nodes(value, now).ok()?);
                    }
                    Some(events)
                }
                _ => None,
            })
            .ok()
            .flatten()
            .filter(|_| separators_are_top_level(&joined, self.buffers.structural_indexes(), &seps))
        } else {
            None
        };
        self.joined = joined;
        self.seps = seps;
        events
    }

    /// Line by line, each line parsed in place: the path that finds and names the bad line.
    fn parse_ndjson_lines(
        &mut self,
        body: &mut [u8],
        now: &str,
    ) -> Result<Vec<ActionEvent>, BodyError> {
        // At most one event per line, and no valid event is shorter than MIN_EVENT_LEN (so a
        // body of blank lines cannot make us reserve much). Sizing the vector up front avoids
        // copying a half-built batch (an event is ~360 bytes) when it grows.
        let lines = body.iter().filter(|&&b| b == b'\n').count() + 1;
        let mut events = Vec::with_capacity(lines.min(body.len() / MIN_EVENT_LEN + 1));
        let mut start = 0;
        let mut line = 0;
        while start < body.len() {
            line += 1;
            let (end, next) = match memchr(b'\n', &body[start..]) {
                Some(n) => (start + n, start + n + 1),
                None => (body.len(), body.len()),
            };
            let Some((from, len)) = trimmed(&body[start..end]) else {
                start = next;
                continue;
            };
            let rest = &mut body[start + from..];
            // When enough of the body follows the line, simd-json can use it as its read-ahead
            // padding and skip copying the line; the padding bytes are left as they were.
            let parsed = if rest.len() - len >= simd_json::INPUT_PADDING {
                self.with_tape(rest, Some(len), 0, |nodes| event_from_nodes(nodes, now))
            } else {
                self.with_tape(&mut rest[..len], None, 0, |nodes| {
                    event_from_nodes(nodes, now)
                })
            };
            match parsed.and_then(|r| r) {
                Ok(event) => events.push(event),
                Err(e) => return Err(BodyError::at_line(e, line)),
            }
            start = next;
        }
        if events.is_empty() {
            return Err(BodyError::no_events());
        }
        Ok(events)
    }

    /// Runs simd-json over `bytes` (only `bytes[..len]` when `padded_len` is given, the rest being
    /// read-ahead padding) and hands the tape to `f`. The outer error is a JSON syntax error;
    /// `offset` is where `bytes` starts in the body, for the byte position it names.
    fn with_tape<R>(
        &mut self,
        bytes: &mut [u8],
        padded_len: Option<usize>,
        offset: usize,
        f: impl FnOnce(&[Node<'_>]) -> R,
    ) -> Result<R, EventError> {
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let filled = match padded_len {
            Some(len) => simd_json::fill_tape_padded(bytes, len, &mut self.buffers, &mut tape),
            None => simd_json::fill_tape(bytes, &mut self.buffers, &mut tape),
        };
        let result = match filled {
            Ok(()) => Ok(f(&tape.0)),
            Err(e) => Err(json_error(&e, offset)),
        };
        self.tape = tape.reset();
        result
    }
}

thread_local! {
    static PARSER: RefCell<EventParser> = RefCell::new(EventParser::new());
}

/// The shortest valid event, `{"objectType":"a","objectID":1,"actor":"a","action":"a"}`, in bytes.
const MIN_EVENT_LEN: usize = 56;

/// Bodies above this size get a parser of their own, so that one huge array does not leave its
/// buffers behind in a worker thread for good.
const SHARED_PARSER_MAX_BODY: usize = 1 << 20;

fn with_parser<R>(f: impl FnOnce(&mut EventParser) -> R) -> R {
    PARSER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut parser) => f(&mut parser),
        Err(_) => f(&mut EventParser::new()),
    })
}

/// Parses one action event (one JSON object) into its normalised form.
///
/// Tolerant where Sanplex is (numbers as strings, the product list in any of its four shapes),
/// strict everywhere else (docs/reference.md §3). `now` (`YYYY-MM-DD HH:MM:SS`) becomes the event's
/// `date` when it has none. `bytes` is overwritten: simd-json unescapes strings in place.
pub fn parse_event(bytes: &mut [u8], now: &str) -> Result<ActionEvent, EventError> {
    with_parser(|p| p.parse_event(bytes, now))
}

/// Parses one NDJSON line (a trailing `\n` or `\r\n` is fine); what the file tailer feeds in.
///
/// Same rules as [`parse_event`]; a blank line is an error here because the caller decides
/// whether to skip blank lines.
pub fn parse_line(line: &mut [u8], now: &str) -> Result<ActionEvent, EventError> {
    with_parser(|p| p.parse_event(line, now))
}

/// Parses a request body into events, all or nothing: the first bad event rejects the body and
/// the error says where it is (array `index`, NDJSON `line`).
///
/// `body` is overwritten (strings are unescaped in place). An empty body or array is an error.
pub fn parse_body(
    body: &mut [u8],
    format: BodyFormat,
    now: &str,
) -> Result<Vec<ActionEvent>, BodyError> {
    parse_body_at_most(body, format, now, usize::MAX)
}

/// [`parse_body`] for a body of at most `max_events` events (`server.max_events`): a body with
/// more is refused with [`BodyError::too_many`] set, counted before any event is built (NDJSON:
/// its non-blank lines; an array: its elements).
pub fn parse_body_at_most(
    body: &mut [u8],
    format: BodyFormat,
    now: &str,
    max_events: usize,
) -> Result<Vec<ActionEvent>, BodyError> {
    if body.len() > SHARED_PARSER_MAX_BODY {
        return EventParser::new().parse_body_at_most(body, format, now, max_events);
    }
    with_parser(|p| p.parse_body_at_most(body, format, now, max_events))
}

/// Whether an Auto body starting with `{` is NDJSON: its first line is a complete-looking object
/// and something follows. A single pretty-printed object never has a first line ending in `}`.
fn looks_like_ndjson(body: &[u8]) -> bool {
    let Some(nl) = memchr(b'\n', body) else {
        return false;
    };
    body[..nl].trim_ascii().ends_with(b"}") && !body[nl..].trim_ascii().is_empty()
}

/// How many events an NDJSON body holds at most: its non-blank lines, counted without parsing.
fn count_lines(body: &[u8]) -> usize {
    let mut count = 0;
    let mut start = 0;
    while start < body.len() {
        let end = memchr(b'\n', &body[start..]).map_or(body.len(), |n| start + n);
        count += usize::from(trimmed(&body[start..end]).is_some());
        start = end + 1;
    }
    count
}

/// JSON's own whitespace (RFC 8259): narrower than `u8::is_ascii_whitespace`, which also takes
/// form feed.
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The `(start, len)` of each top-level element of a JSON array body, found by a scan that
/// follows strings (and their escapes) and nesting without parsing any value; `None` when the
/// body is not `[ element (, element)* ]` at the top level, or a string never ends. What each
/// element holds is left to simd-json, which parses it alone ([`EventParser::parse_elements`]).
///
/// Hand-written because no crate splits JSON without building values: this is the one linear
/// pass that lets a 16 MiB array be counted (against `server.max_events`) and parsed event by
/// event in bounded memory. The fuzz target `event_body` checks it against the whole parse.
fn split_array(body: &[u8]) -> Option<Vec<(usize, usize)>> {
    let open = body.iter().position(|b| !is_json_space(*b))?;
    if body[open] != b'[' {
        return None;
    }
    let mut out = Vec::new();
    // Nesting inside the current element, and where it started (None: between elements).
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    let mut i = open + 1;
    while i < body.len() {
        let b = body[i];
        if b == b'"' {
            start.get_or_insert(i);
            // Skip the string: to its closing quote, stepping over escaped characters.
            let mut j = i + 1;
            loop {
                j += memchr::memchr2(b'"', b'\\', body.get(j..)?)?;
                if body[j] == b'"' {
                    break;
                }
                j += 2;
            }
            i = j + 1;
            continue;
        }
        match b {
            b'{' | b'[' => {
                start.get_or_insert(i);
                depth += 1;
            }
            b'}' if depth > 0 => depth -= 1,
            b']' if depth > 0 => depth -= 1,
            b',' | b']' if depth == 0 => {
                let from = start.take();
                if b == b']' && from.is_none() && out.is_empty() {
                    // `[]`: no elements.
                } else {
                    let from = from?;
                    let len = body[from..i].iter().rposition(|c| !is_json_space(*c))? + 1;
                    out.push((from, len));
                }
                if b == b']' {
                    return body[i + 1..]
                        .iter()
                        .all(|c| is_json_space(*c))
                        .then_some(out);
                }
            }
            b'}' => return None,
            _ if is_json_space(b) => {}
            _ => {
                start.get_or_insert(i);
            }
        }
        i += 1;
    }
    None
}

/// Whether the top-level commas of the parsed array in `json` (located through simd-json's
/// `structurals`) are exactly the separators at `seps`, i.e. each element came from one line.
fn separators_are_top_level(json: &[u8], structurals: &[u32], seps: &[usize]) -> bool {
    let mut depth = 0usize;
    let mut expected = seps.iter();
    for &at in structurals {
        match json.get(at as usize) {
            Some(b'{' | b'[') => depth += 1,
            Some(b'}' | b']') => depth = depth.saturating_sub(1),
            Some(b',') if depth == 1 && expected.next() != Some(&(at as usize)) => return false,
            _ => {}
        }
    }
    expected.next().is_none()
}

/// `(start, len)` of `line` without surrounding ASCII whitespace, or `None` when blank.
fn trimmed(line: &[u8]) -> Option<(usize, usize)> {
    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace())? + 1;
    Some((start, end - start))
}

fn json_error(e: &simd_json::Error, offset: usize) -> EventError {
    let what = match e.error() {
        ErrorType::InvalidUtf8 => {
            return EventError::new(
                "invalid UTF-8: events must be UTF-8 encoded JSON text".to_owned(),
            )
        }
        ErrorType::Eof => "unexpected end of input".to_owned(),
        // simd-json reports most grammar errors (including content after the value) this way.
        ErrorType::InternalError | ErrorType::Syntax => "syntax error".to_owned(),
        ErrorType::InvalidNumber => "invalid number (integers must fit in 64 bits)".to_owned(),
        other => format!("{other:?}"),
    };
    let place = match e.character() {
        Some(c) => format!(" at byte {} ('{c}')", offset + e.index()),
        None => String::new(),
    };
    EventError::new(format!(
        "invalid JSON: {what}{place}; send one well-formed JSON object per event"
    ))
}

/// How many tape nodes the value starting with `node` occupies, `node` included.
fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// The nodes of the value that starts at `nodes[at]`.
fn value_at<'t, 'i>(nodes: &'t [Node<'i>], at: usize) -> Result<&'t [Node<'i>], EventError> {
    nodes
        .get(at)
        .and_then(|n| nodes.get(at..at + span(n)))
        .ok_or_else(|| EventError::new("internal error: truncated JSON tape".to_owned()))
}

fn not_an_object(value: &[Node<'_>]) -> EventError {
    EventError::new(format!(
        "expected a JSON object (one action event), got {}",
        describe(value)
    ))
}

/// The longest value quoted back in an error message, in characters.
const MAX_QUOTED: usize = 60;

/// A short rendering of a value for error messages: strings quoted (cut when long), numbers and
/// literals as written, containers by kind.
fn describe(value: &[Node<'_>]) -> String {
    match value.first() {
        Some(Node::String(s)) => {
            let quoted = match s.char_indices().nth(MAX_QUOTED) {
                Some((cut, _)) => serde_json::to_string(&format!("{}…", &s[..cut])),
                None => serde_json::to_string(s),
            };
            quoted.unwrap_or_else(|_| "a string".to_owned())
        }
        Some(Node::Static(StaticNode::Null)) => "null".to_owned(),
        Some(Node::Static(StaticNode::Bool(b))) => b.to_string(),
        Some(Node::Static(StaticNode::I64(n))) => n.to_string(),
        Some(Node::Static(StaticNode::U64(n))) => n.to_string(),
        Some(Node::Static(StaticNode::F64(n))) => n.to_string(),
        Some(Node::Array { .. }) => "an array".to_owned(),
        Some(Node::Object { .. }) => "an object".to_owned(),
        #[allow(unreachable_patterns)]
        // other StaticNode variants exist with some simd-json features
        _ => "an unsupported value".to_owned(),
    }
}

// Bit flags for the keys we read, to catch duplicates and missing required keys.
const K_ID: u32 = 1;
const K_OBJECT_TYPE: u32 = 1 << 1;
const K_OBJECT_ID: u32 = 1 << 2;
const K_PRODUCT: u32 = 1 << 3;
const K_PROJECT: u32 = 1 << 4;
const K_EXECUTION: u32 = 1 << 5;
const K_ACTOR: u32 = 1 << 6;
const K_ACTION: u32 = 1 << 7;
const K_DATE: u32 = 1 << 8;
const K_COMMENT: u32 = 1 << 9;
const K_EXTRA: u32 = 1 << 10;
const K_OBJECT_NAME: u32 = 1 << 11;
const K_ACTOR_NAME: u32 = 1 << 12;
const K_URL: u32 = 1 << 13;
const K_KANBAN_ID: u32 = 1 << 14;
const K_TO_LIST: u32 = 1 << 15;
const K_MENTIONS: u32 = 1 << 16;
const K_CHANGES: u32 = 1 << 17;

/// Required keys, in the order they are reported when missing, with an example value.
const REQUIRED: [(u32, &str, &str); 4] = [
    (K_OBJECT_TYPE, "objectType", "\"bug\""),
    (K_OBJECT_ID, "objectID", "12"),
    (K_ACTOR, "actor", "\"admin\""),
    (K_ACTION, "action", "\"opened\""),
];

/// Builds an event from the tape nodes of one JSON value.
fn event_from_nodes(nodes: &[Node<'_>], now: &str) -> Result<ActionEvent, EventError> {
    let Some(&Node::Object { len, .. }) = nodes.first() else {
        return Err(not_an_object(nodes));
    };
    let mut event = ActionEvent::default();
    let mut seen = 0u32;
    let mut date = None;
    let mut at = 1;
    for _ in 0..len {
        let key = match nodes.get(at) {
            Some(Node::String(key)) => *key,
            _ => return Err(EventError::new("internal error: bad JSON tape".to_owned())),
        };
        let value = value_at(nodes, at + 1)?;
        at += 1 + value.len();
        let flag = match key {
            "id" => K_ID,
            "objectType" => K_OBJECT_TYPE,
            "objectID" => K_OBJECT_ID,
            "product" => K_PRODUCT,
            "project" => K_PROJECT,
            "execution" => K_EXECUTION,
            "actor" => K_ACTOR,
            "action" => K_ACTION,
            "date" => K_DATE,
            "comment" => K_COMMENT,
            "extra" => K_EXTRA,
            "objectName" => K_OBJECT_NAME,
            "actorName" => K_ACTOR_NAME,
            "url" => K_URL,
            "kanbanID" => K_KANBAN_ID,
            "toList" => K_TO_LIST,
            "mentions" => K_MENTIONS,
            "changes" => K_CHANGES,
            // Unknown keys (Sanplex's `vision`, `read`, ...) are ignored.
            _ => continue,
        };
        if seen & flag != 0 {
            return Err(EventError::at(
                key,
                format!("{key}: the key appears more than once; send each key once"),
            ));
        }
        seen |= flag;
        match flag {
            K_ID => event.id = opt_uint(key, value)?,
            K_OBJECT_TYPE => event.object_type = required_str(key, value)?,
            K_OBJECT_ID => event.object_id = uint(key, value)?,
            K_PRODUCT => event.product = products(value)?,
            K_PROJECT => event.project = opt_uint(key, value)?.unwrap_or(0),
            K_EXECUTION => event.execution = opt_uint(key, value)?.unwrap_or(0),
            K_ACTOR => event.actor = required_str(key, value)?,
            K_ACTION => event.action = required_str(key, value)?,
            K_DATE => date = opt_date(value)?,
            K_COMMENT => event.comment = opt_str(key, value)?.unwrap_or_default(),
            K_EXTRA => event.extra = opt_str(key, value)?.unwrap_or_default(),
            K_OBJECT_NAME => event.object_name = opt_str(key, value)?,
            K_ACTOR_NAME => event.actor_name = opt_str(key, value)?,
            K_URL => event.url = opt_str(key, value)?,
            K_KANBAN_ID => event.kanban_id = opt_uint(key, value)?,
            K_TO_LIST => event.to_list = strings(key, value)?,
            K_MENTIONS => event.mentions = strings(key, value)?,
            _ => event.changes = changes(value)?,
        }
    }
    for (flag, key, example) in REQUIRED {
        if seen & flag == 0 {
            return Err(EventError::at(
                key,
                format!("{key}: required key is missing; add it, e.g. \"{key}\": {example}"),
            ));
        }
    }
    event.date = date.unwrap_or_else(|| now.to_owned());
    Ok(event)
}

/// A non-negative integer given as a JSON integer or a string of ASCII digits.
fn uint(key: &str, value: &[Node<'_>]) -> Result<u64, EventError> {
    let n = match value.first() {
        Some(Node::Static(StaticNode::U64(n))) => Some(*n),
        Some(Node::Static(StaticNode::I64(n))) => u64::try_from(*n).ok(),
        Some(Node::String(s)) => digits(s),
        _ => None,
    };
    n.ok_or_else(|| {
        EventError::at(
            key,
            format!(
                "{key}: expected an integer or numeric string (e.g. 1050 or \"1050\"), got {}",
                describe(value)
            ),
        )
    })
}

/// Like [`uint`], with `null` meaning absent.
fn opt_uint(key: &str, value: &[Node<'_>]) -> Result<Option<u64>, EventError> {
    match value.first() {
        Some(Node::Static(StaticNode::Null)) => Ok(None),
        _ => uint(key, value).map(Some),
    }
}

/// A decimal number made only of ASCII digits that fits in a `u64`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn required_str(key: &str, value: &[Node<'_>]) -> Result<String, EventError> {
    match value.first() {
        Some(Node::String(s)) if !s.trim().is_empty() => Ok((*s).to_owned()),
        _ => Err(EventError::at(
            key,
            format!(
                "{key}: expected a non-empty string, got {}",
                describe(value)
            ),
        )),
    }
}

/// An optional string: `null` and `""` both mean absent.
fn opt_str(key: &str, value: &[Node<'_>]) -> Result<Option<String>, EventError> {
    match value.first() {
        Some(Node::Static(StaticNode::Null)) => Ok(None),
        Some(Node::String("")) => Ok(None),
        Some(Node::String(s)) => Ok(Some((*s).to_owned())),
        _ => Err(EventError::at(
            key,
            format!("{key}: expected a string or null, got {}", describe(value)),
        )),
    }
}

/// An array of strings; `null` is the empty list.
fn strings(key: &str, value: &[Node<'_>]) -> Result<Vec<String>, EventError> {
    let len = match value.first() {
        Some(Node::Static(StaticNode::Null)) => return Ok(Vec::new()),
        Some(Node::Array { len, .. }) => *len,
        _ => {
            return Err(EventError::at(
                key,
                format!(
                    "{key}: expected an array of strings (e.g. [\"alice\"]), got {}",
                    describe(value)
                ),
            ))
        }
    };
    if len > MAX_ENTRIES {
        return Err(too_many(key, len));
    }
    let mut out = Vec::with_capacity(len);
    for (i, node) in value[1..].iter().take(len).enumerate() {
        match node {
            Node::String(s) => out.push((*s).to_owned()),
            // Elements are checked in order and a non-string stops the walk, so `node` is
            // always the start of element `i` here.
            _ => {
                return Err(EventError::at(
                    key,
                    format!(
                        "{key}[{i}]: expected a string, got {}",
                        describe(std::slice::from_ref(node))
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// `changes`: `null` (not known) or an array of `{"field", "old", "new"}` objects; `old` and
/// `new` may be strings, numbers or `null` (empty), as `zt_history` holds them.
fn changes(value: &[Node<'_>]) -> Result<Option<Vec<Change>>, EventError> {
    const KEY: &str = "changes";
    let len = match value.first() {
        Some(Node::Static(StaticNode::Null)) => return Ok(None),
        Some(Node::Array { len, .. }) => *len,
        _ => {
            return Err(EventError::at(
                KEY,
                format!(
                    "{KEY}: expected an array of {{\"field\", \"old\", \"new\"}} objects, got {}",
                    describe(value)
                ),
            ))
        }
    };
    if len > MAX_CHANGES {
        return Err(too_many(KEY, len));
    }
    let mut out = Vec::with_capacity(len);
    let mut at = 1;
    for i in 0..len {
        let element = value_at(value, at)?;
        at += element.len();
        let Some(&Node::Object { len: keys, .. }) = element.first() else {
            return Err(EventError::at(
                KEY,
                format!(
                    "{KEY}[{i}]: expected an object like {{\"field\": \"status\", \"old\": \"active\", \"new\": \"resolved\"}}, got {}",
                    describe(element)
                ),
            ));
        };
        let mut change = Change::default();
        let mut k = 1;
        for _ in 0..keys {
            let name = match element.get(k) {
                Some(Node::String(name)) => *name,
                _ => return Err(EventError::new("internal error: bad JSON tape".to_owned())),
            };
            let v = value_at(element, k + 1)?;
            k += 1 + v.len();
            let slot = match name {
                "field" => &mut change.field,
                "old" => &mut change.old,
                "new" => &mut change.new,
                _ => continue,
            };
            *slot = match v.first() {
                Some(Node::Static(StaticNode::Null)) => String::new(),
                Some(Node::String(s)) => (*s).to_owned(),
                Some(Node::Static(StaticNode::U64(n))) => n.to_string(),
                Some(Node::Static(StaticNode::I64(n))) => n.to_string(),
                Some(Node::Static(StaticNode::F64(n))) => n.to_string(),
                Some(Node::Static(StaticNode::Bool(b))) => b.to_string(),
                _ => {
                    return Err(EventError::at(
                        KEY,
                        format!(
                            "{KEY}[{i}].{name}: expected a string, a number or null, got {}",
                            describe(v)
                        ),
                    ))
                }
            };
        }
        if change.field.trim().is_empty() {
            return Err(EventError::at(
                KEY,
                format!("{KEY}[{i}].field: required; name the changed field, e.g. \"status\""),
            ));
        }
        out.push(change);
    }
    Ok(Some(out))
}

/// The error for a list longer than [`MAX_ENTRIES`], naming the key and the count.
fn too_many(key: &str, len: usize) -> EventError {
    EventError::at(
        key,
        format!("{key}: {len} entries; at most {MAX_ENTRIES} are accepted"),
    )
}

/// The product list in any of Sanplex's shapes, normalised: zeros dropped, duplicates dropped
/// (first seen kept, in linear time), order kept. At most [`MAX_ENTRIES`] ids, counted as sent.
fn products(value: &[Node<'_>]) -> Result<Vec<u64>, EventError> {
    const KEY: &str = "product";
    let bad = |shown: String| {
        EventError::at(
            KEY,
            format!(
                "{shown}: expected a product list like \",1,2,\", a product id, or an array of \
                 product ids, got {}",
                describe(value)
            ),
        )
    };
    let mut out: Vec<u64> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut add = |id: u64| {
        if id != 0 && seen.insert(id) {
            out.push(id);
        }
    };
    match value.first() {
        Some(Node::Static(StaticNode::Null)) => {}
        Some(Node::String(s)) => {
            let count = s.split(',').filter(|p| !p.is_empty()).count();
            if count > MAX_ENTRIES {
                return Err(too_many(KEY, count));
            }
            for part in s.split(',').filter(|p| !p.is_empty()) {
                add(digits(part).ok_or_else(|| bad(KEY.to_owned()))?);
            }
        }
        Some(Node::Array { len, .. }) => {
            if *len > MAX_ENTRIES {
                return Err(too_many(KEY, *len));
            }
            let mut at = 1;
            for i in 0..*len {
                let element = value_at(value, at)?;
                at += element.len();
                let id = uint(KEY, element).map_err(|_| {
                    EventError::at(
                        KEY,
                        format!(
                            "{KEY}[{i}]: expected a product id (e.g. 3 or \"3\"), got {}",
                            describe(element)
                        ),
                    )
                })?;
                add(id);
            }
        }
        _ => add(uint(KEY, value).map_err(|_| bad(KEY.to_owned()))?),
    }
    Ok(out)
}

/// `date`: `null` means absent; otherwise exactly `YYYY-MM-DD HH:MM:SS` naming a real instant.
fn opt_date(value: &[Node<'_>]) -> Result<Option<String>, EventError> {
    match value.first() {
        Some(Node::Static(StaticNode::Null)) => Ok(None),
        Some(Node::String(s)) if valid_datetime(s) => Ok(Some((*s).to_owned())),
        _ => Err(EventError::at(
            "date",
            format!(
                "date: expected \"YYYY-MM-DD HH:MM:SS\" naming a real date and time (e.g. \
                 \"2026-01-05 18:35:21\"), got {}",
                describe(value)
            ),
        )),
    }
}

/// Checks the exact shape first (chrono's parser would accept `2026-1-5 ...`), then asks chrono
/// whether the calendar date and time exist.
fn valid_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 19 {
        return false;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b' ',
        13 | 16 => c == b':',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return false;
    }
    let num = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    let year = num(0, 4) as i32;
    let datetime: Option<NaiveDateTime> = NaiveDate::from_ymd_opt(year, num(5, 7), num(8, 10))
        .and_then(|d| d.and_hms_opt(num(11, 13), num(14, 16), num(17, 19)));
    datetime.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-05 18:35:21";

    /// One row of `fixtures/events/cases.json`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Case {
        name: String,
        input: String,
        format: String,
        #[serde(default)]
        expect: Option<serde_json::Value>,
        #[serde(default)]
        error: Option<ExpectedError>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ExpectedError {
        /// `null` means "no key"; the key must always be stated.
        key: Option<String>,
        contains: String,
        #[serde(default)]
        index: Option<usize>,
        #[serde(default)]
        line: Option<usize>,
    }

    fn cases() -> Vec<Case> {
        let text = include_str!("../fixtures/events/cases.json");
        serde_json::from_str(text).expect("fixtures/events/cases.json is not a valid case table")
    }

    /// Runs one case; `Err` describes how it failed.
    fn check(case: &Case) -> Result<(), String> {
        let format = match case.format.as_str() {
            "auto" => BodyFormat::Auto,
            "ndjson" => BodyFormat::Ndjson,
            other => return Err(format!("unknown format {other:?}")),
        };
        let mut body = case.input.clone().into_bytes();
        let got = parse_body(&mut body, format, NOW);
        match (&case.expect, &case.error, got) {
            (Some(expect), None, Ok(events)) => {
                let expect: Vec<ActionEvent> = match expect {
                    serde_json::Value::Array(_) => serde_json::from_value(expect.clone()),
                    _ => serde_json::from_value(expect.clone()).map(|e| vec![e]),
                }
                .map_err(|e| format!("bad `expect` in fixture: {e}"))?;
                if events == expect {
                    Ok(())
                } else {
                    Err(format!("got {events:#?}\nexpected {expect:#?}"))
                }
            }
            (Some(_), None, Err(e)) => Err(format!("expected events, got error: {e} ({e:?})")),
            (None, Some(want), Err(e)) => {
                let mut problems = Vec::new();
                if e.key != want.key {
                    problems.push(format!("key {:?}, expected {:?}", e.key, want.key));
                }
                if !e.message.contains(&want.contains) {
                    problems.push(format!("message does not contain {:?}", want.contains));
                }
                if e.index != want.index {
                    problems.push(format!("index {:?}, expected {:?}", e.index, want.index));
                }
                if e.line != want.line {
                    problems.push(format!("line {:?}, expected {:?}", e.line, want.line));
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{}\nerror was: {e:?}", problems.join("; ")))
                }
            }
            (None, Some(_), Ok(events)) => Err(format!("expected an error, got {events:#?}")),
            _ => Err("a case needs exactly one of `expect` and `error`".to_owned()),
        }
    }

    #[test]
    fn fixture_cases() {
        let cases = cases();
        assert!(cases.len() >= 40, "only {} cases", cases.len());
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                check(c)
                    .err()
                    .map(|why| format!("case {:?}: {why}", c.name))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n\n")
        );
    }

    /// A single-object body must give the same answer through `parse_event` as through
    /// `parse_body`, so the fixture table covers both.
    #[test]
    fn fixture_single_objects_agree_with_parse_event() {
        for case in cases() {
            let first = case.input.trim_start().as_bytes().first().copied();
            if case.format != "auto" || first != Some(b'{') || case.input.trim().contains('\n') {
                continue;
            }
            let mut a = case.input.clone().into_bytes();
            let mut b = a.clone();
            let one = parse_event(&mut a, NOW);
            let body = parse_body(&mut b, BodyFormat::Auto, NOW);
            match (one, body) {
                (Ok(e), Ok(v)) => assert_eq!(vec![e], v, "case {:?}", case.name),
                (Err(e), Err(b)) => {
                    assert_eq!(e.message, b.message, "case {:?}", case.name);
                    assert_eq!(e.key, b.key, "case {:?}", case.name);
                }
                (one, body) => panic!("case {:?}: {one:?} vs {body:?}", case.name),
            }
        }
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let good =
            br#"{"objectType":"bug","objectID":1,"actor":"admin","action":"opened","comment":"#;
        let mut bytes = good.to_vec();
        bytes.extend_from_slice(b"\"caf\xe9\"}");
        let err = parse_event(&mut bytes.clone(), NOW).expect_err("Latin-1 byte accepted");
        assert!(err.message.contains("invalid UTF-8"), "{err:?}");
        assert_eq!(err.key, None);

        // In NDJSON the bad line is named and the good lines around it do not hide it.
        let mut body = good.to_vec();
        body.extend_from_slice(b"\"ok\"}\n");
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\n");
        let err = parse_body(&mut body, BodyFormat::Ndjson, NOW).expect_err("accepted");
        assert_eq!(err.line, Some(2), "{err:?}");
        assert!(err.message.contains("invalid UTF-8"), "{err:?}");
        assert!(
            err.to_string().starts_with("line 2: invalid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn body_error_display_names_the_place() {
        let mut body = br#"[{"objectType":"bug","objectID":1,"actor":"a","action":"b"},{"objectType":"bug","objectID":"x","actor":"a","action":"b"}]"#.to_vec();
        let err = parse_body(&mut body, BodyFormat::Auto, NOW).expect_err("accepted");
        assert_eq!(
            err.to_string(),
            r#"event at index 1: objectID: expected an integer or numeric string (e.g. 1050 or "1050"), got "x""#
        );
    }

    #[test]
    fn parse_line_accepts_line_endings_and_rejects_blank_lines() {
        let mut line =
            b"{\"objectType\":\"bug\",\"objectID\":\"3\",\"actor\":\"a\",\"action\":\"b\"}\r\n"
                .to_vec();
        let event = parse_line(&mut line, NOW).expect("CRLF line rejected");
        assert_eq!(event.object_id, 3);
        assert_eq!(event.date, NOW);
        let err = parse_line(&mut b" \r\n".to_vec(), NOW).expect_err("blank line accepted");
        assert!(err.message.contains("empty input"), "{err:?}");
    }

    fn sample() -> Vec<u8> {
        include_bytes!("../fixtures/actions.ndjson").to_vec()
    }

    /// The 300 realistic events parse, line by line and as one body, to the same thing.
    #[test]
    fn sample_log_parses() {
        let text = String::from_utf8(sample()).expect("sample is UTF-8");
        let events = parse_body(&mut sample(), BodyFormat::Ndjson, NOW).expect("sample rejected");
        assert_eq!(events.len(), 300);
        assert_eq!(text.lines().count(), 300);
        for (n, (line, event)) in text.lines().zip(&events).enumerate() {
            let mut bytes = line.as_bytes().to_vec();
            let alone =
                parse_line(&mut bytes, NOW).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
            assert_eq!(&alone, event, "line {}", n + 1);
            // Every sample event carries its own id and date: nothing may be defaulted.
            assert!(event.id.is_some(), "line {}: no id", n + 1);
            assert_ne!(event.date, NOW, "line {}: date defaulted", n + 1);
        }
        // Auto detection reads the same body as NDJSON.
        let auto = parse_body(&mut sample(), BodyFormat::Auto, NOW).expect("auto rejected");
        assert_eq!(auto, events);

        let first = &events[0];
        assert_eq!(first.id, Some(100_001));
        assert_eq!(first.object_type, "bug");
        assert_eq!(first.product, vec![1]);
        assert_eq!(first.object_name.as_deref(), Some("导出报表时数据丢失"));
        assert_eq!(first.to_list, vec!["alice", "bob"]);
    }

    /// The stored (serialised) form of an event is itself valid input and parses back unchanged;
    /// the outbox relies on that. Also exercises the array form on a large body.
    #[test]
    fn normalised_events_round_trip() {
        let events = parse_body(&mut sample(), BodyFormat::Ndjson, NOW).expect("sample rejected");
        let mut array = serde_json::to_vec(&events).expect("serialise");
        let again = parse_body(&mut array, BodyFormat::Auto, NOW).expect("array rejected");
        assert_eq!(again, events);
    }

    /// One parser reused across bodies of very different sizes (its buffers grow and are reused).
    #[test]
    fn parser_reuse_across_sizes() {
        let mut parser = EventParser::new();
        let small = br#"{"objectType":"bug","objectID":1,"actor":"a","action":"b"}"#;
        let big_comment = "长".repeat(5000);
        let big = format!(
            r#"{{"objectType":"bug","objectID":2,"actor":"a","action":"b","comment":"{big_comment}"}}"#
        );
        for _ in 0..3 {
            let e = parser.parse_event(&mut small.to_vec(), NOW).expect("small");
            assert_eq!(e.object_id, 1);
            let e = parser
                .parse_event(&mut big.clone().into_bytes(), NOW)
                .expect("big");
            assert_eq!(e.comment, big_comment);
            let err = parser
                .parse_event(&mut b"{\"objectType\":".to_vec(), NOW)
                .expect_err("broken");
            assert!(err.message.contains("invalid JSON"));
        }
    }

    /// docs/reference.md §3: 1,000 entries is the most a list may hold, and is accepted; duplicates of
    /// products go, first seen kept.
    #[test]
    fn lists_at_the_cap_are_accepted() {
        let n = MAX_ENTRIES;
        let ids: Vec<u64> = (1..=n as u64).rev().chain([5, 0, 7]).take(n).collect();
        let event = serde_json::json!({
            "objectType": "bug", "objectID": 1, "actor": "a", "action": "b",
            "toList": (0..n).map(|i| format!("u{i}")).collect::<Vec<_>>(),
            "mentions": (0..n).map(|i| format!("138{i:08}")).collect::<Vec<_>>(),
            "product": ids,
        });
        let mut body = serde_json::to_vec(&event).expect("json");
        let e = parse_event(&mut body, NOW).expect("1,000 entries rejected");
        assert_eq!((e.to_list.len(), e.mentions.len()), (n, n));
        assert_eq!(e.product.len(), n);
        assert_eq!(e.product[0], n as u64);

        let mut body = br#"{"objectType":"bug","objectID":1,"actor":"a","action":"b","product":",3,1,3,0,2,1,"}"#.to_vec();
        let e = parse_event(&mut body, NOW).expect("parses");
        assert_eq!(e.product, vec![3, 1, 2]);
    }

    /// Every fixture case gives the same answer when the body is parsed event by event (as
    /// bodies over [`WHOLE_MAX`] are): the same events, or an error at the same place.
    #[test]
    fn fixture_cases_agree_event_by_event() {
        for case in cases() {
            let format = match case.format.as_str() {
                "ndjson" => BodyFormat::Ndjson,
                _ => BodyFormat::Auto,
            };
            let mut a = case.input.clone().into_bytes();
            let mut b = a.clone();
            let whole = EventParser::new().parse_body(&mut a, format, NOW);
            let split = EventParser::new()
                .with_whole_max(0)
                .parse_body(&mut b, format, NOW);
            match (whole, split) {
                (Ok(x), Ok(y)) => assert_eq!(x, y, "case {:?}", case.name),
                (Err(x), Err(y)) => {
                    assert_eq!(
                        (x.index, x.line, &x.key),
                        (y.index, y.line, &y.key),
                        "case {:?}: {x} / {y}",
                        case.name
                    );
                }
                (x, y) => panic!("case {:?}: {x:?} vs {y:?}", case.name),
            }
        }
    }

    #[test]
    fn split_array_finds_the_top_level_elements() {
        fn split(s: &str) -> Option<Vec<&str>> {
            split_array(s.as_bytes()).map(|v| v.iter().map(|&(f, l)| &s[f..f + l]).collect())
        }
        assert_eq!(split(" [ ] "), Some(vec![]));
        assert_eq!(
            split(r#"[{"a":"],}\"{"} , [1,[2]] ,"x,y",3]"#),
            Some(vec![r#"{"a":"],}\"{"}"#, "[1,[2]]", r#""x,y""#, "3"])
        );
        // Left for simd-json to refuse: two values, a form feed (not JSON whitespace).
        assert_eq!(split("[1 2]"), Some(vec!["1 2"]));
        assert_eq!(split("[\u{c}1]"), Some(vec!["\u{c}1"]));
        for bad in [
            "",
            "{}",
            "[",
            "[1",
            "[1,]",
            "[,1]",
            "[1,,2]",
            "[1]x",
            "[1}]",
            r#"["a]"#,
            r#"["a\"]"#,
        ] {
            assert_eq!(split_array(bad.as_bytes()), None, "{bad:?}");
        }
    }

    /// `server.max_events`: counted before any event is built, in every framing.
    #[test]
    fn too_many_events_are_counted_first() {
        let one = r#"{"objectType":"bug","objectID":1,"actor":"a","action":"b"}"#;
        let array = format!("[{}]", [one; 5].join(","));
        let ndjson = format!("{}\n\n", [one; 5].join("\n"));
        for whole_max in [usize::MAX, 0] {
            for (body, format) in [
                (&array, BodyFormat::Auto),
                (&ndjson, BodyFormat::Auto),
                (&ndjson, BodyFormat::Ndjson),
            ] {
                let mut p = EventParser::new().with_whole_max(whole_max);
                let err = p
                    .parse_body_at_most(&mut body.clone().into_bytes(), format, NOW, 4)
                    .expect_err("5 events accepted with a limit of 4");
                assert_eq!(
                    err.too_many,
                    Some(TooMany {
                        events: 5,
                        limit: 4
                    })
                );
                assert!(err.to_string().contains("5 events"), "{err}");
                let ok = p.parse_body_at_most(&mut body.clone().into_bytes(), format, NOW, 5);
                assert_eq!(ok.map(|v| v.len()), Ok(5));
            }
        }
        let err = parse_body_at_most(&mut one.as_bytes().to_vec(), BodyFormat::Auto, NOW, 0)
            .expect_err("accepted");
        assert!(err.too_many.is_some());
    }
}
