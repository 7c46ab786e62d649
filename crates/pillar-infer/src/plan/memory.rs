//! How much memory a secure run of a batch takes, before it starts: what `pillar infer`'s
//! client checks against its limit, and what `pillar eval --mode secure` and `pillar bench`
//! (client, server and dealer in one process) size their batch by. A run that does not fit
//! is refused or shrunk before it allocates, instead of being killed by the kernel halfway.
//!
//! The estimate adds what holds memory in the run: each party's peak
//! ([`Architecture::peak_words`]: its correlations fetched ahead, the values alive, a step's
//! outputs, gathered copies and protocol intermediates, the weight masks), and in a local run
//! the in-process dealer (the weight masks it keeps, and for the largest correlation both
//! parties' streams and the correction it computes from them), the messages of the largest
//! round in flight both ways, and the server's encoded weights.
//!
//! Measured against the peak resident set of `pillar eval --mode secure --batch B --limit B
//! --json` (`/usr/bin/time -v`, "Maximum resident set size"; networks from `pillar train
//! --activation relu` unless poly, ESPN, f = 16; the estimate is the report's
//! `memory_estimate_bytes`: this one plus what the process held before, model, data and
//! inputs), on the project's 2-core, 24 GiB machine (the last two rows chose their batch
//! themselves, estimates from the text report's GiB):
//!
//! | network (data set)          | batch | estimate MiB | measured MiB | estimate / measured |
//! |-----------------------------|------:|-------------:|-------------:|--------------------:|
//! | MiniONN (mnist)             |     1 |          211 |          161 |                1.31 |
//! | MiniONN (mnist)             |    10 |        1,241 |          915 |                1.36 |
//! | MiniONN (mnist)             |   100 |       11,543 |        8,347 |                1.38 |
//! | MiniONN, poly (mnist)       |     1 |          162 |          123 |                1.32 |
//! | MiniONN, poly (mnist)       |   100 |        6,609 |        5,899 |                1.12 |
//! | MiniONN (cifar10)           |     1 |          241 |          191 |                1.26 |
//! | MiniONN (cifar10)           |    10 |        1,587 |        1,154 |                1.38 |
//! | MiniONN (cifar10)           |    50 |        7,568 |        5,620 |                1.35 |
//! | ResNet-20 (cifar10)         |     1 |          224 |          191 |                1.17 |
//! | ResNet-20 (cifar10)         |    20 |        2,645 |        2,248 |                1.18 |
//! | ResNet-18 (cifar10)         |     1 |        1,722 |        1,293 |                1.33 |
//! | ResNet-18 (cifar10)         |    10 |        4,860 |        3,956 |                1.23 |
//! | ResNet-18 (cifar10)         |    20 |        8,667 |        7,708 |                1.12 |
//! | ResNet-18 (cifar10), 100 images | 45 |     ~18,330 |       16,034 |                1.14 |
//! | ResNet-18 (cifar10), 100 images |  7 |      ~3,790 |        2,981 |                1.27 |
//!
//! Before the margin (a quarter, plus 32 MiB) the counted buffers alone were 0.84x to 1.10x
//! of the measurement: the margin makes the estimate an upper bound, within 1.4x.
//!
//! The client alone (`pillar infer --index 0,...,B-1 --batch B` against `pillar serve` and
//! `pillar dealer` processes, MiniONN with ReLU on mnist) grew by 39.2 MiB per image between
//! batches 10 and 50 (425 to 1,993 MiB, the process with its data set), where the counted
//! buffers grow by 32.5 MiB: its estimate takes the same quarter (40.6 MiB per image), and
//! bounds the request, not the process (about 45 MiB of program and data set besides).

use pillar_mpc::dealer::Need;
use pillar_mpc::protocols::preprocessed::LinearProtocol;

use super::Architecture;
use crate::error::InferError;

/// Who runs in the process whose memory is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parties {
    /// The client alone (`pillar infer`): its peak, as [`Architecture::check_memory`] bounds
    /// it.
    Client,
    /// Client, server and an in-process trusted dealer (`pillar eval --mode secure`,
    /// `pillar bench model`).
    Local,
}

/// What a batch's run holds at its peak, in bytes, by what holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Images in the batch.
    pub batch: usize,
    /// The parties' own peaks (one for the client alone, the sum of both in a local run).
    pub parties: usize,
    /// The in-process dealer: its largest correction's working buffers (with the weight mask
    /// it regenerates).
    pub dealer: usize,
    /// The largest round's messages in flight, both ways, as sent and as received (the
    /// setup's opening of every weight counts as a round).
    pub channel: usize,
    /// The server's encoded weights, and their masked copy `F` (with the masks under the
    /// Beaver protocol).
    pub plan: usize,
    /// What the measurements show beyond the counted buffers: a quarter of them (the
    /// allocator's slack, a correlation's parts split off its buffer, the protocols' smaller
    /// temporaries, the dealer's corrections as they arrive) and, in a local run,
    /// 32 MiB (threads, arenas).
    pub margin: usize,
}

