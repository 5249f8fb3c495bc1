//! System process: choosing which servers to believe (RFC 5905 section 11.2).
//!
//! [`select`] takes one [`Candidate`] per server that currently has a filter
//! estimate and runs, in order:
//!
//! 1. the distance check: a candidate whose root distance λ is over
//!    [`SelectParams::max_root_distance`] is *too far* (RFC 5905 section
//!    11.2.1, `MAXDIST`);
//! 2. the intersection algorithm (section 11.2.1, Marzullo's algorithm as
//!    modified by NTP): each candidate is the interval θ ± λ; the algorithm
//!    looks for the smallest interval that intersects the intervals of a
//!    majority, allowing ever more falsetickers (fewer than half). Candidates
//!    whose interval does not reach that majority interval are
//!    *falsetickers*; the rest are *truechimers*. At least
//!    [`SelectParams::min_agreeing`] truechimers are required;
//! 3. the cluster algorithm (section 11.2.2): while more than
//!    [`SelectParams::min_cluster_survivors`] (`NMIN`) remain and the largest
//!    selection jitter exceeds the smallest peer jitter, drop the candidate
//!    with the largest selection jitter;
//! 4. the combine algorithm (section 11.2.3): the system offset is the
//!    average of the survivors' offsets weighted by 1/λ, and the system
//!    jitter combines the system peer's jitter with the weighted spread of
//!    the survivors around it.
//!
//! The system peer is the survivor with the smallest root distance (lower
//! stratum, then lower id, on ties).

use mcast_proto::NtpDuration;
use serde::{Deserialize, Serialize};

/// Default minimum number of cluster survivors (RFC 5905 section 11.2.2, `NMIN`).
pub const NMIN: usize = 3;

/// Default maximum root distance: 1.5 s (RFC 5905 section 7.3, `MAXDIST`).
pub const MAXDIST: NtpDuration = NtpDuration::from_bits(3 << 31);

/// One server as the selection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The caller's identifier for the server (association index or key).
    pub id: usize,
    /// Filter offset θ (server minus local).
    pub offset: NtpDuration,
    /// Root distance λ at the time of selection
    /// ([`crate::client::filter::ClockFilter::root_distance`]).
    pub root_distance: NtpDuration,
    /// Filter jitter ψ.
    pub jitter: NtpDuration,
    /// The server's stratum (tie-break for the system peer).
    pub stratum: u8,
    /// Its next broadcast is overdue (missed by more than half an
    /// interval): it still counts in the intersection and the combination
    /// until it ages out, but any punctual survivor is preferred as the
    /// system peer, so a server that dies is replaced within two of its
    /// intervals.
    pub overdue: bool,
}

/// Selection knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectParams {
    /// Truechimers needed before anything is selected (config
    /// `selection.min-agreeing`, default 1).
    pub min_agreeing: usize,
    /// The cluster algorithm stops pruning at this many survivors (RFC 5905
    /// section 11.2.2, `NMIN`, default 3).
    pub min_cluster_survivors: usize,
    /// Candidates with a larger root distance are not selectable (RFC 5905
    /// section 11.2.1, `MAXDIST`, default 1.5 s).
    pub max_root_distance: NtpDuration,
}

impl Default for SelectParams {
    fn default() -> Self {
        SelectParams {
            min_agreeing: 1,
            min_cluster_survivors: NMIN,
            max_root_distance: MAXDIST,
        }
    }
}

/// The result of one selection round (RFC 5905 section 11.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SelectOutcome {
    /// Ids whose interval intersects the majority interval, in input order.
    pub truechimers: Vec<usize>,
    /// Ids whose interval misses it, in input order (empty when there was no
    /// majority: then nobody can be called false).
    pub falsetickers: Vec<usize>,
    /// Ids whose root distance is over the limit, in input order.
    pub too_far: Vec<usize>,
    /// Ids that survived clustering, smallest root distance first (so the
    /// system peer, if any, is first). Empty when nothing was selected.
    pub survivors: Vec<usize>,
    /// The survivor with the smallest root distance, punctual ones first.
    pub system_peer: Option<usize>,
    /// Combined offset of the survivors (weights 1/λ); `None` when nothing
    /// was selected.
    pub offset: Option<NtpDuration>,
    /// System jitter: √(ψ_peer² + φ²) where φ is the 1/λ-weighted RMS of the
    /// survivors' offsets around the system peer's; zero when nothing was
    /// selected.
    pub jitter: NtpDuration,
    /// Why nothing was selected; `None` when something was.
    pub reason: Option<NoSelection>,
}

