//! The async SMTP driver (futures-io, any runtime): the operation list of
//! `smtp/client.rs`, awaited. Timeouts use a runtime-independent timer.

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::AsyncReadExt as _;

use crate::transport::AsyncStream;

super::client::smtp_client! {
    /// An async SMTP submission client over any futures-io stream: the
    /// same operations, behaviour, errors and deadlines as
    /// [`SmtpClient`](super::SmtpClient), awaited. With the `tokio`
    /// feature, `AsyncSmtpClient::connect` connects with tokio's TCP.
    ///
    /// ```no_run
    /// # #[cfg(feature = "tokio")]
    /// # async fn example() -> Result<(), pop3_client::smtp::SmtpError> {
    /// use pop3_client::smtp::{AsyncSmtpClient, SmtpConfig};
    /// use pop3_client::{Credentials, Security};
    ///
    /// let mut config = SmtpConfig::new("smtp.example.com");
    /// config.security = Security::StartTls; // port 587
    /// let mut client = AsyncSmtpClient::connect(&config).await?;
    /// client.login(&Credentials::new("me@example.com", "app password")).await?;
    /// let message = futures_util::io::Cursor::new(b"Subject: hi\r\n\r\nHello.\r\n");
    /// let report = client.send("me@example.com", &["you@example.net"], message).await?;
    /// println!("{} {}", report.delivery.code, report.delivery.text);
    /// client.quit().await?;
    /// # Ok(())
    /// # }
    /// ```
    client: AsyncSmtpClient,
    stream: AsyncStream<S: [AsyncRead + AsyncWrite + Unpin]>,
    default_stream: [],
    tcp: #[cfg(feature = "tokio")] [tokio_util::compat::Compat<::tokio::net::TcpStream>]
        by crate::transport::connect_tcp_tokio,
    reader: [AsyncRead + Unpin],
    async; .await
}