/// What a local run holds whatever its network, by measurement (the smallest networks' peak
/// beyond their counted buffers).
const LOCAL_BASE: usize = 32 << 20;

impl MemoryEstimate {
    /// A local run's estimate from what it counts, with the margin the measurements show.
    fn local(batch: usize, parties: usize, dealer: usize, channel: usize, plan: usize) -> Self {
        let mut estimate = MemoryEstimate {
            batch,
            parties,
            dealer,
            channel,
            plan,
            margin: 0,
        };
        estimate.margin = (estimate.total() / 4).saturating_add(LOCAL_BASE);
        estimate
    }

    /// All of it, in bytes.
    pub fn total(&self) -> usize {
        [
            self.parties,
            self.dealer,
            self.channel,
            self.plan,
            self.margin,
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }
}

/// Bytes of `words` ring words.
fn bytes(words: usize) -> usize {
    words.saturating_mul(8)
}

impl Architecture {
    /// What a batch of `batch` images holds at its peak when `parties` run in one process.
    /// Errors for a batch so large that its buffers could not be counted (far beyond any
    /// machine).
    pub fn memory(&self, batch: usize, parties: Parties) -> Result<MemoryEstimate, InferError> {
        let one = bytes(self.peak(batch)?.words);
        if parties == Parties::Client {
            return Ok(MemoryEstimate {
                batch,
                parties: one,
                dealer: 0,
                channel: 0,
                plan: 0,
                margin: one / 4,
            });
        }
        let weights = self.setup_words();
        let (largest_need, largest_round) = self.largest(batch)?;
        Ok(MemoryEstimate::local(
            batch,
            one.saturating_mul(2),
            largest_need,
            bytes(largest_round.max(weights)).saturating_mul(4),
            // `W`, the masked `F` sent to every client, and under Beaver the masks `B`.
            bytes(weights).saturating_mul(match self.options.linear {
                LinearProtocol::Preprocessed => 2,
                LinearProtocol::Beaver => 3,
            }),
        ))
    }

    /// The bytes of the largest correlation at the trusted dealer, and the words of the
    /// largest round (online, or the client's offline posts) of a batch of `batch`.
    fn largest(&self, batch: usize) -> Result<(usize, usize), InferError> {
        // The trusted dealer expands party 0's whole share and party 1's seeded part,
        // regenerates the weight mask a product needs, then computes the correction: all at
        // once for the largest correlation.
        let mut largest_need = 0usize;
        let mut largest_round = 0usize;
        for i in 0..self.steps.len() {
            for need in self.step_needs(i, batch)? {
                largest_need = largest_need.max(need_bytes(&need));
            }
            largest_round = largest_round.max(self.step_online_words(i, batch));
        }
        // The client's offline posts travel in one message.
        largest_round = largest_round.max(self.offline_post_words(batch));
        Ok((largest_need, largest_round))
    }

    /// What one more connection running batches of `batch` adds to a process that holds
    /// others to the same model, its clients, server and dealer together (`pillar bench
    /// load`), when its client kept the weights' `F` from an earlier connection: both
    /// parties' peaks without `F` (the server holds it once per model, and the clients of
    /// one process share the copy they kept), the dealer's largest correction and the
    /// largest round, with the same margin. There is no setup, and the model is counted by
    /// the first connection's [`Architecture::memory`].
    pub fn resumed_connection_bytes(&self, batch: usize) -> Result<usize, InferError> {
        let peak = self.peak(batch)?;
        let own = bytes(peak.words.saturating_sub(peak.weights));
        let (largest_need, largest_round) = self.largest(batch)?;
        let estimate = MemoryEstimate::local(
            batch,
            own.saturating_mul(2),
            largest_need,
            bytes(largest_round).saturating_mul(4),
            0,
        );
        Ok(estimate.total())
    }

    /// [`Architecture::memory`]'s total, in bytes.
    pub fn memory_bytes(&self, batch: usize, parties: Parties) -> Result<usize, InferError> {
        Ok(self.memory(batch, parties)?.total())
    }

    /// The largest batch of at most `up_to` images whose estimate, with `held` bytes the
    /// process holds besides, fits in `budget` bytes; `None` when a single image does not.
    /// The estimate grows with the batch, so a binary search finds it.
    pub fn largest_batch(
        &self,
        parties: Parties,
        held: usize,
        budget: usize,
        up_to: usize,
    ) -> Option<usize> {
        let fits = |b: usize| {
            self.memory_bytes(b, parties)
                .is_ok_and(|m| m.saturating_add(held) <= budget)
        };
        if up_to == 0 || !fits(1) {
            return None;
        }
        // fits(lo) and, when hi > lo, !fits(hi) or hi = up_to fits.
        let (mut lo, mut hi) = (1usize, up_to);
        if fits(hi) {
            return Some(hi);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }
}

/// Bytes the trusted dealer works with while it computes `need`'s correction: party 0's
/// share, party 1's seeded words and the correction.
fn need_bytes(need: &Need) -> usize {
    bytes(
        need.words()
            .saturating_add(need.seeded_words())
            .saturating_add(need.weight_mask_words())
            .saturating_add(need.correction_words()),
    )
}
