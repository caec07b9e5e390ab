//! Serving the REST API over TLS (rustls): an accept loop that completes each handshake in its
//! own task (bounded in time, so a silent client holds nothing) and hands the stream to hyper,
//! with HTTP/1.1 and HTTP/2 as ALPN negotiates. Certificates come from the consortium CA (see
//! `medledger_tls`).

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;

/// Longest a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` over TLS with `config` until the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: Arc<medledger_tls::rustls::ServerConfig>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(x) => x,
            // Out of file descriptors and the like: back off rather than spin.
            Err(e) => {
                tracing::warn!("API accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                // A failed or slow handshake is the client's problem; nothing was served.
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) =
                Builder::new(TokioExecutor::new()).serve_connection_with_upgrades(TokioIo::new(stream), service).await
            {
                tracing::debug!("API connection ended: {e}");
            }
        });
    }
}
