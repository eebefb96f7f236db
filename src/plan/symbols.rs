//! Which symbols a pipeline covers: its list, or its selector (`{quote, regex, max, ...}`)
//! resolved against the exchange's `exchangeInfo`. The matching itself is a plain function.

use crate::config::{Pipeline, SymbolSelection, SymbolSelector};
use crate::exit::ExitCode;
use crate::extract::Session;
use crate::extract::client::ExchangeInfo;
use crate::symbol::Symbol;

/// Why a pipeline's symbols cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    /// The selector's regex does not compile (validation catches this first).
    #[error("invalid symbol regex")]
    Regex(#[source] regex::Error),
    /// Nothing on the exchange matches.
    #[error(
        "the symbol selector matched no symbol on the exchange; widen `quote`/`regex` or set `include_inactive: true`"
    )]
    NoMatch,
    /// More than `max` match.
    #[error(
        "the symbol selector matched {matched} symbols, more than `max: {max}`; narrow it or raise `max`"
    )]
    TooMany {
        /// How many matched.
        matched: usize,
        /// The selector's `max`.
        max: usize,
    },
    /// The exchange did not answer `exchangeInfo`.
    #[error("exchangeInfo is unavailable, so the symbol selector cannot be resolved")]
    NoExchangeInfo,
}

impl SymbolError {
    /// The exit code: a selector that matches nothing or too much is the pipeline's to fix;
    /// an exchange that does not answer is a failed run.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SymbolError::NoExchangeInfo => ExitCode::TasksFailed,
            _ => ExitCode::Usage,
        }
    }
}

/// The pipeline's symbols: its list, or its selector resolved against the session's
/// `exchangeInfo`.
pub fn symbols_of(p: &Pipeline, session: &Session) -> Result<Vec<Symbol>, SymbolError> {
    match &p.symbols {
        SymbolSelection::List(l) => Ok(l.clone()),
        SymbolSelection::Selector(sel) => {
            let info = session.exchange_info().ok_or(SymbolError::NoExchangeInfo)?;
            select_symbols(info, sel)
        }
    }
}

/// Resolve a selector against `exchangeInfo`: quote assets, status, regex, max.
pub fn select_symbols(
    info: &ExchangeInfo,
    sel: &SymbolSelector,
) -> Result<Vec<Symbol>, SymbolError> {
    let re = sel
        .regex
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(SymbolError::Regex)?;
    let mut out = Vec::new();
    for s in &info.symbols {
        if !sel.quote.is_empty() && !sel.quote.contains(&s.quote_asset) {
            continue;
        }
        if !sel.include_inactive && s.trading_status() != Some("TRADING") {
            continue;
        }
        if let Some(re) = &re
            && !re.is_match(&s.symbol)
        {
            continue;
        }
        match s.symbol.parse::<Symbol>() {
            Ok(sym) => out.push(sym),
            Err(e) => tracing::warn!("skipping exchange symbol: {e}"),
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(SymbolError::NoMatch);
    }
    if let Some(max) = sel.max
        && out.len() > max
    {
        return Err(SymbolError::TooMany {
            matched: out.len(),
            max,
        });
    }
    Ok(out)
}