/// Why a selection chose nothing (the shell puts it in words).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NoSelection {
    /// No server has an estimate yet.
    NoServers,
    /// Every candidate's root distance is over the limit.
    AllTooFar {
        /// Candidates, all too far.
        candidates: usize,
        /// The limit, seconds.
        max_root_distance_s: f64,
    },
    /// The intervals of no majority of the usable candidates intersect.
    NoMajority {
        /// Most candidates whose intervals share a point.
        agreeing: usize,
        /// Usable candidates.
        usable: usize,
        /// Candidates left out as too far.
        too_far: usize,
        /// The root distance limit, seconds.
        max_root_distance_s: f64,
    },
    /// Fewer truechimers than `min-agreeing`.
    TooFewAgreeing {
        /// Truechimers.
        agreeing: usize,
        /// `min-agreeing`.
        needed: usize,
        /// Candidates left out as too far.
        too_far: usize,
        /// The root distance limit, seconds.
        max_root_distance_s: f64,
    },
    /// Clustering left nothing (cannot happen for a non-empty list).
    NoSurvivors,
}

/// Intersection endpoint kinds, ordered so that at equal values lower
/// endpoints sort first and upper ones last (touching intervals intersect).
const LOWER: i32 = -1;
const MID: i32 = 0;
const UPPER: i32 = 1;

/// Run the selection (RFC 5905 section 11.2) over `cands`. See the module
/// documentation for the steps.
pub fn select(cands: &[Candidate], params: &SelectParams) -> SelectOutcome {
    let mut out = SelectOutcome::default();
    let (usable, far): (Vec<&Candidate>, Vec<&Candidate>) = cands
        .iter()
        .partition(|c| c.root_distance <= params.max_root_distance);
    out.too_far = far.iter().map(|c| c.id).collect();
    let max_root_distance_s = params.max_root_distance.as_seconds_f64();
    let too_far = far.len();

    if usable.is_empty() {
        out.reason = Some(if cands.is_empty() {
            NoSelection::NoServers
        } else {
            NoSelection::AllTooFar {
                candidates: cands.len(),
                max_root_distance_s,
            }
        });
        return out;
    }

    let Some((low, high)) = intersection(&usable) else {
        out.reason = Some(NoSelection::NoMajority {
            agreeing: max_agreement(&usable),
            usable: usable.len(),
            too_far,
            max_root_distance_s,
        });
        return out;
    };

    let (chimers, falsetickers): (Vec<&Candidate>, Vec<&Candidate>) = usable
        .iter()
        .partition(|c| lower(c) <= high && upper(c) >= low);
    out.truechimers = chimers.iter().map(|c| c.id).collect();
    out.falsetickers = falsetickers.iter().map(|c| c.id).collect();

    let needed = params.min_agreeing.max(1);
    if chimers.len() < needed {
        out.reason = Some(NoSelection::TooFewAgreeing {
            agreeing: chimers.len(),
            needed,
            too_far,
            max_root_distance_s,
        });
        return out;
    }

    let mut survivors = chimers;
    survivors.sort_by_key(|c| (c.overdue, c.root_distance, c.stratum, c.id));
    cluster(&mut survivors, params.min_cluster_survivors.max(1));

    let Some(&peer) = survivors.first() else {
        // Unreachable: clustering keeps at least one of a non-empty list.
        out.reason = Some(NoSelection::NoSurvivors);
        return out;
    };
    let (offset, jitter) = combine(&survivors, peer);
    out.survivors = survivors.iter().map(|c| c.id).collect();
    out.system_peer = Some(peer.id);
    out.offset = Some(offset);
    out.jitter = jitter;
    out
}

