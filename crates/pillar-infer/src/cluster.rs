//! A dealer, servers and clients in one process, over loopback TCP (feature `test-utils`):
//! what `pillar demo`, `pillar bench load` and the tests run. Each role goes through the same
//! code as the separate processes `pillar dealer`, `pillar serve` and `pillar infer`; only the
//! keys are made here, fresh, for all three ([`Deployment`]).

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use pillar_mpc::channel::{Admission, DEFAULT_TIMEOUT, Identity, Link, Security};
use pillar_mpc::dealer::remote::{DealerLinks, DealerService, ServiceConfig};

use crate::plan::Plan;
use crate::remote::{Done, Links, RemoteError, RemoteModel, ServeOptions, serve};

/// The links of a dealer, a server and its client that trust one another: fresh keys for
/// the three roles of one process. Processes apart each load their own key instead (`pillar
/// keygen`).
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The dealer's, trusting the server as a server and the client as a client.
    pub dealer: DealerLinks,
    /// The server's.
    pub server: Links,
    /// The client's.
    pub client: Links,
    /// The three identities, dealer, server and client, for tests that build other links.
    pub identities: [Arc<Identity>; 3],
}

impl Deployment {
    /// Fresh key pairs from the operating system's randomness, each pinning the others.
    pub fn generate() -> Deployment {
        let [d, s, c] = [(); 3].map(|()| Arc::new(Identity::generate()));
        let noise = |me: &Arc<Identity>, peers: &[&Arc<Identity>]| Security::Noise {
            identity: Arc::clone(me),
            trusted: Arc::new(peers.iter().map(|p| p.public()).collect()),
        };
        Deployment {
            dealer: DealerLinks::Noise {
                identity: Arc::clone(&d),
                servers: Arc::new(vec![s.public()]),
                clients: Arc::new(vec![c.public()]),
            },
            server: Links {
                peer: noise(&s, &[&c]),
                dealer: noise(&s, &[&d]),
            },
            client: Links {
                peer: noise(&c, &[&s]),
                dealer: noise(&c, &[&d]),
            },
            identities: [d, s, c],
        }
    }

    /// All three in plaintext.
    pub fn plaintext() -> Deployment {
        let [d, s, c] = [(); 3].map(|()| Arc::new(Identity::generate()));
        Deployment {
            dealer: DealerLinks::Plaintext,
            server: Links::plaintext(),
            client: Links::plaintext(),
            identities: [d, s, c],
        }
    }
}

/// Starts a dealer protected by `links` on a free loopback port, in a thread of its own,
/// and returns its address.
pub fn start_dealer(links: DealerLinks, config: ServiceConfig) -> io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let service = Arc::new(DealerService::new(config, links));
    std::thread::spawn(move || service.serve(&listener));
    Ok(addr)
}

/// Starts a server for `plan` on a free loopback port, in a thread of its own, and returns its
/// address; each client's outcome goes to `done`.
pub fn start_server(plan: Arc<Plan>, options: ServeOptions, done: Done) -> io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || serve(&listener, plan, &options, done));
    Ok(addr)
}

/// A dealer and the keys of everyone who uses it.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The keys of the dealer, the servers and the clients.
    pub keys: Deployment,
    /// The dealer's address.
    pub dealer: String,
}

impl Cluster {
    /// Starts a dealer for `keys`.
    pub fn start(keys: Deployment) -> io::Result<Cluster> {
        Cluster::start_with(keys, ServiceConfig::default())
    }

    /// Starts a dealer for `keys` configured by `config`.
    pub fn start_with(keys: Deployment, config: ServiceConfig) -> io::Result<Cluster> {
        let dealer = start_dealer(keys.dealer.clone(), config)?;
        Ok(Cluster { keys, dealer })
    }

    /// How a server of this cluster serves: through its dealer, with its keys, over `link`.
    pub fn options(&self, link: Link, max_batch: usize, max_clients: usize) -> ServeOptions {
        ServeOptions {
            dealer: self.dealer.clone(),
            link,
            timeout: DEFAULT_TIMEOUT,
            max_batch,
            max_clients,
            max_active: 0,
            admission: Admission::default(),
            security: self.keys.server.clone(),
        }
    }

    /// A client of this cluster connected to the server at `server` over `link`.
    pub fn connect(
        &self,
        server: &str,
        link: Link,
        timeout: Duration,
    ) -> Result<RemoteModel, RemoteError> {
        RemoteModel::connect(server, &self.dealer, link, &self.keys.client, timeout)
    }
}
