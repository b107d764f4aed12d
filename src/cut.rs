//! Cutting text to a byte budget without splitting a character (`str::floor_char_boundary` is
//! not stable yet): log bodies, error texts, platform message limits, template output.

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to at most `max` bytes on a character boundary, in place.
pub fn truncate(s: &mut String, max: usize) {
    let end = prefix(s, max).len();
    s.truncate(end);
}

/// `s` cut to at most `max` bytes, ending in `…` when cut (the `…` counts in `max`).
pub fn with_ellipsis(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    truncate(&mut s, max.saturating_sub('…'.len_utf8()));
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        assert_eq!(prefix("abc", 5), "abc");
        assert_eq!(prefix("abc", 2), "ab");
        // 数 is 3 bytes: a budget of 4 or 5 keeps only the first.
        assert_eq!(prefix("数据", 4), "数");
        assert_eq!(prefix("数据", 5), "数");
        assert_eq!(prefix("数据", 2), "");
        let mut s = "a数据".to_string();
        truncate(&mut s, 5);
        assert_eq!(s, "a数");
        assert_eq!(with_ellipsis("abcdef".into(), 6), "abcdef");
        assert_eq!(with_ellipsis("abcdefg".into(), 6), "abc…");
        // 9 bytes: 6 for the text (two characters) and 3 for the ellipsis.
        assert_eq!(with_ellipsis("数据数据".into(), 9), "数据…");
        assert_eq!(with_ellipsis("张三李四".into(), 8), "张…");
    }
}