fn lower(c: &Candidate) -> NtpDuration {
    c.offset.saturating_sub(c.root_distance)
}

fn upper(c: &Candidate) -> NtpDuration {
    c.offset.saturating_add(c.root_distance)
}

fn endpoints(cands: &[&Candidate]) -> Vec<(NtpDuration, i32)> {
    let mut e: Vec<(NtpDuration, i32)> = cands
        .iter()
        .flat_map(|c| [(lower(c), LOWER), (c.offset, MID), (upper(c), UPPER)])
        .collect();
    e.sort_unstable();
    e
}

/// The intersection algorithm of RFC 5905 section 11.2.1 (appendix A.5.5.1,
/// as in ntpd 4.2.8 `select_peers`): for `allow` = 0, 1, ... while fewer
/// than half the candidates are allowed to be false, scan the sorted
/// endpoints from below until `n - allow` intervals are open (the low end)
/// and from above likewise (the high end), counting the midpoints passed on
/// the way. Success when at most `allow` midpoints lie outside and the ends
/// do not cross. Returns the majority interval.
fn intersection(cands: &[&Candidate]) -> Option<(NtpDuration, NtpDuration)> {
    let n = cands.len();
    let e = endpoints(cands);
    let mut allow = 0;
    while 2 * allow < n {
        let need = i64::try_from(n - allow).unwrap_or(i64::MAX);
        let mut found = 0;
        let mut chime: i64 = 0;
        let mut low = None;
        for &(v, kind) in &e {
            chime -= i64::from(kind);
            if chime >= need {
                low = Some(v);
                break;
            }
            if kind == MID {
                found += 1;
            }
        }
        chime = 0;
        let mut high = None;
        for &(v, kind) in e.iter().rev() {
            chime += i64::from(kind);
            if chime >= need {
                high = Some(v);
                break;
            }
            if kind == MID {
                found += 1;
            }
        }
        if found <= allow
            && let (Some(l), Some(h)) = (low, high)
            && h >= l
        {
            return Some((l, h));
        }
        allow += 1;
    }
    None
}

/// The largest number of candidate intervals with a point in common (for
/// the "no majority" message).
fn max_agreement(cands: &[&Candidate]) -> usize {
    let mut open: i64 = 0;
    let mut best: i64 = 0;
    for (_, kind) in endpoints(cands) {
        open -= i64::from(kind);
        best = best.max(open);
    }
    usize::try_from(best).unwrap_or(0)
}

/// Selection jitter of `c` relative to the others (RFC 5905 section 11.2.2):
/// √(Σⱼ (θ_c − θⱼ)² / (n − 1)), in seconds.
fn selection_jitter(c: &Candidate, all: &[&Candidate]) -> f64 {
    let n = all.len();
    if n < 2 {
        return 0.0;
    }
    let sum: f64 = all
        .iter()
        .map(|o| o.offset.saturating_sub(c.offset).as_seconds_f64().powi(2))
        .sum();
    (sum / (n - 1) as f64).sqrt()
}

/// The cluster algorithm (RFC 5905 section 11.2.2). `survivors` is sorted
/// by root distance; among equal selection jitters the one further down the
/// list (larger distance) goes first.
fn cluster(survivors: &mut Vec<&Candidate>, nmin: usize) {
    while survivors.len() > nmin {
        let mut worst: Option<(usize, f64)> = None;
        for (i, c) in survivors.iter().enumerate() {
            let phi = selection_jitter(c, survivors);
            if worst.is_none_or(|(_, w)| phi >= w) {
                worst = Some((i, phi));
            }
        }
        let min_peer_jitter = survivors
            .iter()
            .map(|c| c.jitter.as_seconds_f64())
            .fold(f64::INFINITY, f64::min);
        match worst {
            Some((i, phi)) if phi > min_peer_jitter => {
                survivors.remove(i);
            }
            _ => break,
        }
    }
}

