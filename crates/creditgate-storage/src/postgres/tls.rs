//! TLS to Postgres, from the URL's `sslmode` (libpq's names): `disable`, `prefer` (the driver's
//! default) and `allow` connect as before, without TLS; `require` insists on TLS but, as in libpq,
//! does not check who answers; `verify-full` insists on TLS and checks the server's certificate
//! chain (against `sslrootcert=<PEM file>`, else the public web roots) and its host name.
//! `verify-ca` (chain without host name) is refused rather than silently weakened or tightened.
//! Connections go through rustls (`tokio-postgres-rustls`), with the ring provider reqwest uses.

use std::sync::Arc;

use creditgate_core::ledger::LedgerError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What the URL asked of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS (`disable`, `prefer`, `allow` or no `sslmode`): as before this option existed.
    Plain,
    /// TLS required, the server's identity not checked (`require`).
    Encrypted,
    /// TLS required and the certificate verified for the host (`verify-full`), against this PEM
    /// file or the public roots.
    Verified { root_cert: Option<String> },
}

fn unavailable(message: String) -> LedgerError {
    LedgerError::Unavailable(message)
}

/// Splits `sslmode` and `sslrootcert` off a `postgres://` URL (the driver knows neither
/// `verify-full` nor `sslrootcert`): the URL to hand the driver, and the TLS mode.
pub fn split_url(url: &str) -> Result<(String, TlsMode), LedgerError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), TlsMode::Plain));
    };
    let (mut mode, mut root_cert, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert", v)) => root_cert = Some(v.to_owned()),
            _ => kept.push(pair),
        }
    }
    let has_root = root_cert.is_some();
    let tls = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => TlsMode::Plain,
        Some("require") => TlsMode::Encrypted,
        Some("verify-full") => TlsMode::Verified { root_cert },
        Some("verify-ca") => {
            return Err(unavailable(
                "sslmode=verify-ca is not supported: use verify-full (chain and host name)".into(),
            ))
        }
        Some(other) => {
            return Err(unavailable(format!(
                "invalid sslmode {other:?}: use disable, prefer, require or verify-full"
            )))
        }
    };
    if has_root && !matches!(tls, TlsMode::Verified { .. }) {
        return Err(unavailable(
            "sslrootcert is used only with sslmode=verify-full".into(),
        ));
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, tls))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for a TLS mode (`None` for [`TlsMode::Plain`]).
pub fn client_config(mode: &TlsMode) -> Result<Option<ClientConfig>, LedgerError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(format!("TLS: {e}")))?;
    let config = match mode {
        TlsMode::Plain => return Ok(None),
        TlsMode::Encrypted => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
            .with_no_client_auth(),
        TlsMode::Verified { root_cert } => {
            let mut roots = RootCertStore::empty();
            match root_cert {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| unavailable(format!("sslrootcert {path}: {e}")))?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(unavailable(format!(
                            "sslrootcert {path}: no certificate in it"
                        )));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(config))
}

/// `sslmode=require`: any certificate is accepted (libpq's meaning: encrypted, not
/// authenticated), but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_root_cert_are_read_and_removed() {
        let (url, mode) = split_url("postgres://u@h/db").unwrap();
        assert_eq!((url.as_str(), mode), ("postgres://u@h/db", TlsMode::Plain));
        let (url, mode) = split_url("postgres://u@h/db?sslmode=require&connect_timeout=3").unwrap();
        assert_eq!(url, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(mode, TlsMode::Encrypted);
        let (url, mode) =
            split_url("postgres://u@h/db?sslrootcert=/etc/ca.pem&sslmode=verify-full").unwrap();
        assert_eq!(url, "postgres://u@h/db");
        assert_eq!(
            mode,
            TlsMode::Verified {
                root_cert: Some("/etc/ca.pem".into())
            }
        );
        assert_eq!(
            split_url("postgres://u@h/db?sslmode=prefer").unwrap().1,
            TlsMode::Plain
        );
        for bad in [
            "postgres://u@h/db?sslmode=verify-ca",
            "postgres://u@h/db?sslmode=yes",
            "postgres://u@h/db?sslmode=require&sslrootcert=/x.pem",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_root_cert_file_must_hold_a_certificate() {
        let missing = TlsMode::Verified {
            root_cert: Some("/nonexistent/ca.pem".into()),
        };
        let err = client_config(&missing).unwrap_err().to_string();
        assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
        assert!(client_config(&TlsMode::Verified { root_cert: None })
            .unwrap()
            .is_some());
        assert!(client_config(&TlsMode::Plain).unwrap().is_none());
    }
}
