//! Resolution of condition properties that are JSONPaths (`$.identity.identifier`, ...).
//!
//! Flagsmith compiles any property starting with `$.` as an RFC 9535 JSONPath over the
//! evaluation context; if it is not valid JSONPath it is a trait name. Almost every path
//! seen in practice is a chain of member names, so [`classify`] turns those into a direct
//! accessor at compile time; only paths with wildcards, filters, slices or descendants
//! keep a general evaluator (`serde_json_path`), used at evaluation time.

use serde_json_path::JsonPath;

/// One selector of a simple path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Name(String),
    Index(i64),
}

/// What a `$.`-prefixed property reads.
#[derive(Debug, Clone)]
pub enum PathTarget {
    /// Not valid JSONPath: the property is a plain trait name.
    InvalidPath,
    IdentityIdentifier,
    IdentityKey,
    /// `$.identity.traits.<name>`: the trait, or null if it is not a primitive.
    Trait(String),
    /// A path that never depends on the identity (`$.environment.name`, `$.segments...`):
    /// evaluated once at compile time against the context without identity.
    Static(JsonPath),
    /// A path that yields nothing or an object whatever the identity (`$.identity`).
    Nothing,
    /// Anything else: evaluated per identity with the general evaluator.
    General(JsonPath),
}

/// Classifies a property that starts with `$.`.
pub fn classify(property: &str) -> PathTarget {
    let Ok(compiled) = JsonPath::parse(property) else {
        return PathTarget::InvalidPath;
    };
    let Some(selectors) = parse_simple(property) else {
        return if property_mentions_identity(property) {
            PathTarget::General(compiled)
        } else {
            PathTarget::Static(compiled)
        };
    };
    use Selector::Name;
    match selectors.as_slice() {
        [Name(top), rest @ ..] if top == "identity" => match rest {
            [Name(f)] if f == "identifier" => PathTarget::IdentityIdentifier,
            [Name(f)] if f == "key" => PathTarget::IdentityKey,
            [Name(f), Name(t)] if f == "traits" => PathTarget::Trait(t.clone()),
            // A trait value is a primitive, unless a caller passed an object or array:
            // only then can a deeper path find something, so keep it general.
            [Name(f), Name(_), _, ..] if f == "traits" => PathTarget::General(compiled),
            _ => PathTarget::Nothing,
        },
        _ => PathTarget::Static(compiled),
    }
}

/// A conservative check for paths the simple parser rejected: a descendant or wildcard
/// segment can reach the identity, so any such path counts as identity-dependent unless
/// it starts with a named non-identity member.
fn property_mentions_identity(property: &str) -> bool {
    let rest = &property[1..];
    !(rest.starts_with(".environment")
        || rest.starts_with(".segments")
        || rest.starts_with(".features"))
        || property.contains("..")
}

/// Parses `$` followed by `.name`, `['name']`, `["name"]` or `[index]` segments. Returns
/// `None` for anything else (wildcards, slices, filters, unions, descendants). Called only
/// on strings that are already valid RFC 9535 JSONPath.
pub fn parse_simple(path: &str) -> Option<Vec<Selector>> {
    let mut chars = path.strip_prefix('$')?.chars().peekable();
    let mut out = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| is_blank(*c)) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some('.') => {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || (c as u32) >= 0x80 {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if name.is_empty() {
                    return None;
                }
                out.push(Selector::Name(name));
            }
            Some('[') => {
                skip_blank(&mut chars);
                let selector = match chars.peek().copied() {
                    Some(q @ ('\'' | '"')) => {
                        chars.next();
                        Selector::Name(parse_quoted(&mut chars, q)?)
                    }
                    Some(c) if c == '-' || c.is_ascii_digit() => {
                        let mut num = String::new();
                        while let Some(&c) = chars.peek() {
                            if c == '-' || c.is_ascii_digit() {
                                num.push(c);
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Selector::Index(num.parse().ok()?)
                    }
                    _ => return None,
                };
                skip_blank(&mut chars);
                if chars.next() != Some(']') {
                    return None;
                }
                out.push(selector);
            }
            Some(_) => return None,
        }
    }
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn skip_blank(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| is_blank(*c)) {
        chars.next();
    }
}

fn parse_quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    quote: char,
) -> Option<String> {
    let mut s = String::new();
    loop {
        match chars.next()? {
            c if c == quote => return Some(s),
            '\\' => match chars.next()? {
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                't' => s.push('\t'),
                '/' => s.push('/'),
                '\\' => s.push('\\'),
                '\'' => s.push('\''),
                '"' => s.push('"'),
                'u' => {
                    let hi = read_hex4(chars)?;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        if chars.next()? != '\\' || chars.next()? != 'u' {
                            return None;
                        }
                        let lo = read_hex4(chars)?;
                        0x10000 + ((hi - 0xD800) << 10) + (lo.checked_sub(0xDC00)?)
                    } else {
                        hi
                    };
                    s.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c => s.push(c),
        }
    }
}

fn read_hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &str) -> Vec<Selector> {
        parse_simple(p).unwrap()
    }

    #[test]
    fn simple_paths_parse() {
        use Selector::*;
        assert_eq!(
            names("$.identity.identifier"),
            vec![Name("identity".into()), Name("identifier".into())]
        );
        assert_eq!(
            names("$.identity.traits.tamaño"),
            vec![
                Name("identity".into()),
                Name("traits".into()),
                Name("tamaño".into())
            ]
        );
        assert_eq!(
            names("$.identity.traits['[$the.size$]']"),
            vec![
                Name("identity".into()),
                Name("traits".into()),
                Name("[$the.size$]".into())
            ]
        );
        assert_eq!(names("$.a[0]"), vec![Name("a".into()), Index(0)]);
        assert_eq!(
            names("$.a[\"x\\u00e9\"]"),
            vec![Name("a".into()), Name("xé".into())]
        );
        assert!(parse_simple("$.a[*]").is_none());
        assert!(parse_simple("$..a").is_none());
        assert!(parse_simple("$.a[1:2]").is_none());
        assert!(parse_simple("$.a[?@.b]").is_none());
    }

    #[test]
    fn classification() {
        assert!(matches!(
            classify("$.identity.identifier"),
            PathTarget::IdentityIdentifier
        ));
        assert!(matches!(
            classify("$.identity.key"),
            PathTarget::IdentityKey
        ));
        assert!(matches!(classify("$.identity"), PathTarget::Nothing));
        assert!(matches!(classify("$.identity.traits"), PathTarget::Nothing));
        assert!(
            matches!(classify("$.identity.traits.サイズ"), PathTarget::Trait(t) if t == "サイズ")
        );
        assert!(matches!(
            classify("$.environment.name"),
            PathTarget::Static(_)
        ));
        assert!(matches!(
            classify("$.leads.to.nowhere"),
            PathTarget::Static(_)
        ));
        assert!(matches!(
            classify("$.  i am not\" a valid jsonpath"),
            PathTarget::InvalidPath
        ));
        assert!(matches!(classify("$..identifier"), PathTarget::General(_)));
        assert!(matches!(
            classify("$.identity.traits.*"),
            PathTarget::General(_)
        ));
    }
}
