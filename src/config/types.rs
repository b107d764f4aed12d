//! The value types of the configuration as written: durations (`"10s"`), sizes (`"16MiB"`),
//! windows (`"20/60s"`), languages and start positions; parsed (`FromStr`, saying what would be
//! accepted), rendered back (`Display`) and (de)serialised through those two.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Unexpected};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const EXPECT_DURATION: &str =
    "a duration with a unit: ms, s, m, h or d, e.g. \"10s\", \"500ms\", \"1h\"";
const EXPECT_SIZE: &str =
    "a size in bytes or with a unit KiB, MiB or GiB, e.g. \"16MiB\", \"512KiB\" or 1048576";
const EXPECT_WINDOW: &str = "a window \"COUNT/DURATION\", e.g. \"20/60s\"";

/// The largest duration (ms) and size (bytes): every value fits the `i64` millisecond clocks,
/// `Instant`s and `usize` bounds it meets (about 292 million years; 8 EiB).
const MAX: u64 = i64::MAX as u64;

/// Language of labels in notification text: `"en"` or `"zh-cn"` (also `"zh-CN"`, as Sanplex
/// itself writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum Lang {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-cn", alias = "zh-CN")]
    ZhCn,
}

/// Where a source starts in input it has never seen: everything already there (a backfill),
/// or only what is written from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

/// `as_str` (the config spelling) and `Display` of a unit-only enum, from its words in order.
macro_rules! words {
    ($($ty:ident: $($word:literal),*;)*) => {$(
        impl $ty {
            /// The config spelling.
            pub fn as_str(self) -> &'static str {
                [$($word),*][self as usize]
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

words!(Lang: "en", "zh-cn"; StartAt: "beginning", "end";);

/// One sliding-window limit, e.g. `20/60s`: at most `count` sends in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u32,
    pub per: Duration,
}

impl FromStr for Window {
    type Err = String;

    /// `COUNT/DURATION`, e.g. `"20/60s"`.
    fn from_str(s: &str) -> Result<Window, String> {
        let (count, per) = s.split_once('/').ok_or(EXPECT_WINDOW)?;
        let count = count.trim().parse().map_err(|_| EXPECT_WINDOW)?;
        let per = parse_duration(per).map_err(|_| EXPECT_WINDOW)?;
        Ok(Window { count, per })
    }
}

/// A byte count, written as plain bytes (`1048576`, `"123"`, `"123B"`) or with a binary unit
/// `KiB`, `MiB` or `GiB` (case-insensitive). Decimal units (`MB`) are refused rather than guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

#[rustfmt::skip]
const SIZE_UNITS: &[(&str, u64)] = &[("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("", 1), ("B", 1)];
#[rustfmt::skip]
const DURATION_UNITS: &[(&str, u64)] = &[("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        in_units(s, SIZE_UNITS, true, EXPECT_SIZE).map(Size)
    }
}

/// Reads `" 16 MiB "` as 16 of the unit `MiB` of `units` (largest first), at most [`MAX`].
fn in_units(s: &str, units: &[(&str, u64)], any_case: bool, expected: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().map_err(|_| expected)?;
    let unit = s[digits..].trim();
    if unit.is_empty() && !units.iter().any(|(u, _)| u.is_empty()) {
        let (s, ms) = (units[3].0, units[4].0);
        return Err(format!(
            "{expected}, not a plain number: write \"{n}{s}\" or \"{n}{ms}\""
        ));
    }
    let same = |u: &str| u == unit || (any_case && u.eq_ignore_ascii_case(unit));
    let (_, factor) = units.iter().find(|(u, _)| same(u)).ok_or(expected)?;
    let (largest, size) = units[0];
    n.checked_mul(*factor)
        .filter(|n| *n <= MAX)
        .ok_or_else(|| format!("{expected}, at most {}{largest}", MAX / size))
}

/// `n` in the largest of `units` that divides it exactly (`"1h"`, `"16MiB"`).
fn in_largest_unit(n: u64, units: &[(&str, u64)]) -> String {
    let exact = |(_, size): &&(&str, u64)| n % size == 0 && (n > 0 || *size == 1);
    let (unit, size) = units.iter().find(exact).expect("the smallest unit is 1");
    format!("{}{unit}", n / size)
}

/// Parses a duration such as `"10s"`, `"500ms"`, `"2m"`, `"1h"`, `"30d"`. A unit is required:
/// guessing wrong would turn a 10-second timeout into a 10-millisecond one.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    in_units(s, DURATION_UNITS, false, EXPECT_DURATION).map(Duration::from_millis)
}

/// Renders a duration in the largest unit that divides it exactly (`"1h"`, `"90s"`, `"500ms"`),
/// the inverse of [`parse_duration`] (sub-millisecond parts are dropped).
pub fn format_duration(d: Duration) -> String {
    match u64::try_from(d.as_millis()).unwrap_or(u64::MAX) {
        0 => "0s".into(),
        ms => in_largest_unit(ms, DURATION_UNITS),
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&in_largest_unit(self.0, SIZE_UNITS))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.per))
    }
}

/// Reads a value written as a string (or a bare integer, taken as its digits) with `.1`;
/// anything else is refused with what is expected, `.0`.
struct Spelt<T>(&'static str, fn(&str) -> Result<T, String>);

impl<T> de::Visitor<'_> for Spelt<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        (self.1)(s).map_err(|why| E::invalid_value(Unexpected::Str(s), &why.as_str()))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        let why = |why: String| E::invalid_value(Unexpected::Signed(n), &why.as_str());
        (self.1)(&n.to_string()).map_err(why)
    }
}

macro_rules! spelt_serde {
    ($($ty:ty = $expected:expr),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(Spelt($expected, str::parse))
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

spelt_serde!(Window = EXPECT_WINDOW, Size = EXPECT_SIZE);

/// `#[serde(with = "duration")]` for a `Duration` field written `"10s"`.
pub(crate) mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Spelt(EXPECT_DURATION, parse_duration))
    }
}

/// `#[serde(with = "durations")]` for a `Vec<Duration>` written `["5s", "30s"]`.
pub(crate) mod durations {
    use super::*;

    #[derive(Deserialize)]
    struct Dur(#[serde(with = "duration")] Duration);

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|d| format_duration(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let v = Vec::<Dur>::deserialize(d)?;
        Ok(v.into_iter().map(|d| d.0).collect())
    }
}

/// `#[serde(with = "size")]` for a byte count (`u64`) written `"16MiB"` or `16777216`.
pub(crate) mod size {
    use super::*;

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Size(*n))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Size::deserialize(d).map(|s| s.0)
    }
}
