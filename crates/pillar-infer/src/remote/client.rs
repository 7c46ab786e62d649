//! The image owner's side: connecting to a server and classifying batches.

use std::num::NonZeroUsize;
use std::time::Duration;

use pillar_mpc::channel::{Channel, ChannelError, Emulated, Link, TcpChannel};
use pillar_mpc::dealer::remote::{SessionId, join_session};
use pillar_mpc::wire::{self, Message};
use pillar_mpc::{Party, RingTensor, Session};

use super::DEFAULT_MEMORY_LIMIT;
use super::{Hello, Links, RemoteError, Request};
use crate::plan::Architecture;
use crate::run::{BatchReport, ClientConnection, Phase};

/// What a client makes of the server's hello: the model's name, its checked architecture
/// and the dealer session to join, or the server's refusal.
pub(crate) fn decode_hello(bytes: &[u8]) -> Result<(String, Architecture, SessionId), RemoteError> {
    let hello = wire::decode::<Hello>(bytes).map_err(ChannelError::from)?;
    match hello {
        Hello::Ready {
            model,
            architecture,
            session,
        } => Ok((model, architecture, session)),
        Hello::Refused { reason } => Err(RemoteError::Refused(reason)),
    }
}

/// A connection to a server, before the setup.
pub struct RemoteModel {
    /// The model's name, as the server gives it.
    pub model: String,
    architecture: Architecture,
    session: Session,
    memory_limit: usize,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// What a client's run cost it.
#[derive(Debug, Clone, Default)]
pub struct RemoteReport {
    /// The setup.
    pub setup: Phase,
    /// Per batch.
    pub batches: Vec<BatchReport>,
}

impl RemoteModel {
    /// Connects to the server at `server`, reads its hello, checks the architecture and
    /// joins the dealer session at `dealer`; both links are protected by `security`.
    pub fn connect(
        server: &str,
        dealer: &str,
        link: Link,
        security: &Links,
        timeout: Duration,
    ) -> Result<Self, RemoteError> {
        let tcp = TcpChannel::connect(server, Party::Client, &security.peer, timeout)?;
        let mut channel = Emulated::new(tcp, link);
        let bytes = channel.recv_message(Hello::WHAT, Hello::MAX_BYTES)?;
        let (model, architecture, id) = decode_hello(&bytes)?;
        let dealer = join_session(dealer, id, &security.dealer, timeout)?;
        let session = Session::new(Party::Client, architecture.fixed(), channel, dealer)?;
        Ok(RemoteModel {
            model,
            architecture,
            session,
            memory_limit: DEFAULT_MEMORY_LIMIT,
        })
    }

    /// Sets the most bytes a batch may take ([`DEFAULT_MEMORY_LIMIT`] otherwise), by
    /// [`Architecture::peak_words`]'s estimate: the server chooses the architecture, so the
    /// client says what it will spend on it.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The network the server runs.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// Runs the setup, then every batch (ring words at the architecture's `f`, `[n, ...]`),
    /// calling `progress` with the images of each batch done, and says goodbye. Every batch
    /// is checked against the architecture and the memory limit before anything is sent.
    pub fn run(
        mut self,
        batches: &[RingTensor],
        progress: &dyn Fn(usize),
    ) -> Result<(Vec<RingTensor>, RemoteReport), RemoteError> {
        let mut sizes = Vec::with_capacity(batches.len());
        for b in batches {
            let images = NonZeroUsize::new(self.architecture.check_input(b)?)
                .ok_or(RemoteError::EmptyBatch)?;
            self.architecture
                .check_memory(images.get(), self.memory_limit)?;
            sizes.push(images);
        }
        let s = &mut self.session;
        let conn = ClientConnection::open(s, &self.architecture)?;
        let mut report = RemoteReport {
            setup: conn.setup(),
            batches: Vec::with_capacity(batches.len()),
        };
        let mut outputs = Vec::with_capacity(batches.len());
        for (b, &images) in batches.iter().zip(&sizes) {
            s.send(&Request::Batch { images })?;
            let (logits, batch) = conn.prepare(s, images.get())?.run(s, b)?;
            outputs.push(logits);
            report.batches.push(batch);
            progress(images.get());
        }
        s.send(&Request::Goodbye)?;
        Ok((outputs, report))
    }
}
