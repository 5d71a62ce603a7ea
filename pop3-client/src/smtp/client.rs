//! The SMTP client's operations, written once. [`smtp_client!`] expands to
//! the client type, every operation and the driver loop; the blocking
//! driver expands it without `async`/`.await`, the async driver with them.
//! Every decision is the [`Engine`](super::engine::Engine)'s; this only
//! moves bytes, does the TLS handshakes and streams the message.

/// Expands to `$Client<S>` with every SMTP operation over `$Stream<S>`,
/// reading messages from `$Reader`, with `.await` where `$aw` is given.
macro_rules! smtp_client {
    (
        $(#[$client_doc:meta])*
        client: $Client:ident,
        stream: $Stream:ident<S: [$($bound:tt)+]>,
        default_stream: [$($default:ty)?],
        tcp: $(#[$tcp_cfg:meta])* [$Tcp:ty] by $connect_tcp:path,
        reader: [$($Reader:tt)+],
        $($async:ident)?; $(.$aw:ident)?
    ) => {
        $(#[$client_doc])*
        ///
        /// After an error from a reply that was not read in full (a
        /// timeout, a cut connection, a protocol violation) the client is
        /// out of step with the server, and every later call fails with a
        /// `Client(Unusable)` error: connect again. A refusal (wrong
        /// password, a refused message) leaves it usable.
        pub struct $Client<S: $($bound)+ $(= $default)?> {
            stream: $Stream<S>,
            engine: crate::smtp::engine::Engine,
        }

        impl<S: $($bound)+> std::fmt::Debug for $Client<S> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.engine.fmt(f)
            }
        }

        $(#[$tcp_cfg])*
        impl $Client<$Tcp> {
            /// Connects as `config` says (TCP, the name lookup and each
            /// address bounded by `Timeouts::connect`; then implicit TLS or
            /// STARTTLS), reads the greeting and sends EHLO (again after
            /// STARTTLS). Fails, before any command past EHLO is sent, if
            /// STARTTLS is asked for and missing, refused, or followed by
            /// injected data.
            pub $($async)? fn connect(config: &crate::smtp::SmtpConfig) -> Result<Self, crate::smtp::SmtpError> {
                config.validate()?;
                let tcp = $connect_tcp(&config.host, config.port(), config.timeouts.connect)$(.$aw)??;
                Self::start(tcp, config)$(.$aw)?
            }

            /// Checks settings and credentials without sending mail:
            /// connects, secures the connection, logs in and quits.
            pub $($async)? fn verify(
                config: &crate::smtp::SmtpConfig,
                credentials: &crate::config::Credentials,
            ) -> Result<(), crate::smtp::SmtpError> {
                let mut client = Self::connect(config)$(.$aw)??;
                client.login(credentials)$(.$aw)??;
                client.quit()$(.$aw)?
            }
        }

        impl<S: $($bound)+> $Client<S> {
            /// Over a connected stream: implicit TLS or STARTTLS as
            /// `config.security` says (never a fallback), the greeting and
            /// EHLO (again after STARTTLS).
            pub $($async)? fn connect_over(
                stream: S,
                config: &crate::smtp::SmtpConfig,
            ) -> Result<Self, crate::smtp::SmtpError> {
                config.validate()?;
                Self::start(stream, config)$(.$aw)?
            }

            /// Secures `stream`, reads the greeting and EHLO's answer, and
            /// upgrades with STARTTLS when asked. The settings are
            /// validated by the caller, once.
            $($async)? fn start(
                stream: S,
                config: &crate::smtp::SmtpConfig,
            ) -> Result<Self, crate::smtp::SmtpError> {
                let engine = crate::smtp::engine::Engine::new(config)?;
                let stream = $Stream::secure(
                    stream,
                    config.security,
                    &config.host,
                    || config.tls_config(),
                    config.timeouts.tls_handshake,
                )
                $(.$aw)?
                .map_err(|e| e.for_protocol(crate::endpoint::Protocol::Smtp))?;
                let mut client = Self { stream, engine };
                let event = client.next_event("the greeting")$(.$aw)??;
                client.engine.ready(event)?;
                if config.security == crate::endpoint::Security::StartTls {
                    client.starttls()$(.$aw)??;
                }
                Ok(client)
            }

            /// Checks settings and credentials over a connected stream
            /// without sending mail: secures the connection, logs in and
            /// quits.
            pub $($async)? fn verify_over(
                stream: S,
                config: &crate::smtp::SmtpConfig,
                credentials: &crate::config::Credentials,
            ) -> Result<(), crate::smtp::SmtpError> {
                let mut client = Self::connect_over(stream, config)$(.$aw)??;
                client.login(credentials)$(.$aw)??;
                client.quit()$(.$aw)?
            }

            /// STARTTLS, the handshake, and EHLO again.
            $($async)? fn starttls(&mut self) -> Result<(), crate::smtp::SmtpError> {
                self.engine.start_starttls()?;
                let event = self.next_event("the answer to STARTTLS")$(.$aw)??;
                self.engine.starttls_answered(event)?;
                let config = &self.engine.config;
                let tls = config.tls_config()?;
                self.stream
                    .upgrade(&config.host, tls, config.timeouts.tls_handshake)
                    $(.$aw)?
                    .map_err(|e| e.after_upgrade(&config.host, crate::endpoint::Protocol::Smtp))?;
                self.engine.tls_established()?;
                let event = self.next_event("the answer to EHLO")$(.$aw)??;
                self.engine.ready(event)
            }

            /// What EHLO offered (after STARTTLS, the second EHLO's answer).
            pub fn capabilities(&self) -> Option<&smtp_auth::Capabilities> {
                self.engine.session.capabilities()
            }

            /// Whether the connection is encrypted.
            pub fn is_tls(&self) -> bool {
                self.engine.session.is_tls()
            }

            /// The certificate the server presented, when this client set up
            /// the TLS.
            pub fn peer_certificate(&self) -> Option<crate::endpoint::CertificateInfo> {
                self.stream.peer_certificate()
            }

            /// Logs in with the method the settings ask for: `Auto` takes
            /// SASL PLAIN, then LOGIN, among those the server offers.
            /// Credentials go only over TLS unless plaintext is allowed
            /// (CRAM-MD5 needs no permission). A refused login leaves the
            /// client usable. With a token source in the credentials, the
            /// access token is asked for now, and one the server refuses
            /// is invalidated and the login tried once more with a fresh
            /// one.
            pub $($async)? fn login(&mut self, credentials: &crate::config::Credentials) -> Result<(), crate::smtp::SmtpError> {
                let sent = crate::config::login_secret!(credentials.for_login() $(, $aw)?)?;
                match self.login_once(&sent)$(.$aw)? {
                    Err(refused) if refused.is_auth_failure() => {
                        let Some(next) = credentials.retry(&sent) else {
                            return Err(refused);
                        };
                        let fresh = crate::config::login_secret!(next $(, $aw)?)?;
                        if fresh.secret == sent.secret {
                            return Err(refused);
                        }
                        self.login_once(&fresh)$(.$aw)?
                    }
                    other => other,
                }
            }

            /// One login with the secret in `credentials`.
            $($async)? fn login_once(&mut self, credentials: &crate::config::Credentials) -> Result<(), crate::smtp::SmtpError> {
                self.engine.start_login(credentials)?;
                let event = self.next_event("the answer to AUTH")$(.$aw)??;
                self.engine.login_answered(event)
            }

            /// Sends one message read from `message` (streamed in 64 KiB
            /// pieces: dot-stuffed, line endings made CRLF) from `from` to
            /// `to`. Some recipients may be refused and the message still
            /// sent to the others: see
            /// [`Delivery::refused`](smtp_auth::Delivery::refused). Fails
            /// when every recipient is refused (kind recipient) or the
            /// message is refused.
            pub $($async)? fn send<T: AsRef<str>>(
                &mut self,
                from: &str,
                to: &[T],
                message: impl $($Reader)+,
            ) -> Result<crate::smtp::SendReport, crate::smtp::SmtpError> {
                let envelope = smtp_auth::Envelope::new(from, to.iter().map(|t| t.as_ref().to_owned()));
                self.send_envelope(&envelope, message)$(.$aw)?
            }

            /// Like [`send`](Self::send), with a whole
            /// [`Envelope`](smtp_auth::Envelope): a known size is checked
            /// against the server's SIZE before anything is sent, and
            /// declared; `eight_bit` asks for 8BITMIME.
            pub $($async)? fn send_envelope(
                &mut self,
                envelope: &smtp_auth::Envelope,
                mut message: impl $($Reader)+,
            ) -> Result<crate::smtp::SendReport, crate::smtp::SmtpError> {
                use crate::smtp::engine::{Engine, CHUNK};
                let extra = self.engine.start_send(envelope)?;
                let event = self
                    .next_event_within("the answer to MAIL FROM, RCPT TO and DATA", extra)
                    $(.$aw)??;
                self.engine.envelope_answered(event)?;
                let mut chunk = vec![0u8; CHUNK];
                let mut bytes: u64 = 0;
                loop {
                    let n = match message.read(&mut chunk)$(.$aw)? {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Engine::message_read_failed(&e)),
                    };
                    bytes += n as u64;
                    self.engine.data(&chunk[..n])?;
                    if let Err(e) = self.write_output("the server to accept the message")$(.$aw)? {
                        return Err(self.refusal_mid_message()$(.$aw)?.unwrap_or(e));
                    }
                }
                let extra = self.engine.finish_data(bytes)?;
                let event = self.next_event_within("the answer to the message", extra)$(.$aw)??;
                self.engine.message_answered(event, bytes)
            }

            /// Sends QUIT and waits for its answer (or the server closing);
            /// then closes the stream, which over TLS sends close_notify.
            pub $($async)? fn quit(mut self) -> Result<(), crate::smtp::SmtpError> {
                self.engine.start_quit()?;
                let event = self.next_event("the answer to QUIT")$(.$aw)??;
                self.engine.quit_answered(event)?;
                // The server already answered; a close it does not wait
                // for cannot make that an error.
                let _ = self.stream.close_within(self.engine.config.timeouts.idle)$(.$aw)?;
                Ok(())
            }

            $($async)? fn write_output(&mut self, what: &str) -> Result<(), crate::smtp::SmtpError> {
                if self.engine.output().is_empty() {
                    return Ok(());
                }
                let limit = self.engine.write_timeout();
                match self.stream.write_within(self.engine.output(), limit)$(.$aw)? {
                    Ok(()) => {
                        self.engine.output_written();
                        Ok(())
                    }
                    Err(e) => Err(self.engine.write_failed(e, what)),
                }
            }

            /// The server stopped taking the message (a write failed): a
            /// server that refuses a message part-way often says why before
            /// closing, so a reply already sent is read (briefly) and
            /// reported instead of the write's error.
            $($async)? fn refusal_mid_message(&mut self) -> Option<crate::smtp::SmtpError> {
                use crate::smtp::engine::MidMessage;
                let mut search = self.engine.refusal_search(std::time::Instant::now());
                let mut buf = [0u8; 4096];
                loop {
                    let left = match search.next(&self.engine, std::time::Instant::now()) {
                        MidMessage::Refused(e) => return Some(e),
                        MidMessage::GiveUp => return None,
                        MidMessage::Read(left) => left,
                    };
                    match self.stream.read_after_failed_write(&mut buf, left)$(.$aw)? {
                        Ok(n) if n > 0 => search.received(&buf[..n]),
                        _ => return None,
                    }
                }
            }

            $($async)? fn next_event(&mut self, what: &str) -> Result<smtp_auth::Event, crate::smtp::SmtpError> {
                self.next_event_within(what, std::time::Duration::ZERO)$(.$aw)?
            }

            /// Writes the output and reads until the session has an event,
            /// within the response timeout plus `extra`. An error marks the
            /// client unusable unless the session stayed usable.
            $($async)? fn next_event_within(
                &mut self,
                what: &str,
                extra: std::time::Duration,
            ) -> Result<smtp_auth::Event, crate::smtp::SmtpError> {
                self.engine.begin_wait(extra, std::time::Instant::now());
                let result = self.pump(what)$(.$aw)?;
                self.engine.end_wait(result)
            }

            /// The driver loop: write, read within the deadline, hand the
            /// bytes to the engine until it has an event.
            $($async)? fn pump(&mut self, what: &str) -> Result<smtp_auth::Event, crate::smtp::SmtpError> {
                let mut buf = vec![0u8; crate::smtp::engine::READ_BUFFER];
                loop {
                    let event = self.engine.advance()?;
                    // Everything queued goes out before waiting for replies
                    // (and with an event: QUIT after a failure, RSET).
                    self.write_output("the server to accept our commands")$(.$aw)??;
                    if let Some(event) = event {
                        return Ok(event);
                    }
                    let limit = self.engine.read_timeout(what, std::time::Instant::now())?;
                    match self.stream.read_within(&mut buf, limit)$(.$aw)? {
                        Ok(0) => return self.engine.eof(),
                        Ok(n) => self.engine.received(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                            return Err(self.engine.timeout(what, std::time::Instant::now()));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    };
}

pub(crate) use smtp_client;
