//! Postfix main.cf syntax, sans-I/O: text in, `name = value` entries with
//! line numbers out, every error collected (not just the first).
//!
//! Rules, as postconf(5) states them: empty lines and lines whose first
//! non-whitespace character is `#` are ignored; a line that starts with
//! whitespace continues the previous logical line; a logical line is
//! `name = value`, whitespace around `=` and at the ends is ignored.

/// One `name = value` setting and the line it started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Parameter name.
    pub name: String,
    /// Raw value, continuation lines joined with one space, not expanded.
    pub value: String,
    /// 1-based line number where the logical line starts.
    pub line: usize,
}

/// A syntax error with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Longest logical line accepted; a config file is small and trusted, but a
/// binary file passed by mistake must not take all memory.
pub const MAX_LOGICAL_LINE: usize = 64 * 1024;

/// Splits main.cf text into entries, collecting every syntax error.
pub fn parse(text: &str) -> (Vec<Entry>, Vec<SyntaxError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut current: Option<(usize, String)> = None;

    let finish =
        |cur: Option<(usize, String)>, entries: &mut Vec<Entry>, errors: &mut Vec<SyntaxError>| {
            if let Some((line, text)) = cur {
                match split_assignment(&text) {
                    Ok((name, value)) => entries.push(Entry { name, value, line }),
                    Err(message) => errors.push(SyntaxError { line, message }),
                }
            }
        };

    for (i, raw) in text.split('\n').enumerate() {
        let lineno = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, buf)) => {
                    if buf.len() + trimmed.len() + 1 > MAX_LOGICAL_LINE {
                        errors.push(SyntaxError {
                            line: lineno,
                            message: format!("logical line longer than {MAX_LOGICAL_LINE} bytes"),
                        });
                    } else {
                        buf.push(' ');
                        buf.push_str(trimmed);
                    }
                }
                None => errors.push(SyntaxError {
                    line: lineno,
                    message: "continuation line (starts with whitespace) before any parameter"
                        .into(),
                }),
            }
            continue;
        }
        finish(current.take(), &mut entries, &mut errors);
        current = Some((lineno, trimmed.chars().take(MAX_LOGICAL_LINE).collect()));
    }
    finish(current, &mut entries, &mut errors);
    (entries, errors)
}

fn split_assignment(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("missing '=' in \"{}\"", shorten(text)));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err("missing parameter name before '='".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "bad character {bad:?} in parameter name \"{}\"",
            shorten(name)
        ));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Why a `$name` expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `$` followed by something that is not a name or a bracket.
    Syntax(String),
    /// A parameter refers to itself, directly or through others.
    Recursion(String),
}

/// Expands `$name`, `${name}`, `$(name)`, `${name?text}` (text if name is
/// non-empty) and `${name:text}` (text if name is empty); `$$` is a literal
/// dollar. `get` returns the raw (unexpanded) value of a parameter, or None
/// for an unknown name, which expands to nothing as in Postfix.
pub fn expand<'a>(
    value: &str,
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<String, ExpandError> {
    expand_depth(value, get, 0)
}

const MAX_DEPTH: usize = 20;

fn expand_depth<'a>(
    value: &str,
    get: &dyn Fn(&str) -> Option<&'a str>,
    depth: usize,
) -> Result<String, ExpandError> {
    if depth > MAX_DEPTH {
        return Err(ExpandError::Recursion(shorten(value)));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        let (name, cond, consumed) = if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        } else if let Some(open) = rest.chars().next().filter(|c| *c == '{' || *c == '(') {
            let close = if open == '{' { '}' } else { ')' };
            let Some(end) = find_close(rest, open, close) else {
                return Err(ExpandError::Syntax(format!(
                    "missing '{close}' after \"${}\"",
                    shorten(rest)
                )));
            };
            let inner = &rest[1..end];
            let (name, cond) = match inner.find(['?', ':']) {
                Some(i) => (&inner[..i], Some((inner.as_bytes()[i], &inner[i + 1..]))),
                None => (inner, None),
            };
            (name, cond, end + 1)
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if len == 0 {
                return Err(ExpandError::Syntax(format!(
                    "'$' not followed by a name in \"{}\"",
                    shorten(value)
                )));
            }
            (&rest[..len], None, len)
        };
        let raw = get(name).unwrap_or("");
        let expanded = expand_depth(raw, get, depth + 1)?;
        match cond {
            None => out.push_str(&expanded),
            Some((b'?', text)) if !expanded.is_empty() => {
                out.push_str(&expand_depth(text, get, depth + 1)?)
            }
            Some((b':', text)) if expanded.is_empty() => {
                out.push_str(&expand_depth(text, get, depth + 1)?)
            }
            Some(_) => {}
        }
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

fn find_close(s: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_comments_and_continuations() {
        let text = "# comment\nmyhostname = mx.example\n\n  # indented comment\nmynetworks = 127.0.0.0/8\n  192.168.1.0/24\n\tfd00::/8\nrelayhost=[smtp.example]:587\r\n";
        let (e, err) = parse(text);
        assert!(err.is_empty(), "{err:?}");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            Entry {
                name: "myhostname".into(),
                value: "mx.example".into(),
                line: 2
            }
        );
        assert_eq!(e[1].value, "127.0.0.0/8 192.168.1.0/24 fd00::/8");
        assert_eq!(e[1].line, 5);
        assert_eq!(e[2].value, "[smtp.example]:587");
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = "  orphan continuation\nno equals sign\nbad-name = 1\n= x\ngood = 1\n";
        let (e, err) = parse(text);
        assert_eq!(e.len(), 1);
        let lines: Vec<usize> = err.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4]);
        assert!(err[1].message.contains("missing '='"));
        assert!(err[2].message.contains("bad character '-'"));
    }

    #[test]
    fn expansion_forms() {
        let vars = |n: &str| match n {
            "a" => Some("A"),
            "b" => Some("$a.b"),
            "empty" => Some(""),
            "loop" => Some("$loop"),
            _ => None,
        };
        assert_eq!(expand("x $a ${a} $(a) $b", &vars).unwrap(), "x A A A A.b");
        assert_eq!(expand("${a?yes}${empty?no}", &vars).unwrap(), "yes");
        assert_eq!(expand("${a:no}${empty:yes}", &vars).unwrap(), "yes");
        assert_eq!(expand("$$a $unknown.", &vars).unwrap(), "$a .");
        assert!(matches!(
            expand("$loop", &vars),
            Err(ExpandError::Recursion(_))
        ));
        assert!(matches!(expand("${a", &vars), Err(ExpandError::Syntax(_))));
        assert!(matches!(
            expand("x $ y", &vars),
            Err(ExpandError::Syntax(_))
        ));
    }
}
