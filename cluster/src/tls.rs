//! TLS between Machines, through ractor_cluster's encryption mode and
//! rustls: each Machine presents a certificate signed by the cluster's
//! authority and requires the same of its peer (mutual TLS), so a peer
//! without such a certificate is refused whichever side dials.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{ClusterError, TlsFiles};

/// Loaded TLS settings.
#[derive(Clone)]
pub(crate) struct Tls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn bad(files: &TlsFiles, reason: impl std::fmt::Display) -> ClusterError {
    ClusterError::Tls {
        reason: format!(
            "{} / {} / {}: {reason}",
            files.cert.display(),
            files.key.display(),
            files.ca.display()
        ),
    }
}

impl Tls {
    pub(crate) fn load(files: &TlsFiles) -> Result<Tls, ClusterError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .map_err(|e| bad(files, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(files, e))?;
        if chain.is_empty() {
            return Err(bad(files, "no certificate in the cert file"));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(files, e))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&files.ca).map_err(|e| bad(files, e))? {
            roots
                .add(ca.map_err(|e| bad(files, e))?)
                .map_err(|e| bad(files, e))?;
        }
        if roots.is_empty() {
            return Err(bad(files, "no certificate in the ca file"));
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder(roots.clone())
            .build()
            .map_err(|e| bad(files, e))?;
        let server = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| bad(files, e))?;
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad(files, e))?;
        Ok(Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    pub(crate) fn incoming(&self) -> ractor_cluster::IncomingEncryptionMode {
        ractor_cluster::IncomingEncryptionMode::Tls(TlsAcceptor::from(self.server.clone()))
    }

    /// A connector for `addr` (`host:port`), and the name its
    /// certificate must carry: the host.
    pub(crate) fn connector(
        &self,
        addr: &str,
    ) -> Result<(TlsConnector, ServerName<'static>), String> {
        let host = crate::config::split_addr(addr)
            .map(|(h, _)| h.to_string())
            .ok_or_else(|| format!("`{addr}` is not host:port"))?;
        let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
        Ok((TlsConnector::from(self.client.clone()), name))
    }
}
