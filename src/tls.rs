//! TLS setup for the whole process.
//!
//! reqwest (every outgoing HTTP client, and the CLI's API client) is built without a crypto
//! provider, and mysql_async's TLS (a `sanplex_db.url` or `--db` with `?require_ssl=true`) uses
//! rustls' process default too: rustls refuses to build a TLS client until one is installed.
//! So whatever builds such a client calls [`install_crypto_provider`] first, and the one
//! provider the binary carries is chosen here.

/// Installs rustls' `ring` crypto provider once per process; later calls do nothing.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider is already the default (an embedder chose one),
        // which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
