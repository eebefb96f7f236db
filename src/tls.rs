//! The TLS crypto provider of every HTTPS client in this crate (the REST and archive clients,
//! the object stores): rustls with *ring*, installed once as the process default.
//!
//! reqwest 0.13 and object_store 0.14 default to aws-lc-rs, whose C library is the largest
//! single compile of the tree; ring is already built for rustls's certificate checks, so the
//! clients are built with `rustls-no-provider` and this module installs ring. Without an
//! installed provider, building a reqwest client panics, so every client constructor here
//! calls [`ensure_provider`] first (it is cheap and idempotent); code that builds its own
//! reqwest clients in this process (tests, embedders) should call it too. Certificates are
//! checked against the operating system's store (`rustls-platform-verifier`; on Linux the
//! `ca-certificates` bundle, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).

use std::sync::Once;

/// Install ring as the process's default rustls provider, unless one is installed already
/// (an embedding application's own choice is kept).
pub fn ensure_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err means another thread installed one first: that one is used, equally fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_is_installed_and_clients_build() {
        super::ensure_provider();
        super::ensure_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        assert!(reqwest::Client::builder().build().is_ok());
    }
}