/// The combine algorithm (RFC 5905 section 11.2.3): weights 1/λ. Offsets
/// are averaged relative to the system peer's so large offsets keep their
/// precision in `f64`.
fn combine(survivors: &[&Candidate], peer: &Candidate) -> (NtpDuration, NtpDuration) {
    // A zero distance would be an infinite weight; 1 ns is far below any
    // real distance.
    let weight = |c: &Candidate| 1.0 / c.root_distance.as_seconds_f64().max(1e-9);
    let (mut wsum, mut osum, mut jsum) = (0.0_f64, 0.0_f64, 0.0_f64);
    for c in survivors {
        let w = weight(c);
        let d = c.offset.saturating_sub(peer.offset).as_seconds_f64();
        wsum += w;
        osum += w * d;
        jsum += w * d * d;
    }
    let (mean, spread) = if wsum > 0.0 {
        (osum / wsum, (jsum / wsum).sqrt())
    } else {
        (0.0, 0.0)
    };
    let offset = peer
        .offset
        .saturating_add(NtpDuration::from_seconds_f64(mean));
    let peer_jitter = peer.jitter.as_seconds_f64();
    let jitter = NtpDuration::from_seconds_f64(peer_jitter.hypot(spread));
    (offset, jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> NtpDuration {
        NtpDuration::from_millis(n)
    }

    fn us(n: i64) -> NtpDuration {
        NtpDuration::from_micros(n)
    }

    fn cand(id: usize, offset: NtpDuration, dist: NtpDuration) -> Candidate {
        Candidate {
            id,
            offset,
            root_distance: dist,
            jitter: us(50),
            stratum: 2,
            overdue: false,
        }
    }

    #[test]
    fn an_overdue_server_is_not_the_system_peer_while_a_punctual_one_survives() {
        let mut best = cand(0, us(100), ms(2));
        best.overdue = true;
        let cands = [best, cand(1, us(-50), ms(6)), cand(2, us(20), ms(7))];
        let out = select(&cands, &SelectParams::default());
        assert_eq!(out.system_peer, Some(1), "{out:?}");
        assert!(
            out.survivors.contains(&0),
            "still combined until it ages out"
        );
        let mut all = cands;
        for c in &mut all {
            c.overdue = true;
        }
        assert_eq!(select(&all, &SelectParams::default()).system_peer, Some(0));
    }

    #[test]
    fn falseticker_one_second_off_is_excluded() {
        let cands = [
            cand(0, us(100), ms(5)),
            cand(1, us(-50), ms(6)),
            cand(2, us(30), ms(4)),
            cand(3, us(0), ms(5)),
            cand(4, ms(1000), ms(5)),
        ];
        let out = select(&cands, &SelectParams::default());
        assert_eq!(
            out.falsetickers,
            vec![4],
            "the server 1 s off is false: {out:?}"
        );
        assert_eq!(out.truechimers, vec![0, 1, 2, 3]);
        // Clustering (peer jitter 50 us) prunes the widest, id 0, down to NMIN.
        assert_eq!(out.survivors, vec![2, 3, 1], "by root distance");
        assert_eq!(out.system_peer, Some(2), "smallest root distance");
        let off = out.offset.expect("something must be selected");
        assert!(
            off > us(-50) && off < us(100),
            "combined offset {off} must lie among the good servers'"
        );
        assert_eq!(out.reason, None);
        assert!(out.jitter > NtpDuration::ZERO);
    }

    #[test]
    fn two_against_two_has_no_majority() {
        let cands = [
            cand(0, ms(0), ms(5)),
            cand(1, ms(1), ms(5)),
            cand(2, ms(500), ms(5)),
            cand(3, ms(501), ms(5)),
        ];
        let out = select(&cands, &SelectParams::default());
        assert_eq!(out.offset, None);
        assert_eq!(out.system_peer, None);
        assert!(out.survivors.is_empty() && out.truechimers.is_empty());
        assert_eq!(
            out.reason,
            Some(NoSelection::NoMajority {
                agreeing: 2,
                usable: 4,
                too_far: 0,
                max_root_distance_s: 1.5
            }),
            "{out:?}"
        );
    }

    #[test]
    fn min_agreeing_not_met() {
        let cands = [cand(0, ms(0), ms(5)), cand(1, ms(1), ms(5))];
        let params = SelectParams {
            min_agreeing: 3,
            ..SelectParams::default()
        };
        let out = select(&cands, &params);
        assert_eq!(out.offset, None);
        assert_eq!(out.truechimers, vec![0, 1]);
        assert_eq!(
            out.reason,
            Some(NoSelection::TooFewAgreeing {
                agreeing: 2,
                needed: 3,
                too_far: 0,
                max_root_distance_s: 1.5
            }),
            "{out:?}"
        );
    }

    #[test]
    fn huge_root_distance_is_too_far() {
        let cands = [
            cand(0, ms(0), ms(5)),
            cand(1, ms(1), NtpDuration::from_secs(3)),
            cand(2, us(300), ms(8)),
        ];
        let out = select(&cands, &SelectParams::default());
        assert_eq!(out.too_far, vec![1]);
        assert_eq!(out.truechimers, vec![0, 2]);
        assert_eq!(out.survivors, vec![0, 2]);
        assert!(out.offset.is_some());

        let only_far = [cand(7, ms(0), NtpDuration::from_secs(2))];
        let out = select(&only_far, &SelectParams::default());
        assert_eq!(out.too_far, vec![7]);
        assert_eq!(out.offset, None);
        assert_eq!(
            out.reason,
            Some(NoSelection::AllTooFar {
                candidates: 1,
                max_root_distance_s: 1.5
            })
        );
    }

    #[test]
    fn single_server_is_selected() {
        let out = select(&[cand(9, ms(3), ms(2))], &SelectParams::default());
        assert_eq!(out.system_peer, Some(9));
        assert_eq!(out.offset, Some(ms(3)));
        assert_eq!(
            out.jitter,
            us(50),
            "one survivor: system jitter is its jitter"
        );
    }

    #[test]
    fn two_disagreeing_servers_have_no_majority() {
        let out = select(
            &[cand(0, ms(0), ms(2)), cand(1, ms(100), ms(2))],
            &SelectParams::default(),
        );
        assert_eq!(out.offset, None);
        assert_eq!(
            out.reason,
            Some(NoSelection::NoMajority {
                agreeing: 1,
                usable: 2,
                too_far: 0,
                max_root_distance_s: 1.5
            })
        );
    }

    #[test]
    fn empty_input_has_a_reason() {
        let out = select(&[], &SelectParams::default());
        assert_eq!(out.reason, Some(NoSelection::NoServers));
    }

    #[test]
    fn cluster_prunes_the_outlier_among_truechimers() {
        // Six servers whose wide intervals all intersect, one 4 ms away
        // from the rest; peer jitters are 50 us. Clustering drops the
        // loner (largest selection jitter) and stops at a tight group or NMIN.
        let cands = [
            cand(0, us(0), ms(20)),
            cand(1, us(10), ms(20)),
            cand(2, us(-10), ms(20)),
            cand(3, us(5), ms(20)),
            cand(4, us(-5), ms(20)),
            cand(5, ms(4), ms(20)),
        ];
        let out = select(&cands, &SelectParams::default());
        assert_eq!(out.truechimers.len(), 6, "all intervals intersect");
        assert!(
            !out.survivors.contains(&5),
            "the loner is clustered out: {out:?}"
        );
        assert!(out.survivors.len() >= NMIN);
        let off = out.offset.expect("selected");
        assert!(off.abs() < us(20), "combined offset {off}");
    }

    #[test]
    fn combine_weights_by_inverse_distance() {
        // Same offsets' spread, distances 1:3 → weights 3:1.
        let cands = [cand(0, us(0), ms(1)), cand(1, us(400), ms(3))];
        let params = SelectParams {
            min_cluster_survivors: 2,
            ..SelectParams::default()
        };
        let out = select(&cands, &params);
        let off = out.offset.expect("selected").as_seconds_f64();
        assert!((off - 100e-6).abs() < 1e-9, "offset {off}, expected 100 us");
        assert_eq!(out.system_peer, Some(0));
        assert_eq!(out.survivors, vec![0, 1]);
    }
}
