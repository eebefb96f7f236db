//! `${VAR}` and `${VAR:-default}` interpolation.
//!
//! Applied to the values of `source.api_key`, `source.base_url` and `output.path` (not to the
//! whole file, so a `${...}` in a comment is harmless and line/column positions stay exact).
//! The environment is a parameter, so tests never touch the process environment.
//!
//! - `${VAR}`: the value of `VAR`; an error naming `VAR` if it is not set.
//! - `${VAR:-default}`: the value of `VAR`, or `default` when `VAR` is unset or empty.
//! - `$$`: a literal `$`. Any other `$` is kept as is.
//!
//! Variable names are `[A-Za-z_][A-Za-z0-9_]*`; defaults cannot contain `}`.

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${VAR}` with `VAR` unset and no default.
    #[error(
        "environment variable `{name}` is not set; set it, or write `${{{name}:-}}` to make it optional"
    )]
    Unset {
        /// The variable.
        name: String,
    },
    /// `${` without a closing `}`.
    ///
    /// The value is deliberately not shown: it may be an API key.
    #[error("unterminated `${{`; expected `${{NAME}}` or `${{NAME:-default}}`")]
    Unterminated,
    /// `${...}` whose name is not a valid variable name.
    #[error(
        "invalid variable name `{name}`; expected letters, digits and `_`, not starting with a digit"
    )]
    BadName {
        /// What was written between `${` and `}` (before any `:-`).
        name: String,
    },
}

/// Replace `${VAR}` and `${VAR:-default}` in `text` using `env` to look variables up.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(InterpolateError::Unterminated)?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !valid_name(name) {
                return Err(InterpolateError::BadName {
                    name: name.escape_debug().to_string(),
                });
            }
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(InterpolateError::Unset {
                        name: name.to_owned(),
                    });
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_defaults() {
        assert_eq!(interpolate("${KEY}", &env).unwrap(), "abc");
        assert_eq!(interpolate("x-${KEY}-y", &env).unwrap(), "x-abc-y");
        assert_eq!(interpolate("${NOPE:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(interpolate("${NOPE:-}", &env).unwrap(), "");
        assert_eq!(interpolate("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(interpolate("${KEY:-d}", &env).unwrap(), "abc");
        assert_eq!(interpolate("$$KEY $KEY", &env).unwrap(), "$KEY $KEY");
        assert_eq!(interpolate("no vars", &env).unwrap(), "no vars");
        assert_eq!(interpolate("trailing $", &env).unwrap(), "trailing $");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = interpolate("${BINANCE_API_KEY}", &env).unwrap_err();
        assert_eq!(
            e,
            InterpolateError::Unset {
                name: "BINANCE_API_KEY".into()
            }
        );
        assert!(e.to_string().contains("`BINANCE_API_KEY`"), "{e}");
        assert_eq!(
            interpolate("sekrit${KEY", &env),
            Err(InterpolateError::Unterminated)
        );
        assert!(
            !InterpolateError::Unterminated
                .to_string()
                .contains("sekrit")
        );
        assert!(matches!(
            interpolate("${1X}", &env),
            Err(InterpolateError::BadName { .. })
        ));
        assert!(matches!(
            interpolate("${}", &env),
            Err(InterpolateError::BadName { .. })
        ));
    }

    proptest! {
        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]{0,60}") {
            prop_assert_eq!(interpolate(&s, &env).unwrap(), s);
        }

        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = interpolate(&s, &env);
        }
    }
}
