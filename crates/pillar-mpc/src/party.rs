//! The two parties.

use std::fmt;

/// One of the two computing parties.
///
/// The server (P0) holds the model, the client (P1) the input. Protocols that treat the parties
/// asymmetrically (who adds a public constant, who receives a correction from the dealer) key
/// on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// P0, the model owner.
    Server,
    /// P1, the input owner.
    Client,
}

impl Party {
    /// Both parties, P0 first.
    pub const BOTH: [Party; 2] = [Party::Server, Party::Client];

    /// 0 for the server, 1 for the client.
    pub fn index(self) -> usize {
        match self {
            Party::Server => 0,
            Party::Client => 1,
        }
    }

    /// The party at `index` (0 or 1).
    pub fn from_index(index: usize) -> Option<Party> {
        match index {
            0 => Some(Party::Server),
            1 => Some(Party::Client),
            _ => None,
        }
    }

    /// The other party.
    pub fn peer(self) -> Party {
        match self {
            Party::Server => Party::Client,
            Party::Client => Party::Server,
        }
    }

    /// Whether this is P0, the party that adds public constants to its share.
    pub fn is_server(self) -> bool {
        self == Party::Server
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Server => f.write_str("P0 (server)"),
            Party::Client => f.write_str("P1 (client)"),
        }
    }
}
